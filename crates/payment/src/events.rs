//! What payment publishes, and its one policy: a cancelled drink refunds the order's
//! payment (`DrinkCanceled` → `PaymentCanceled`), the compensation end of a cancellation.

use futures::future::BoxFuture;
use platform::outbox::Handler;
use platform::{Conn, Ctx, Event};
use serde::Deserialize;

use crate::domain::Payment;

pub const PAYMENT_APPROVED: &str = "PaymentApproved";
pub const PAYMENT_CANCELED: &str = "PaymentCanceled";
pub const DRINK_CANCELED: &str = "DrinkCanceled";

/// The event types payment consumes.
pub const CONSUMES: &[&str] = &[DRINK_CANCELED];

/// Both events carry the payment as it is: id, orderId, phoneNumber, amt, status.
pub fn payment_approved(ctx: &Ctx, p: &Payment) -> Event {
    ctx.event(PAYMENT_APPROVED, &Announced::from(p))
}

pub fn payment_canceled(ctx: &Ctx, p: &Payment) -> Event {
    ctx.event(PAYMENT_CANCELED, &Announced::from(p))
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Announced<'a> {
    id: i64,
    order_id: i64,
    phone_number: &'a str,
    amt: i64,
    status: &'static str,
}

impl<'a> From<&'a Payment> for Announced<'a> {
    fn from(p: &'a Payment) -> Self {
        Announced {
            id: p.id,
            order_id: p.order_id,
            phone_number: &p.phone_number,
            amt: p.amt,
            status: p.status.as_str(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrinkCanceled {
    order_id: i64,
}

/// Refunds on `DrinkCanceled`. Nothing to refund (no payment, or already `Canceled`) is fine:
/// the event may be a repeat, or the order was voided before it was ever paid.
pub struct Refund {
    pub ctx: Ctx,
}

impl Handler for Refund {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            if event.event_type != DRINK_CANCELED {
                return Ok(vec![]);
            }
            let drink: DrinkCanceled = match event.payload() {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(event_id = %event.event_id, error = %e, "unreadable DrinkCanceled skipped");
                    return Ok(vec![]);
                }
            };
            match crate::store::cancel_approved(conn, drink.order_id).await? {
                Some(p) => {
                    tracing::debug!(order_id = p.order_id, payment_id = p.id, "payment refunded");
                    Ok(vec![payment_canceled(&self.ctx, &p)])
                }
                None => Ok(vec![]),
            }
        })
    }
}
