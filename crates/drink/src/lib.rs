//! drink
