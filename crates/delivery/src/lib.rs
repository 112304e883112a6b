//! The delivery service: it starts a delivery when a drink is made, marks it delivered, and
//! keeps the cancellation ledger that order consults before it deletes an order.
//!
//! Deliveries start asynchronously, from `Made`, so a delivery outage never stops the
//! baristas: the events wait on the bus and deliveries catch up when the service is back.
//! Cancellations arrive synchronously (`POST /cancellations`, idempotent per order) because
//! order must not delete an order whose cancellation was not recorded. A recorded
//! cancellation wins over a later `Made`: no delivery starts for a cancelled order, and an
//! order already delivered can no longer be cancelled (409).

pub mod api;
pub mod domain;
pub mod events;
pub mod store;

use axum::Router;
use platform::Ctx;

use crate::domain::DeliveryStatus;

pub const NAME: &str = "delivery";
pub use store::MIGRATIONS;

/// Starts the `Made` consumer and returns the service's routes.
pub fn start(ctx: Ctx) -> Router {
    ctx.consume(contracts::events::names(events::CONSUMES), events::StartDelivery::new(ctx.clone()));
    api::router(ctx)
}

/// What can go wrong in this service: a refused change, or storage. `api` maps each to its
/// answer (409 for a refusal).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("order {order_id} was already delivered")]
    AlreadyDelivered { order_id: i64 },
    #[error("delivery {id} is '{from}' and cannot become '{to}'")]
    IllegalTransition { id: i64, from: DeliveryStatus, to: DeliveryStatus },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
