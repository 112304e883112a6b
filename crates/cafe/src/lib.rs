//! The cafe as a library, so that tests build it the way the binary does (`main.rs` only
//! parses the command line and reports how the process ended).
//!
//! - [`cli`]: flags and environment variables, one typed struct per command.
//! - [`up`]: `cafe up`, the whole cafe in one process; [`Cafe::build`] binds and starts it,
//!   [`Cafe::run_until_stopped`] serves it until its [`StopHandle`] is used.
//! - [`serve`]: `cafe serve <service>`, one service (or the gateway) as its own process.
//! - [`cluster`]: `cafe cluster`, every service a child process on PostgreSQL and NATS.
//! - [`user`]: `cafe user add`, staff accounts from the command line.
//! - [`admin`]: every service's dead letters from an admin listener, and `cafe dead-letters`.
//! - [`trust`]: auth on or off, and where each mode keeps its keys.
//! - `services`: the table of services by [`contracts::ServiceName`], shared by all three.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod serve;
mod services;
pub mod trust;
pub mod up;
pub mod user;

pub use services::{descriptions, print_description, public_api};
pub use up::{Cafe, StopHandle};
