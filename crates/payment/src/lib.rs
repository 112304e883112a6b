//! payment
