//! The statuses that cross service boundaries, each spelled once by its serde attributes:
//! [`status!`] gives every one `as_str`, `parse` and `Display` from that spelling.

use serde::{Deserialize, Serialize};

macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vattr:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vattr])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its name on the wire and in storage.
            pub fn as_str(self) -> &'static str {
                platform::spelling::name(&self)
            }

            /// The status named `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                platform::spelling::parse(text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status!(
    /// An order's status. `Pending` is stored only, while payment is asked: no client and no
    /// event ever sees it.
    OrderStatus { Pending, Ordered, OrderCanceled }
);

status!(
    /// A payment only ever goes `Approved` → `Canceled`.
    PaymentStatus { Approved, Canceled }
);

status!(
    /// A drink in the barista queue.
    DrinkStatus { Received, Receipted, Made, Canceled }
);

status!(
    /// A delivery, and the cancellation ledger's one status (`Delivery Cancelled`).
    DeliveryStatus {
        #[serde(rename = "Delivery Started")]
        DeliveryStarted,
        #[serde(rename = "Delivery Cancelled")]
        DeliveryCancelled,
        Delivered,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_spelled_as_the_spec_spells_them() {
        assert_eq!(DeliveryStatus::DeliveryStarted.as_str(), "Delivery Started");
        assert_eq!(DeliveryStatus::parse("Delivery Cancelled"), Some(DeliveryStatus::DeliveryCancelled));
        assert_eq!(DrinkStatus::parse("made"), None);
        for s in DrinkStatus::ALL {
            assert_eq!(DrinkStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(OrderStatus::OrderCanceled.to_string(), "OrderCanceled");
        assert_eq!(PaymentStatus::ALL.len(), 2);
    }
}
