//! What payment publishes, and its one policy: a cancelled drink refunds the order's
//! payment (`DrinkCanceled` → `PaymentCanceled`), the compensation end of a cancellation.

use contracts::events::PaymentChanged;
use contracts::{Event, EventType, Payload};
use futures::future::BoxFuture;
use platform::outbox::Handler;
use platform::{Conn, Ctx};

use crate::domain::Payment;

/// The event types payment consumes.
pub const CONSUMES: &[EventType] = &[EventType::DrinkCanceled];

/// Both events carry the payment as it is: id, orderId, phoneNumber, amt, status.
pub fn payment_approved(ctx: &Ctx, p: &Payment) -> Event {
    ctx.event(Payload::PaymentApproved(changed(p)))
}

pub fn payment_canceled(ctx: &Ctx, p: &Payment) -> Event {
    ctx.event(Payload::PaymentCanceled(changed(p)))
}

fn changed(p: &Payment) -> PaymentChanged {
    PaymentChanged {
        id: p.id,
        order_id: p.order_id,
        phone_number: p.phone_number.clone(),
        amt: p.amt,
        status: p.status,
    }
}

/// Refunds on `DrinkCanceled`. Nothing to refund (no payment, or already `Canceled`) is fine:
/// the event may be a repeat, or the order was voided before it was ever paid.
pub struct Refund {
    pub ctx: Ctx,
}

impl Handler<Payload> for Refund {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            match &event.payload {
                Payload::DrinkCanceled(drink) => match crate::store::cancel_approved(conn, drink.order_id).await? {
                    Some(p) => {
                        tracing::debug!(order_id = p.order_id, payment_id = p.id, "payment refunded");
                        Ok(vec![payment_canceled(&self.ctx, &p)])
                    }
                    None => Ok(vec![]),
                },
                // Not subscribed to (see `CONSUMES`); listed so that a new event type is a
                // decision here, not a silent skip.
                Payload::Ordered(_)
                | Payload::OrderCanceled(_)
                | Payload::PaymentApproved(_)
                | Payload::PaymentCanceled(_)
                | Payload::OrderInfoReceived(_)
                | Payload::Receipted(_)
                | Payload::Made(_)
                | Payload::DeliveryStarted(_)
                | Payload::DeliveryCanceled(_)
                | Payload::Delivered(_) => Ok(vec![]),
            }
        })
    }
}
