//! Integration tests: the cafe on ephemeral ports, driven over HTTP through its gateway, in
//! the all-in-one mode (built in this process, or the binary where a test kills it) and,
//! where PostgreSQL and NATS run, the distributed one (`cafe cluster`). One test binary keeps
//! link time down.

#[macro_use]
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod auth;
mod bad_input;
mod crash;
mod dead_letters;
mod demos;
mod errors;
mod infra;
mod openapi;
mod races;
mod users;
mod views;
