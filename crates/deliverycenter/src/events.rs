//! What the delivery center listens to (`Ordered`, `DeliveryStarted`, `DeliveryCanceled`,
//! `Delivered`) and how each event becomes a fact about an order's page: a page holding only
//! what the event tells. It raises nothing.

use contracts::{EventType, Payload};
use platform::view::View;

use crate::domain::{DeliveryPage, DeliveryPageStatus};

/// The event types the delivery center consumes.
pub const CONSUMES: &[EventType] =
    &[EventType::Ordered, EventType::DeliveryStarted, EventType::DeliveryCanceled, EventType::Delivered];

/// The view: each consumed event merged into its order's page.
pub struct UpdateDeliveryPage;

impl View for UpdateDeliveryPage {
    type Payload = Payload;
    type Row = DeliveryPage;

    /// What `payload` tells about its order's page; `None` for an event this view ignores.
    fn fact(payload: &Payload) -> Option<DeliveryPage> {
        Some(match payload {
            // `id` is the order's.
            Payload::Ordered(o) => DeliveryPage {
                amt: Some(o.amt),
                product_name: Some(o.product_name.clone()),
                qty: Some(o.qty),
                phone_number: Some(o.phone_number.clone()),
                ..DeliveryPage::stage(o.id, DeliveryPageStatus::Ordered)
            },
            // `id` is the delivery's.
            Payload::DeliveryStarted(d) => DeliveryPage {
                delivery_id: Some(d.id),
                ..DeliveryPage::stage(d.order_id, DeliveryPageStatus::DeliveryStarted)
            },
            // The delivery's id came with `DeliveryStarted`; a cancellation's `id` is the ledger
            // entry's, not a delivery's.
            Payload::Delivered(d) => DeliveryPage::stage(d.order_id, DeliveryPageStatus::Delivered),
            Payload::DeliveryCanceled(d) => DeliveryPage::stage(d.order_id, DeliveryPageStatus::DeliveryCancelled),
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
}

#[cfg(test)]
mod tests {
    use super::{UpdateDeliveryPage, CONSUMES};

    #[test]
    fn it_subscribes_to_exactly_the_events_it_reads() {
        contracts::events::assert_view_reads_exactly::<UpdateDeliveryPage>(CONSUMES);
    }
}
