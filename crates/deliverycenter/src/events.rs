//! What the delivery center listens to (`Ordered`, `DeliveryStarted`, `DeliveryCanceled`,
//! `Delivered`) and how each event becomes a [`Fact`] about an order's page. It raises nothing.

use contracts::{EventType, Payload};
use futures::future::BoxFuture;
use platform::view::View;
use platform::Conn;

use crate::domain::{DeliveryPage, DeliveryPageStatus, Fact};
use crate::store;

/// The event types the delivery center consumes.
pub const CONSUMES: &[EventType] =
    &[EventType::Ordered, EventType::DeliveryStarted, EventType::DeliveryCanceled, EventType::Delivered];

/// What `payload` tells about its order's page; `None` for an event this view ignores.
pub fn fact(payload: &Payload) -> Option<Fact> {
    Some(match payload {
        // `id` is the order's.
        Payload::Ordered(o) => Fact {
            amt: Some(o.amt),
            product_name: Some(o.product_name.clone()),
            qty: Some(o.qty),
            phone_number: Some(o.phone_number.clone()),
            ..Fact::stage(o.id, DeliveryPageStatus::Ordered)
        },
        // `id` is the delivery's.
        Payload::DeliveryStarted(d) => {
            Fact { delivery_id: Some(d.id), ..Fact::stage(d.order_id, DeliveryPageStatus::DeliveryStarted) }
        }
        // The delivery's id came with `DeliveryStarted`; a cancellation's `id` is the ledger
        // entry's, not a delivery's.
        Payload::Delivered(d) => Fact::stage(d.order_id, DeliveryPageStatus::Delivered),
        Payload::DeliveryCanceled(d) => Fact::stage(d.order_id, DeliveryPageStatus::DeliveryCancelled),
        // Payment and the baristas do not change a delivery page, and an order's cancellation
        // shows here once the ledger records it (`DeliveryCanceled`).
        Payload::OrderCanceled(_)
        | Payload::PaymentApproved(_)
        | Payload::PaymentCanceled(_)
        | Payload::OrderInfoReceived(_)
        | Payload::Receipted(_)
        | Payload::Made(_)
        | Payload::DrinkCanceled(_) => return None,
    })
}

/// The view: each consumed event merged into its order's page.
pub struct UpdateDeliveryPage;

impl View for UpdateDeliveryPage {
    type Payload = Payload;
    type Fact = Fact;
    type Row = DeliveryPage;

    fn fact(payload: &Payload) -> Option<Fact> {
        fact(payload)
    }

    fn key(fact: &Fact) -> i64 {
        fact.order_id
    }

    fn apply(row: Option<DeliveryPage>, fact: &Fact) -> DeliveryPage {
        crate::domain::apply(row, fact)
    }

    fn load<'a>(conn: &'a mut Conn, keys: &'a [i64]) -> BoxFuture<'a, Result<Vec<(i64, DeliveryPage)>, sqlx::Error>> {
        Box::pin(store::load(conn, keys))
    }

    fn save<'a>(conn: &'a mut Conn, rows: &'a [DeliveryPage], added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(store::save(conn, rows, added))
    }
}

#[cfg(test)]
mod tests {
    use contracts::{EventType, Payload};

    use super::{fact, CONSUMES};

    /// One payload of every event type, about order 8.
    #[test]
    fn it_subscribes_to_exactly_the_events_it_reads() {
        let payloads = contracts::events::examples();
        let kinds: Vec<EventType> = payloads.iter().map(Payload::kind).collect();
        assert_eq!(kinds.len(), EventType::ALL.len());
        assert!(EventType::ALL.iter().all(|t| kinds.contains(t)));
        for p in &payloads {
            let f = fact(p);
            assert_eq!(f.is_some(), CONSUMES.contains(&p.kind()), "{:?}", p.kind());
            assert_eq!(f.map(|f| f.order_id), CONSUMES.contains(&p.kind()).then_some(8));
        }
    }
}
