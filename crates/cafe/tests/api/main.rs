//! Integration tests: the real `cafe` binary on ephemeral ports, driven over HTTP through its
//! gateway, in the all-in-one mode and (where PostgreSQL and NATS run) the distributed one.
//! One test binary keeps link time down.

#[macro_use]
#[allow(dead_code)]
mod helpers;

mod crash;
mod demos;
mod errors;
mod infra;
mod races;
mod views;
