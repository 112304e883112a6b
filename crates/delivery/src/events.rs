//! What delivery publishes (`DeliveryStarted`, `DeliveryCanceled`, `Delivered`) and what it
//! consumes (`Made`, which starts a delivery).

use contracts::events::DeliveryChanged;
use contracts::{Event, EventType, Payload};
use futures::future::BoxFuture;
use platform::outbox::Handler;
use platform::{Conn, Ctx};

use crate::domain::{Cancellation, Delivery};
use crate::store;

/// The event types delivery consumes.
pub const CONSUMES: &[EventType] = &[EventType::Made];

fn changed(d: &Delivery) -> DeliveryChanged {
    DeliveryChanged { id: d.id, order_id: d.order_id, status: d.status }
}

/// `{id, orderId, status}` of the delivery.
pub fn delivery_started(ctx: &Ctx, d: &Delivery) -> Event {
    ctx.event(Payload::DeliveryStarted(changed(d)))
}

/// `{id, orderId, status}` of the delivery.
pub fn delivered(ctx: &Ctx, d: &Delivery) -> Event {
    ctx.event(Payload::Delivered(changed(d)))
}

/// `{id, orderId, status}` of the ledger entry (the cancellation's id, not the delivery's).
pub fn delivery_canceled(ctx: &Ctx, c: &Cancellation) -> Event {
    ctx.event(Payload::DeliveryCanceled(DeliveryChanged { id: c.id, order_id: c.order_id, status: c.status }))
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

impl Handler<Payload> for StartDelivery {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            match &event.payload {
                Payload::Made(made) => {
                    let started = store::start_delivery(conn, made.order_id).await?;
                    Ok(started.iter().map(|d| delivery_started(&self.ctx, d)).collect())
                }
                // Not subscribed to; listed so that a new event type is a decision here.
                Payload::Ordered(_)
                | Payload::OrderCanceled(_)
                | Payload::PaymentApproved(_)
                | Payload::PaymentCanceled(_)
                | Payload::OrderInfoReceived(_)
                | Payload::Receipted(_)
                | Payload::DrinkCanceled(_)
                | Payload::DeliveryStarted(_)
                | Payload::DeliveryCanceled(_)
                | Payload::Delivered(_) => Ok(vec![]),
            }
        })
    }
}
