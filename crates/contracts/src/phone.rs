//! The phone number a customer is known by: their user name at `identity`, the number their
//! orders carry, and what their token confines them to. One spelling, so the three compare.

use serde::{Deserialize, Serialize};

/// A phone number: 9–15 digits once hyphens are stripped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub const RULE: &'static str = "must be 9 to 15 digits (hyphens allowed)";

    pub fn parse(raw: &str) -> Result<PhoneNumber, &'static str> {
        let digits: String = raw.chars().filter(|c| *c != '-').collect();
        if (9..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(PhoneNumber(digits))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<PhoneNumber, &'static str> {
        PhoneNumber::parse(&raw)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
