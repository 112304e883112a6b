//! The delivery center: one page per order showing what was ordered and how its delivery
//! stands (CQRS view), built only from events, with no call or join across services.
//!
//! Events about one order come from two services and may arrive in any order, and twice.
//! So a page is not a state machine but a merge: keyed by order id, each event fills what it
//! knows, and the status is the furthest stage seen (see `Merge` for [`domain::DeliveryPage`]).
//! Whatever the arrival order, the same events give the same page.

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod store;

use axum::Router;
use platform::Ctx;

pub const NAME: &str = "deliverycenter";
pub use store::MIGRATIONS;

/// Starts the view's consumer and returns the service's routes.
pub fn start(ctx: Ctx) -> Router {
    ctx.consume(contracts::events::names(events::CONSUMES), events::UpdateDeliveryPage);
    api::router(ctx)
}
