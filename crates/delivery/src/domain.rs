//! Deliveries and cancellations, and the rules between them: a delivery goes
//! `Delivery Started` → `Delivered`, or → `Delivery Cancelled` when its order is cancelled
//! first; a cancelled order never starts a delivery; a delivered one cannot be cancelled.
//! Pure: no I/O, and no HTTP: request bodies are validated at the edge (`api`), which also
//! turns [`Error`] into answers.

use serde::Serialize;

use crate::Error;

/// The status deliveries and their events carry, spelled once in `contracts`; the
/// cancellation ledger's entries are all `Delivery Cancelled`.
pub use contracts::DeliveryStatus;

/// A delivery as clients and events see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
}

/// An entry of the cancellation ledger: its status is always `Delivery Cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
}

/// Does `Made` start a delivery? Only for an order neither cancelled nor already delivering
/// (`Made` may be redelivered, or come after the cancellation was recorded).
pub fn starts_delivery(cancelled: bool, existing: Option<&Delivery>) -> bool {
    !cancelled && existing.is_none()
}

impl Delivery {
    /// `Delivery Started` → `Delivered`. `None` when it already is (a repeat: no new event).
    pub fn deliver(&self) -> Result<Option<Delivery>, Error> {
        match self.status {
            DeliveryStatus::DeliveryStarted => Ok(Some(Delivery { status: DeliveryStatus::Delivered, ..self.clone() })),
            DeliveryStatus::Delivered => Ok(None),
            DeliveryStatus::DeliveryCancelled => {
                Err(Error::IllegalTransition { id: self.id, from: self.status, to: DeliveryStatus::Delivered })
            }
        }
    }

    /// What recording its order's cancellation does to this delivery: `Delivery Cancelled`,
    /// `None` if it already is, refused once delivered.
    pub fn cancel(&self) -> Result<Option<Delivery>, Error> {
        match self.status {
            DeliveryStatus::DeliveryStarted => {
                Ok(Some(Delivery { status: DeliveryStatus::DeliveryCancelled, ..self.clone() }))
            }
            DeliveryStatus::DeliveryCancelled => Ok(None),
            DeliveryStatus::Delivered => Err(Error::AlreadyDelivered { order_id: self.order_id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(status: DeliveryStatus) -> Delivery {
        Delivery { id: 1, order_id: 7, status }
    }

    #[test]
    fn statuses_serialise_with_their_spaces() {
        let d = delivery(DeliveryStatus::DeliveryStarted);
        assert_eq!(serde_json::to_value(&d).unwrap(), json!({"id": 1, "orderId": 7, "status": "Delivery Started"}));
        let c = Cancellation { id: 2, order_id: 7, status: DeliveryStatus::DeliveryCancelled };
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"id": 2, "orderId": 7, "status": "Delivery Cancelled"}));
    }

    #[test]
    fn made_starts_a_delivery_only_for_an_uncancelled_order_without_one() {
        assert!(starts_delivery(false, None));
        assert!(!starts_delivery(true, None));
        assert!(!starts_delivery(false, Some(&delivery(DeliveryStatus::DeliveryStarted))));
    }

    #[test]
    fn a_started_delivery_can_be_delivered_once() {
        let done = delivery(DeliveryStatus::DeliveryStarted).deliver().unwrap().unwrap();
        assert_eq!(done.status, DeliveryStatus::Delivered);
        assert_eq!(done.deliver().unwrap(), None);
        let refused = delivery(DeliveryStatus::DeliveryCancelled).deliver().unwrap_err();
        assert!(matches!(refused, Error::IllegalTransition { id: 1, .. }), "{refused:?}");
        assert_eq!(refused.to_string(), "delivery 1 is 'Delivery Cancelled' and cannot become 'Delivered'");
    }

    #[test]
    fn a_delivered_order_cannot_be_cancelled() {
        let cancelled = delivery(DeliveryStatus::DeliveryStarted).cancel().unwrap().unwrap();
        assert_eq!(cancelled.status, DeliveryStatus::DeliveryCancelled);
        assert_eq!(cancelled.cancel().unwrap(), None);
        let refused = delivery(DeliveryStatus::Delivered).cancel().unwrap_err();
        assert!(matches!(refused, Error::AlreadyDelivered { order_id: 7 }), "{refused:?}");
        assert_eq!(refused.to_string(), "order 7 was already delivered");
    }
}
