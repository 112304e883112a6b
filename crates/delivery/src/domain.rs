//! Deliveries and cancellations, and the rules between them: a delivery goes
//! `Delivery Started` → `Delivered`, or → `Delivery Cancelled` when its order is cancelled
//! first; a cancelled order never starts a delivery; a delivered one cannot be cancelled.
//! Pure: no I/O.

use platform::json::{checked, Fields};
use platform::{JsonBody, Problem};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryStatus {
    #[serde(rename = "Delivery Started")]
    DeliveryStarted,
    #[serde(rename = "Delivery Cancelled")]
    DeliveryCancelled,
    Delivered,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] =
        [DeliveryStatus::DeliveryStarted, DeliveryStatus::DeliveryCancelled, DeliveryStatus::Delivered];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::DeliveryStarted => "Delivery Started",
            DeliveryStatus::DeliveryCancelled => "Delivery Cancelled",
            DeliveryStatus::Delivered => "Delivered",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ledger records only one kind of cancellation; the enum keeps its spelling checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancellationStatus {
    #[serde(rename = "Delivery Cancelled")]
    DeliveryCancelled,
}

impl CancellationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationStatus::DeliveryCancelled => "Delivery Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CancellationStatus> {
        (s == "Delivery Cancelled").then_some(CancellationStatus::DeliveryCancelled)
    }
}

/// A delivery as clients and events see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
}

/// An entry of the cancellation ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub id: i64,
    pub order_id: i64,
    pub status: CancellationStatus,
}

/// Why a change is refused (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("order {order_id} was already delivered")]
    AlreadyDelivered { order_id: i64 },
    #[error("delivery {id} is '{from}' and cannot become '{to}'")]
    IllegalTransition { id: i64, from: DeliveryStatus, to: DeliveryStatus },
}

/// Does `Made` start a delivery? Only for an order neither cancelled nor already delivering
/// (`Made` may be redelivered, or come after the cancellation was recorded).
pub fn starts_delivery(cancelled: bool, existing: Option<&Delivery>) -> bool {
    !cancelled && existing.is_none()
}

impl Delivery {
    /// `Delivery Started` → `Delivered`. `None` when it already is (a repeat: no new event).
    pub fn deliver(&self) -> Result<Option<Delivery>, Refusal> {
        match self.status {
            DeliveryStatus::DeliveryStarted => Ok(Some(Delivery { status: DeliveryStatus::Delivered, ..self.clone() })),
            DeliveryStatus::Delivered => Ok(None),
            DeliveryStatus::DeliveryCancelled => {
                Err(Refusal::IllegalTransition { id: self.id, from: self.status, to: DeliveryStatus::Delivered })
            }
        }
    }

    /// What recording its order's cancellation does to this delivery: `Delivery Cancelled`,
    /// `None` if it already is, refused once delivered.
    pub fn cancel(&self) -> Result<Option<Delivery>, Refusal> {
        match self.status {
            DeliveryStatus::DeliveryStarted => {
                Ok(Some(Delivery { status: DeliveryStatus::DeliveryCancelled, ..self.clone() }))
            }
            DeliveryStatus::DeliveryCancelled => Ok(None),
            DeliveryStatus::Delivered => Err(Refusal::AlreadyDelivered { order_id: self.order_id }),
        }
    }
}

/// A validated `POST /cancellations` body: the order to cancel.
pub fn parse_new_cancellation(body: &JsonBody) -> Result<i64, Problem> {
    let mut f = Fields::new(body);
    let order_id = f.id("orderId");
    f.finish()?;
    checked(order_id)
}

/// A validated `PATCH /deliveries/{id}` body. Only `Delivered` can be asked for: a delivery
/// starts from `Made` and is cancelled through the ledger, never by a PATCH.
pub fn parse_status_change(body: &JsonBody) -> Result<DeliveryStatus, Problem> {
    let mut f = Fields::new(body);
    let status = f.string("status", 1, 40);
    if let Some(s) = &status {
        if DeliveryStatus::parse(s) != Some(DeliveryStatus::Delivered) {
            f.error("status", "must be \"Delivered\"");
        }
    }
    f.finish()?;
    Ok(DeliveryStatus::Delivered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(status: DeliveryStatus) -> Delivery {
        Delivery { id: 1, order_id: 7, status }
    }

    fn body(v: serde_json::Value) -> JsonBody {
        JsonBody(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn statuses_serialise_with_their_spaces() {
        let d = delivery(DeliveryStatus::DeliveryStarted);
        assert_eq!(serde_json::to_value(&d).unwrap(), json!({"id": 1, "orderId": 7, "status": "Delivery Started"}));
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
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
        assert!(matches!(
            delivery(DeliveryStatus::DeliveryCancelled).deliver(),
            Err(Refusal::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_delivered_order_cannot_be_cancelled() {
        let cancelled = delivery(DeliveryStatus::DeliveryStarted).cancel().unwrap().unwrap();
        assert_eq!(cancelled.status, DeliveryStatus::DeliveryCancelled);
        assert_eq!(cancelled.cancel().unwrap(), None);
        assert!(matches!(delivery(DeliveryStatus::Delivered).cancel(), Err(Refusal::AlreadyDelivered { order_id: 7 })));
    }

    #[test]
    fn only_delivered_may_be_patched() {
        assert_eq!(parse_status_change(&body(json!({"status": "Delivered"}))).unwrap(), DeliveryStatus::Delivered);
        for bad in [json!({"status": "Delivery Started"}), json!({"status": "Lost"}), json!({"status": 3}), json!({})] {
            let p = parse_status_change(&body(bad.clone())).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "status"), "{bad}");
        }
    }

    #[test]
    fn a_cancellation_needs_a_positive_order_id() {
        assert_eq!(parse_new_cancellation(&body(json!({"orderId": 5}))).unwrap(), 5);
        for bad in [json!({"orderId": 0}), json!({"orderId": "5"}), json!({"orderId": 1.5}), json!({})] {
            let p = parse_new_cancellation(&body(bad.clone())).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "orderId"), "{bad}");
        }
    }
}
