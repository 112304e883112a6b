//! The payment service: order charges here, synchronously, before an order counts as placed.
//!
//! One payment per order, enforced by the table: a repeated `POST /payments` (a retry, a
//! second replica) returns the existing payment (200) and never charges twice. When a
//! placement fails or times out, order voids the order's payment (`POST /payments/voids`).
//! A void that arrives before the charge it races leaves a `Canceled` tombstone (amt 0, empty
//! phone number) so the late charge is refused by finding it; tombstones are listed like any
//! payment, which is honest: that order's payment exists and is canceled. A cancelled drink
//! (`DrinkCanceled`) refunds the order's payment (`PaymentCanceled`).

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod store;

use std::sync::Arc;

use axum::Router;
use platform::Ctx;

pub use crate::error::Error;

pub const NAME: &str = "payment";
pub use store::MIGRATIONS;

pub struct Config {
    /// Simulated processing time per charge, uniformly within `lo..=hi` ms (the original's
    /// load test slept 400 + random·220 ms); `None` answers at once.
    pub delay_ms: Option<(u64, u64)>,
}

pub struct Service {
    pub ctx: Ctx,
    pub delay_ms: Option<(u64, u64)>,
}

/// Starts the refund consumer and returns the service's routes.
pub fn start(ctx: Ctx, config: Config) -> Router {
    ctx.consume(contracts::events::names(events::CONSUMES), events::Refund { ctx: ctx.clone() });
    api::router(Arc::new(Service { ctx, delay_ms: config.delay_ms }))
}

#[cfg(test)]
mod tests;
