//! What delivery publishes (`DeliveryStarted`, `DeliveryCanceled`, `Delivered`) and what it
//! consumes (`Made`, which starts a delivery).

use futures::future::BoxFuture;
use platform::outbox::Handler;
use platform::{Conn, Ctx, Event};
use serde::Deserialize;

use crate::domain::{Cancellation, Delivery};
use crate::store;

pub const MADE: &str = "Made";
pub const DELIVERY_STARTED: &str = "DeliveryStarted";
pub const DELIVERY_CANCELED: &str = "DeliveryCanceled";
pub const DELIVERED: &str = "Delivered";

/// The event types delivery consumes.
pub const CONSUMED: &[&str] = &[MADE];

/// `{id, orderId, status}` of the delivery.
pub fn delivery_started(ctx: &Ctx, d: &Delivery) -> Event {
    ctx.event(DELIVERY_STARTED, d)
}

/// `{id, orderId, status}` of the delivery.
pub fn delivered(ctx: &Ctx, d: &Delivery) -> Event {
    ctx.event(DELIVERED, d)
}

/// `{id, orderId, status}` of the ledger entry (the cancellation's id, not the delivery's).
pub fn delivery_canceled(ctx: &Ctx, c: &Cancellation) -> Event {
    ctx.event(DELIVERY_CANCELED, c)
}

/// The part of `Made` delivery needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Made {
    order_id: i64,
}

/// `Made` → the order's delivery starts (`DeliveryStarted`), unless it is cancelled or
/// already delivering.
pub struct StartDelivery {
    ctx: Ctx,
}

impl StartDelivery {
    pub fn new(ctx: Ctx) -> Self {
        StartDelivery { ctx }
    }
}

impl Handler for StartDelivery {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            if event.event_type != MADE {
                return Ok(vec![]);
            }
            let made = match event.payload::<Made>() {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(event_id = %event.event_id, error = %e, "unreadable Made event skipped");
                    return Ok(vec![]);
                }
            };
            let started = store::start_delivery(conn, made.order_id).await?;
            Ok(started.iter().map(|d| delivery_started(&self.ctx, d)).collect())
        })
    }
}
