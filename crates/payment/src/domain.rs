//! Payments: what a payment is, and its two statuses. A payment only ever goes `Approved` →
//! `Canceled` (the store's conditional update enforces it). Pure: no I/O, no HTTP.
//!
//! A charge and a void arrive as the call types order sends ([`contracts::calls::Charge`],
//! [`contracts::calls::VoidPayment`]), validated at the edge (`api.rs`).

use serde::Serialize;

/// A contract: `PaymentApproved` and `PaymentCanceled` carry it, and order reads it.
pub use contracts::PaymentStatus;

/// A payment as clients and events see it. Order reads it as a
/// [`contracts::calls::PaymentAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub amt: i64,
    pub status: PaymentStatus,
    pub create_time: String,
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
    use contracts::calls::PaymentAnswer;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_payment_serialises_as_before_and_reads_as_the_answer_order_expects() {
        let p = Payment {
            id: 4,
            order_id: 8,
            phone_number: "01012345678".into(),
            amt: 4500,
            status: PaymentStatus::Approved,
            create_time: "2026-01-01T00:00:00.000Z".into(),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"id": 4, "orderId": 8, "phoneNumber": "01012345678", "amt": 4500, "status": "Approved",
                   "createTime": "2026-01-01T00:00:00.000Z"})
        );
        let answer: PaymentAnswer = serde_json::from_value(v).unwrap();
        assert_eq!(answer, PaymentAnswer { id: 4, order_id: 8, status: PaymentStatus::Approved });
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
