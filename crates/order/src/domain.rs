//! Orders: what a valid order is, and its life: `Pending` while payment is asked, `Ordered`
//! once paid; a cancelled order is deleted. Pure: no I/O.

use platform::json::{checked, Fields};
use platform::{JsonBody, Problem};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Inserted, payment not yet confirmed. Invisible to clients.
    Pending,
    Ordered,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "Pending",
            OrderStatus::Ordered => "Ordered",
        }
    }
}

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

impl NewOrder {
    pub fn parse(body: &JsonBody) -> Result<NewOrder, Problem> {
        let mut f = Fields::new(body);
        let phone = f.string("phoneNumber", 1, 40).and_then(|raw| match PhoneNumber::parse(&raw) {
            Ok(p) => Some(p),
            Err(msg) => {
                f.error("phoneNumber", msg);
                None
            }
        });
        let product_name = f.string("productName", 1, 100);
        let qty = f.int("qty", 1, 100);
        let amt = f.int("amt", 0, 10_000_000);
        f.finish()?;
        Ok(NewOrder {
            phone_number: checked(phone)?,
            product_name: checked(product_name)?,
            qty: checked(qty)?,
            amt: checked(amt)?,
        })
    }
}

/// An order as clients and events see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub amt: i64,
    pub status: String,
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
}
