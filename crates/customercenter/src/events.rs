//! What the customer center listens to (every step of an order's life, from four services)
//! and how each event becomes a fact about an order's row: a row holding only what the event
//! tells. It raises nothing.

use contracts::{EventType, Payload};
use platform::view::View;

use crate::domain::{MyPage, MyPageStatus};

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

/// The view: each consumed event merged into its order's row.
pub struct UpdateMyPage;

impl View for UpdateMyPage {
    type Payload = Payload;
    type Row = MyPage;

    /// What `payload` tells about its order's row; `None` for an event this view ignores.
    ///
    /// Order's own events carry the order id as `id`; everyone else's carry their own entity's
    /// id as `id` and the order's as `orderId`.
    fn fact(payload: &Payload) -> Option<MyPage> {
        Some(match payload {
            Payload::Ordered(o) => MyPage {
                phone_number: Some(o.phone_number.clone()),
                product_name: Some(o.product_name.clone()),
                qty: Some(o.qty),
                amt: Some(o.amt),
                ..MyPage::stage(o.id, MyPageStatus::Ordered)
            },
            Payload::OrderCanceled(o) => MyPage::stage(o.id, MyPageStatus::OrderCanceled),
            Payload::PaymentApproved(p) => MyPage {
                payment_id: Some(p.id),
                phone_number: Some(p.phone_number.clone()),
                amt: Some(p.amt),
                ..MyPage::stage(p.order_id, MyPageStatus::PaymentApproved)
            },
            Payload::OrderInfoReceived(d) => MyPage {
                drink_id: Some(d.id),
                product_name: Some(d.product_name.clone()),
                qty: Some(d.qty),
                phone_number: Some(d.phone_number.clone()),
                ..MyPage::stage(d.order_id, MyPageStatus::Received)
            },
            Payload::Receipted(d) => {
                MyPage { drink_id: Some(d.id), ..MyPage::stage(d.order_id, MyPageStatus::Receipted) }
            }
            Payload::Made(d) => MyPage { drink_id: Some(d.id), ..MyPage::stage(d.order_id, MyPageStatus::Made) },
            Payload::DeliveryStarted(d) => {
                MyPage { delivery_id: Some(d.id), ..MyPage::stage(d.order_id, MyPageStatus::DeliveryStarted) }
            }
            Payload::Delivered(d) => {
                MyPage { delivery_id: Some(d.id), ..MyPage::stage(d.order_id, MyPageStatus::Delivered) }
            }
            // The cancellations tell only the stage: the drink's and the payment's ids came with
            // earlier events, and the cancellation ledger entry's id is not a delivery's.
            Payload::DeliveryCanceled(d) => MyPage::stage(d.order_id, MyPageStatus::DeliveryCancelled),
            Payload::DrinkCanceled(d) => MyPage::stage(d.order_id, MyPageStatus::DrinkCanceled),
            Payload::PaymentCanceled(p) => MyPage::stage(p.order_id, MyPageStatus::PaymentCanceled),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{UpdateMyPage, CONSUMES};

    #[test]
    fn it_subscribes_to_exactly_the_events_it_reads() {
        contracts::events::assert_view_reads_exactly::<UpdateMyPage>(CONSUMES);
    }
}
