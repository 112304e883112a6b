//! Payments: what a valid charge or void request is, and the two statuses. A payment only
//! ever goes `Approved` → `Canceled` (the store's conditional update enforces it). Pure: no I/O.

use platform::json::{checked, Fields};
use platform::{JsonBody, Problem};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Approved,
    Canceled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Approved => "Approved",
            PaymentStatus::Canceled => "Canceled",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown payment status '{0}'")]
pub struct UnknownStatus(String);

/// Statuses are stored as their names; anything else in the table is corruption, not input.
impl TryFrom<String> for PaymentStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "Approved" => Ok(PaymentStatus::Approved),
            "Canceled" => Ok(PaymentStatus::Canceled),
            _ => Err(UnknownStatus(s)),
        }
    }
}

/// A validated `POST /payments` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub order_id: i64,
    pub phone_number: String,
    pub amt: i64,
}

impl NewPayment {
    pub fn parse(body: &JsonBody) -> Result<NewPayment, Problem> {
        let mut f = Fields::new(body);
        let order_id = f.id("orderId");
        let phone_number = f.string("phoneNumber", 1, 40);
        let amt = f.int("amt", 0, 10_000_000);
        f.finish()?;
        Ok(NewPayment { order_id: checked(order_id)?, phone_number: checked(phone_number)?, amt: checked(amt)? })
    }
}

/// A validated `POST /payments/voids` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Void {
    pub order_id: i64,
}

impl Void {
    pub fn parse(body: &JsonBody) -> Result<Void, Problem> {
        let mut f = Fields::new(body);
        let order_id = f.id("orderId");
        f.finish()?;
        Ok(Void { order_id: checked(order_id)? })
    }
}

/// A payment as clients and events see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub amt: i64,
    pub status: PaymentStatus,
    pub create_time: String,
}

/// By hand rather than derived: the derive's `try_from` for the status needs sqlx's
/// `macros` feature, which the workspace does not enable.
impl<'r> sqlx::FromRow<'r, AnyRow> for Payment {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(Payment {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            phone_number: row.try_get("phone_number")?,
            amt: row.try_get("amt")?,
            status: PaymentStatus::try_from(status)
                .map_err(|e| sqlx::Error::ColumnDecode { index: "status".into(), source: Box::new(e) })?,
            create_time: row.try_get("create_time")?,
        })
    }
}

/// The simulated processing time, `lo..=hi` ms, picked by `random`.
pub fn processing_delay_ms((lo, hi): (u64, u64), random: u64) -> u64 {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    match (hi - lo).checked_add(1) {
        Some(span) => lo + random % span,
        None => random,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> JsonBody {
        JsonBody(v.as_object().unwrap().clone())
    }

    #[test]
    fn statuses_serialise_by_name_and_round_trip() {
        for s in [PaymentStatus::Approved, PaymentStatus::Canceled] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(PaymentStatus::try_from(s.as_str().to_string()).unwrap(), s);
        }
        assert!(PaymentStatus::try_from("Refunded".to_string()).is_err());
    }

    #[test]
    fn a_new_payment_names_every_bad_field() {
        let p = NewPayment::parse(&body(json!({"orderId": 0, "phoneNumber": "", "amt": 10_000_001}))).unwrap_err();
        let names: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["orderId", "phoneNumber", "amt"]);
        let ok = NewPayment::parse(&body(json!({"orderId": 3, "phoneNumber": "010-1", "amt": 0}))).unwrap();
        assert_eq!(ok, NewPayment { order_id: 3, phone_number: "010-1".into(), amt: 0 });
    }

    #[test]
    fn a_void_needs_a_positive_order_id() {
        assert_eq!(Void::parse(&body(json!({"orderId": "3"}))).unwrap_err().status, 400);
        assert_eq!(Void::parse(&body(json!({"orderId": 3}))).unwrap(), Void { order_id: 3 });
    }

    #[test]
    fn the_delay_stays_within_its_range() {
        for r in [0, 1, 219, 220, 221, u64::MAX] {
            assert!((400..=620).contains(&processing_delay_ms((400, 620), r)), "{r}");
        }
        assert_eq!(processing_delay_ms((5, 5), 12345), 5);
        assert_eq!(processing_delay_ms((620, 400), 0), 400);
    }
}
