//! Accounts and the rules their names, passwords and roles follow. Pure: values in, values
//! out; storage and hashing live elsewhere.

use contracts::PhoneNumber;
use platform::auth::Role;
use serde::Serialize;

/// An account as shown to clients. The password hash is not part of it, so no answer can
/// carry one by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: i64,
    /// A customer's is their phone number; a staff member's is chosen by the manager.
    pub username: String,
    pub role: Role,
    /// A customer's phone number; staff have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    pub create_time: String,
}

/// A staff member's user name: 1 to 64 letters, digits, `.`, `_` or `-`, and not something
/// that reads as a phone number, because those name customers (and sign-in takes a name
/// that parses as one to be a customer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const RULE: &'static str = "must be 1 to 64 letters, digits, '.', '_' or '-'";
    pub const NOT_A_PHONE: &'static str = "must not be a phone number (those are customers' user names)";

    pub fn staff(raw: &str) -> Result<Username, &'static str> {
        let n = raw.chars().count();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !(1..=64).contains(&n) || !raw.chars().all(allowed) {
            return Err(Self::RULE);
        }
        if PhoneNumber::parse(raw).is_ok() {
            return Err(Self::NOT_A_PHONE);
        }
        Ok(Username(raw.to_string()))
    }

    /// A customer's user name: their phone number, normalised.
    pub fn customer(phone: &PhoneNumber) -> Username {
        Username(phone.as_str().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The account a typed user name means: a customer may type their number with hyphens.
pub fn sign_in_name(typed: &str) -> String {
    match PhoneNumber::parse(typed) {
        Ok(phone) => phone.as_str().to_string(),
        Err(_) => typed.to_string(),
    }
}

/// A new password: 8 to 1024 characters, taken exactly as typed (spaces count). Its
/// `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 1024;
    pub const RULE: &'static str = "must be 8 to 1024 characters";
    pub const NO_CONTROL: &'static str = "must not contain control characters";

    pub fn new(raw: &str) -> Result<Password, &'static str> {
        if !(Self::MIN..=Self::MAX).contains(&raw.chars().count()) {
            Err(Self::RULE)
        } else if raw.chars().any(char::is_control) {
            // Nobody types one at a sign-in form: a password holding one was never meant.
            Err(Self::NO_CONTROL)
        } else {
            Ok(Password(raw.to_string()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The roles a manager may give a staff account: a customer registers themselves, and
/// `service` is no person's role.
pub const STAFF: [Role; 3] = [Role::Barista, Role::Rider, Role::Manager];
pub const STAFF_RULE: &str = "must be barista, rider or manager";

pub fn staff_role(role: Role) -> Result<Role, &'static str> {
    if STAFF.contains(&role) {
        Ok(role)
    } else {
        Err(STAFF_RULE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_names_are_short_plain_and_not_phone_numbers() {
        for good in ["manager", "kim.barista", "rider_2", "a", "x-1", &"n".repeat(64)] {
            assert_eq!(Username::staff(good).map(|u| u.as_str().to_string()), Ok(good.to_string()));
        }
        for bad in ["", "has space", "ümlaut", "semi;colon", &"n".repeat(65)] {
            assert_eq!(Username::staff(bad), Err(Username::RULE), "{bad:?}");
        }
        for phone in ["01012345678", "010-1234-5678"] {
            assert_eq!(Username::staff(phone), Err(Username::NOT_A_PHONE));
        }
    }

    #[test]
    fn a_typed_phone_number_means_its_normal_form() {
        assert_eq!(sign_in_name("010-1234-5678"), "01012345678");
        assert_eq!(sign_in_name("manager"), "manager");
        assert_eq!(sign_in_name("12-34"), "12-34", "too short to be a phone number: taken as typed");
    }

    #[test]
    fn passwords_count_characters_and_keep_spaces() {
        assert!(Password::new("1234567").is_err());
        assert_eq!(Password::new(" 1234567").unwrap().expose(), " 1234567");
        assert!(Password::new(&"é".repeat(1024)).is_ok());
        assert!(Password::new(&"é".repeat(1025)).is_err());
        for control in ["long enough\u{0}", "\u{1b}[31mlong enough", "long\tenough", "long enough\n"] {
            assert!(Password::new(control).is_err(), "{control:?}");
        }
        assert_eq!(format!("{:?}", Password::new("secret-words").unwrap()), "Password(..)");
    }

    #[test]
    fn only_staff_roles_are_given_to_staff() {
        for role in STAFF {
            assert_eq!(staff_role(role), Ok(role));
        }
        assert_eq!(staff_role(Role::Customer), Err(STAFF_RULE));
        assert_eq!(staff_role(Role::Service), Err(STAFF_RULE));
    }
}
