//! The drink service: the baristas' side of the cafe.
//!
//! A placed order (`Ordered`) becomes a `Received` drink in the barista queue
//! (`/orderinfos`); baristas accept it (`Receipted`) and make it (`Made`) through
//! `PATCH /drinks/{id}`, and `Made` is what starts a delivery, asynchronously, so a delivery
//! outage never stops the baristas. A cancelled order (`OrderCanceled`) cancels its drink
//! whatever its state and raises `DrinkCanceled`, which refunds the payment. Events may come
//! twice or out of order: one drink per order, and a cancellation that comes first is kept
//! as a `Canceled` drink so the late `Ordered` creates nothing.

pub mod api;
pub mod domain;
pub mod events;
pub mod store;

use std::sync::Arc;

use axum::Router;
use platform::Ctx;

use crate::domain::DrinkStatus;

pub const NAME: &str = "drink";
pub use store::MIGRATIONS;

pub struct Service {
    pub ctx: Ctx,
}

/// What can go wrong in this service. `api` maps each to its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no drink {0}")]
    NotFound(i64),
    #[error("a {from} drink cannot become {to}")]
    IllegalTransition { from: DrinkStatus, to: DrinkStatus },
    /// The status kept changing under us: give up rather than spin.
    #[error("drink {0} changed concurrently")]
    Contended(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Starts the order-event consumer and returns the service's routes.
pub fn start(ctx: Ctx) -> Router {
    ctx.consume(contracts::events::names(events::CONSUMES), events::OrderPolicy { ctx: ctx.clone() });
    api::router(Arc::new(Service { ctx }))
}

#[cfg(test)]
mod tests;
