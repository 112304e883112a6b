//! The customer center: "my page", one row per order showing a customer how far their order
//! has come, from order and payment through the barista to delivery or cancellation (CQRS
//! view), built only from events, with no call or join across services.
//!
//! Events about one order come from four services and may arrive in any order, and twice.
//! So a row is not a state machine but a merge: keyed by order id, each event fills what it
//! knows, and the status is the furthest stage seen (see `Merge` for [`domain::MyPage`]).
//! Whatever the arrival order, the same events give the same row.

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod store;

use axum::Router;
use platform::Ctx;

pub const NAME: &str = "customercenter";
pub use store::MIGRATIONS;

/// Starts the view's consumer and returns the service's routes.
pub fn start(ctx: Ctx) -> Router {
    ctx.consume(contracts::events::names(events::CONSUMES), events::UpdateMyPage);
    api::router(ctx)
}
