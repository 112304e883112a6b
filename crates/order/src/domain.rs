//! Orders: what a valid order is, and its life: `Pending` while payment is asked, `Ordered`
//! once paid; a cancelled order is deleted. Pure: no I/O, no HTTP.

use serde::Serialize;

/// The status is a contract (`Ordered` and `OrderCanceled` travel in events); `Pending` is
/// stored only, while payment is asked, and no client or event ever sees it.
pub use contracts::OrderStatus;

/// A phone number: 9–15 digits once hyphens are stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<PhoneNumber, &'static str> {
        let digits: String = raw.chars().filter(|c| *c != '-').collect();
        if (9..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(PhoneNumber(digits))
        } else {
            Err("must be 9 to 15 digits (hyphens allowed)")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    fn phone_numbers_strip_hyphens_and_count_digits() {
        assert_eq!(PhoneNumber::parse("010-1234-5678").unwrap().as_str(), "01012345678");
        assert!(PhoneNumber::parse("12345678").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        assert!(PhoneNumber::parse("010-1234-567a").is_err());
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
