//! Orders: what a valid order is, and its life: `Pending` while payment is asked, `Ordered`
//! once paid, `Cancelling` while delivery is asked to record its cancellation; a cancelled
//! order is deleted. Pure: no I/O, no HTTP.

use serde::{Deserialize, Serialize};

/// The status is a contract (`Ordered` and `OrderCanceled` travel in events); `Pending` is
/// stored only, while payment is asked, and no client or event ever sees it.
pub use contracts::OrderStatus;

/// Where an order is, as stored: the contract's `Pending` and `Ordered`, and a stage of
/// order's own that never leaves the service.
///
/// `Voiding`: a pending order claimed for voiding, by its placement (payment refused or
/// unreachable) or by the reconciler (the placement is stale). `confirm` takes only a
/// `Pending` order, and a payment is voided only once its order is claimed, so a late
/// confirmation and a void can never both happen: no `Ordered` order with a voided payment.
///
/// `Cancelling`: an order whose cancellation delivery was asked to record, with no answer
/// yet (or one that was lost). It is still an order until delivery records the
/// cancellation, so clients see it `Ordered` and no event ever names it. It is stored as
/// `Ordered` with the time of the last ask set, so every read, list and sort of orders sees
/// it as the order it still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Pending,
    Voiding,
    Ordered,
    Cancelling,
}

impl Stage {
    /// Its name in the status column (`Pending` and `Ordered` as the contract spells them).
    /// `Cancelling` is never stored under its own name (see [`Stage`]).
    pub fn as_str(self) -> &'static str {
        platform::spelling::name(&self)
    }

    /// The stage stored as `text`, if any.
    pub fn parse(text: &str) -> Option<Stage> {
        platform::spelling::parse(text)
    }

    /// The status an order at this stage has: a claimed order is still not placed, and an
    /// order being cancelled is still placed.
    pub fn status(self) -> OrderStatus {
        match self {
            Stage::Pending | Stage::Voiding => OrderStatus::Pending,
            Stage::Ordered | Stage::Cancelling => OrderStatus::Ordered,
        }
    }
}

pub use contracts::PhoneNumber;

/// A validated `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub phone_number: PhoneNumber,
    pub product_name: String,
    pub qty: i64,
    pub amt: i64,
}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub amt: i64,
    pub status: OrderStatus,
    pub create_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_the_contract_knows_are_stored_as_it_spells_them() {
        for stage in [Stage::Pending, Stage::Ordered] {
            assert_eq!(stage.as_str(), stage.status().as_str());
        }
        assert_eq!(Stage::parse("Voiding"), Some(Stage::Voiding));
        assert_eq!(Stage::Voiding.status(), OrderStatus::Pending);
        assert_eq!(Stage::Cancelling.status(), OrderStatus::Ordered);
        assert_eq!(Stage::parse("OrderCanceled"), None);
    }

    #[test]
    fn an_order_serialises_with_the_specs_field_names() {
        let order = Order {
            id: 8,
            phone_number: "01012345678".into(),
            product_name: "Latte".into(),
            qty: 2,
            amt: 9000,
            status: OrderStatus::Ordered,
            create_time: "2026-01-01T00:00:00.000Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&order).unwrap(),
            serde_json::json!({
                "id": 8, "phoneNumber": "01012345678", "productName": "Latte", "qty": 2, "amt": 9000,
                "status": "Ordered", "createTime": "2026-01-01T00:00:00.000Z",
            })
        );
    }
}
