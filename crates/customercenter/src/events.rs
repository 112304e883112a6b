//! What the customer center listens to (every step of an order's life, from four services)
//! and how each event becomes a [`Fact`] about an order's row. It raises nothing.

use contracts::{EventType, Payload};
use futures::future::BoxFuture;
use platform::view::View;
use platform::Conn;

use crate::domain::{Fact, MyPage, MyPageStatus};
use crate::store;

/// The event types the customer center consumes: all of them, since "my page" follows an
/// order from its placement to its delivery or refund.
pub const CONSUMES: &[EventType] = &[
    EventType::Ordered,
    EventType::PaymentApproved,
    EventType::OrderInfoReceived,
    EventType::Receipted,
    EventType::Made,
    EventType::DeliveryStarted,
    EventType::Delivered,
    EventType::OrderCanceled,
    EventType::DrinkCanceled,
    EventType::PaymentCanceled,
    EventType::DeliveryCanceled,
];

/// What `payload` tells about its order's row; `None` for an event this view ignores.
///
/// Order's own events carry the order id as `id`; everyone else's carry their own entity's
/// id as `id` and the order's as `orderId`.
pub fn fact(payload: &Payload) -> Option<Fact> {
    Some(match payload {
        Payload::Ordered(o) => Fact {
            phone_number: Some(o.phone_number.clone()),
            product_name: Some(o.product_name.clone()),
            qty: Some(o.qty),
            amt: Some(o.amt),
            ..Fact::stage(o.id, MyPageStatus::Ordered)
        },
        Payload::OrderCanceled(o) => Fact::stage(o.id, MyPageStatus::OrderCanceled),
        Payload::PaymentApproved(p) => Fact {
            payment_id: Some(p.id),
            phone_number: Some(p.phone_number.clone()),
            amt: Some(p.amt),
            ..Fact::stage(p.order_id, MyPageStatus::PaymentApproved)
        },
        Payload::OrderInfoReceived(d) => Fact {
            drink_id: Some(d.id),
            product_name: Some(d.product_name.clone()),
            qty: Some(d.qty),
            phone_number: Some(d.phone_number.clone()),
            ..Fact::stage(d.order_id, MyPageStatus::Received)
        },
        Payload::Receipted(d) => Fact { drink_id: Some(d.id), ..Fact::stage(d.order_id, MyPageStatus::Receipted) },
        Payload::Made(d) => Fact { drink_id: Some(d.id), ..Fact::stage(d.order_id, MyPageStatus::Made) },
        Payload::DeliveryStarted(d) => {
            Fact { delivery_id: Some(d.id), ..Fact::stage(d.order_id, MyPageStatus::DeliveryStarted) }
        }
        Payload::Delivered(d) => Fact { delivery_id: Some(d.id), ..Fact::stage(d.order_id, MyPageStatus::Delivered) },
        // The cancellations tell only the stage: the drink's and the payment's ids came with
        // earlier events, and the cancellation ledger entry's id is not a delivery's.
        Payload::DeliveryCanceled(d) => Fact::stage(d.order_id, MyPageStatus::DeliveryCancelled),
        Payload::DrinkCanceled(d) => Fact::stage(d.order_id, MyPageStatus::DrinkCanceled),
        Payload::PaymentCanceled(p) => Fact::stage(p.order_id, MyPageStatus::PaymentCanceled),
    })
}

/// The view: each consumed event merged into its order's row.
pub struct UpdateMyPage;

impl View for UpdateMyPage {
    type Payload = Payload;
    type Fact = Fact;
    type Row = MyPage;

    fn fact(payload: &Payload) -> Option<Fact> {
        fact(payload)
    }

    fn key(fact: &Fact) -> i64 {
        fact.order_id
    }

    fn apply(row: Option<MyPage>, fact: &Fact) -> MyPage {
        crate::domain::apply(row, fact)
    }

    fn load<'a>(conn: &'a mut Conn, keys: &'a [i64]) -> BoxFuture<'a, Result<Vec<(i64, MyPage)>, sqlx::Error>> {
        Box::pin(store::load(conn, keys))
    }

    fn save<'a>(conn: &'a mut Conn, rows: &'a [MyPage], _added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(store::save(conn, rows))
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
