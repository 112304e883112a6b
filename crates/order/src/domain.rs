//! Orders: what a valid order is, and its life: `Pending` while payment is asked, `Ordered`
//! once paid; a cancelled order is deleted. Pure: no I/O, no HTTP.

use serde::Serialize;

/// The status is a contract (`Ordered` and `OrderCanceled` travel in events); `Pending` is
/// stored only, while payment is asked, and no client or event ever sees it.
pub use contracts::OrderStatus;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
