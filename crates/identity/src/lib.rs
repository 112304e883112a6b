//! The identity service: the cafe's accounts, signing in, and the tokens every other service
//! checks (SPEC §9).
//!
//! A customer registers with their phone number, which becomes their user name; a manager
//! adds staff (barista, rider, manager), and the command line does the same
//! ([`add_user`], [`ensure_manager`]). Signing in (`POST /auth/token`) checks the password
//! against its argon2id hash and answers a short-lived signed token carrying the user name,
//! the role and, for a customer, the phone number; every service verifies such tokens itself
//! with the public key ([`platform::auth`]). Password guessing is slowed per user name
//! ([`throttle`]). Identity raises and consumes no events.

pub mod accounts;
pub mod api;
pub mod domain;
pub mod error;
pub mod password;
pub mod store;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use platform::auth::Issuer;
use platform::Ctx;

pub use crate::accounts::{add_user, ensure_manager};
pub use crate::error::Error;
pub use crate::store::MIGRATIONS;
use crate::throttle::Throttle;

pub const NAME: &str = "identity";

pub struct Config {
    /// Signs the tokens of people who sign in.
    pub issuer: Arc<Issuer>,
}

pub struct Service {
    pub ctx: Ctx,
    pub issuer: Arc<Issuer>,
    pub throttle: Throttle,
}

/// Returns the service's routes.
pub fn start(ctx: Ctx, config: Config) -> Router {
    start_with(ctx, config, Throttle::default())
}

/// [`start`] with a given sign-in throttle (a test's, on a clock it moves).
pub(crate) fn start_with(ctx: Ctx, config: Config, throttle: Throttle) -> Router {
    api::router(Arc::new(Service { ctx, issuer: config.issuer, throttle }))
}

#[cfg(test)]
mod tests;
