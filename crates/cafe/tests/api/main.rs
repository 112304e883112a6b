//! Integration tests: the real `cafe up` binary on ephemeral ports, driven over HTTP through
//! its gateway. One test binary keeps link time down.

mod crash;
mod demos;
mod errors;
mod helpers;
mod races;
mod views;
