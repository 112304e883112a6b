//! customercenter
