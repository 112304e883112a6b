//! "My page" of an order and the merge rule that keeps it convergent: the status only moves
//! to a higher-ranked stage, every cancellation above every step of progress, and each field
//! comes from the source that wins it, whatever arrives first:
//!
//! | field | sources | wins |
//! |---|---|---|
//! | `phoneNumber` | `Ordered`, `PaymentApproved`, `OrderInfoReceived` | `Ordered`; before it, the first (hyphens stripped) |
//! | `productName`, `qty` | `Ordered`, `OrderInfoReceived` | `Ordered`; before it, the first |
//! | `amt` | `Ordered`, `PaymentApproved` | `Ordered`; before it, the first |
//! | `paymentId` | `PaymentApproved` | the one payment of the order |
//! | `drinkId` | `OrderInfoReceived`, `Receipted`, `Made` | the one drink of the order |
//! | `deliveryId` | `DeliveryStarted`, `Delivered` | the one delivery of the order |
//!
//! The payment's and the drink's copies of the order's fields can disagree with it (payment
//! keeps a phone number as its caller spelled it; a copy made by an older version or for a
//! reused order id says something else), so "first known wins" alone would show whichever
//! event came first. The order's own `Ordered` overwrites them instead; every other source
//! only fills what is still unknown. Once `Ordered` is in, nothing moves those fields again,
//! so any order and any repeat of the same events give the same row. Pure: no I/O.

use platform::view::{advance, fill, Merge};
use serde::{Deserialize, Serialize};

/// How far an order has come, ranked so that later stages win. The cancellations are ranked
/// in the order the compensation flows (order → delivery ledger → drink → payment), so the
/// row ends on the last step of the refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MyPageStatus {
    Ordered,
    #[serde(rename = "Payment Approved")]
    PaymentApproved,
    Received,
    Receipted,
    Made,
    #[serde(rename = "Delivery Started")]
    DeliveryStarted,
    Delivered,
    #[serde(rename = "Order Canceled")]
    OrderCanceled,
    #[serde(rename = "Delivery Cancelled")]
    DeliveryCancelled,
    #[serde(rename = "Drink Canceled")]
    DrinkCanceled,
    #[serde(rename = "Payment Canceled")]
    PaymentCanceled,
}

impl MyPageStatus {
    pub const ALL: [MyPageStatus; 11] = [
        MyPageStatus::Ordered,
        MyPageStatus::PaymentApproved,
        MyPageStatus::Received,
        MyPageStatus::Receipted,
        MyPageStatus::Made,
        MyPageStatus::DeliveryStarted,
        MyPageStatus::Delivered,
        MyPageStatus::OrderCanceled,
        MyPageStatus::DeliveryCancelled,
        MyPageStatus::DrinkCanceled,
        MyPageStatus::PaymentCanceled,
    ];

    pub fn rank(self) -> i64 {
        match self {
            MyPageStatus::Ordered => 1,
            MyPageStatus::PaymentApproved => 2,
            MyPageStatus::Received => 3,
            MyPageStatus::Receipted => 4,
            MyPageStatus::Made => 5,
            MyPageStatus::DeliveryStarted => 6,
            MyPageStatus::Delivered => 7,
            MyPageStatus::OrderCanceled => 10,
            MyPageStatus::DeliveryCancelled => 11,
            MyPageStatus::DrinkCanceled => 12,
            MyPageStatus::PaymentCanceled => 13,
        }
    }

    /// Its name on the wire and in storage, as its serde attributes spell it.
    pub fn as_str(self) -> &'static str {
        platform::spelling::name(&self)
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<MyPageStatus> {
        platform::spelling::parse(text)
    }
}

/// One order's row on "my page". `id` is the order id, so a row is the same wherever and in
/// whatever order it was built. Fields no event has told yet are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyPage {
    pub id: i64,
    pub order_id: i64,
    pub payment_id: Option<i64>,
    pub drink_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub phone_number: Option<String>,
    pub product_name: Option<String>,
    pub qty: Option<i64>,
    pub amt: Option<i64>,
    pub status: MyPageStatus,
}

pub type Row = MyPage;

impl MyPage {
    /// A row that only tells the stage: the fact of an event that carries nothing else, and
    /// what a row starts as.
    pub fn stage(order_id: i64, status: MyPageStatus) -> MyPage {
        MyPage {
            id: order_id,
            order_id,
            payment_id: None,
            drink_id: None,
            delivery_id: None,
            phone_number: None,
            product_name: None,
            qty: None,
            amt: None,
            status,
        }
    }
}

/// The form phone numbers are kept and searched in: digits, hyphens stripped, so
/// `010-1234-5678` finds `01012345678`.
pub fn phone_key(raw: &str) -> String {
    raw.chars().filter(|c| *c != '-').collect()
}

/// A phone number to search rows by, in [`phone_key`] form: never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// `raw` without the spaces around it, in key form; `None` when nothing is left, or when
    /// it holds a control character (no phone number does, and PostgreSQL refuses a NUL).
    pub fn parse(raw: &str) -> Option<PhoneNumber> {
        let key = phone_key(raw.trim());
        (!key.is_empty() && !key.chars().any(char::is_control)).then_some(PhoneNumber(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one event tells about an order is a row holding only that ([`MyPage::stage`] and
/// the fields it carries); merging it fills what the row does not know yet and moves the
/// status on.
impl Merge for MyPage {
    fn key(&self) -> i64 {
        self.order_id
    }

    fn merge(row: Option<MyPage>, fact: &MyPage) -> MyPage {
        let mut row = row.unwrap_or_else(|| MyPage::stage(fact.order_id, fact.status));
        fill(&mut row.payment_id, &fact.payment_id);
        fill(&mut row.drink_id, &fact.drink_id);
        fill(&mut row.delivery_id, &fact.delivery_id);
        // Only `Ordered` tells the stage `Ordered`: the order's own fields, over any copy.
        let ordered = fact.status == MyPageStatus::Ordered;
        take(&mut row.phone_number, &fact.phone_number.as_deref().map(phone_key), ordered);
        take(&mut row.product_name, &fact.product_name, ordered);
        take(&mut row.qty, &fact.qty, ordered);
        take(&mut row.amt, &fact.amt, ordered);
        advance(&mut row.status, fact.status, MyPageStatus::rank);
        row
    }
}

/// `value` into `slot`: over what it holds when `wins`, otherwise only if it holds nothing.
fn take<T: Clone>(slot: &mut Option<T>, value: &Option<T>, wins: bool) {
    if wins && value.is_some() {
        slot.clone_from(value);
    } else {
        fill(slot, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::testing::permutations;
    use serde_json::json;

    const PHONE: &str = "010-1234-5678";

    fn ordered() -> MyPage {
        MyPage {
            phone_number: Some(PHONE.into()),
            product_name: Some("latte".into()),
            qty: Some(2),
            amt: Some(6000),
            ..MyPage::stage(8, MyPageStatus::Ordered)
        }
    }

    fn payment_approved() -> MyPage {
        MyPage {
            payment_id: Some(31),
            phone_number: Some("01012345678".into()),
            amt: Some(6000),
            ..MyPage::stage(8, MyPageStatus::PaymentApproved)
        }
    }

    fn received() -> MyPage {
        MyPage {
            drink_id: Some(21),
            product_name: Some("latte".into()),
            qty: Some(2),
            phone_number: Some(PHONE.into()),
            ..MyPage::stage(8, MyPageStatus::Received)
        }
    }

    fn with_drink(stage: MyPageStatus) -> MyPage {
        MyPage { drink_id: Some(21), ..MyPage::stage(8, stage) }
    }

    fn with_delivery(stage: MyPageStatus) -> MyPage {
        MyPage { delivery_id: Some(41), ..MyPage::stage(8, stage) }
    }

    fn full_row(status: MyPageStatus) -> Row {
        MyPage {
            id: 8,
            order_id: 8,
            payment_id: Some(31),
            drink_id: Some(21),
            delivery_id: Some(41),
            phone_number: Some("01012345678".into()),
            product_name: Some("latte".into()),
            qty: Some(2),
            amt: Some(6000),
            status,
        }
    }

    fn fold(facts: &[MyPage]) -> Option<Row> {
        facts.iter().fold(None, |row, f| Some(MyPage::merge(row, f)))
    }

    #[test]
    fn a_phone_number_is_searched_without_hyphens_and_never_empty() {
        assert_eq!(PhoneNumber::parse(" 010-1234-5678 ").as_ref().map(PhoneNumber::as_str), Some("01012345678"));
        assert_eq!(PhoneNumber::parse("01012345678").as_ref().map(PhoneNumber::as_str), Some("01012345678"));
        for empty in ["", "  ", "---", "010\u{0}1234", "\u{1b}", "01012345678\u{7f}"] {
            assert_eq!(PhoneNumber::parse(empty), None, "{empty:?}");
        }
    }

    #[test]
    fn every_arrival_order_with_repeats_gives_the_same_row() {
        let facts = [
            ordered(),
            payment_approved(),
            received(),
            with_drink(MyPageStatus::Made),
            with_delivery(MyPageStatus::DeliveryStarted),
            with_delivery(MyPageStatus::Delivered),
            payment_approved(),
            with_delivery(MyPageStatus::DeliveryStarted),
        ];
        let expected = full_row(MyPageStatus::Delivered);
        let all = permutations(&facts);
        assert_eq!(all.len(), 40320);
        for p in all {
            assert_eq!(fold(&p).as_ref(), Some(&expected), "{p:?}");
        }
    }

    #[test]
    fn a_cancelled_order_ends_on_the_refund_in_any_order() {
        let facts = [
            ordered(),
            payment_approved(),
            received(),
            with_drink(MyPageStatus::Receipted),
            MyPage::stage(8, MyPageStatus::OrderCanceled),
            MyPage::stage(8, MyPageStatus::DeliveryCancelled),
            MyPage::stage(8, MyPageStatus::DrinkCanceled),
            MyPage::stage(8, MyPageStatus::PaymentCanceled),
        ];
        let expected = MyPage { delivery_id: None, ..full_row(MyPageStatus::PaymentCanceled) };
        for p in permutations(&facts) {
            assert_eq!(fold(&p).as_ref(), Some(&expected));
        }
    }

    #[test]
    fn the_orders_own_fields_win_over_the_copies_in_any_order() {
        let charged = MyPage { phone_number: Some("010-9876-5432".into()), amt: Some(5000), ..payment_approved() };
        let copied =
            MyPage { product_name: Some("Mocha".into()), qty: Some(1), phone_number: Some("x".into()), ..received() };
        let facts = [charged.clone(), copied, ordered(), charged];
        for p in permutations(&facts) {
            let row = fold(&p).unwrap();
            assert_eq!(
                (row.phone_number.as_deref(), row.product_name.as_deref(), row.qty, row.amt),
                (Some("01012345678"), Some("latte"), Some(2), Some(6000)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn a_row_started_by_a_later_event_shows_nulls_until_ordered_arrives() {
        let row = MyPage::merge(None, &with_drink(MyPageStatus::Made));
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"id": 8, "orderId": 8, "paymentId": null, "drinkId": 21, "deliveryId": null, "phoneNumber": null,
                   "productName": null, "qty": null, "amt": null, "status": "Made"})
        );
        let row = MyPage::merge(Some(row), &ordered());
        assert_eq!(
            (row.status, row.phone_number.as_deref(), row.amt),
            (MyPageStatus::Made, Some("01012345678"), Some(6000))
        );
    }

    #[test]
    fn statuses_are_spelled_as_the_spec_spells_them_and_cancellations_outrank_progress() {
        let names: Vec<&str> = MyPageStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "Ordered",
                "Payment Approved",
                "Received",
                "Receipted",
                "Made",
                "Delivery Started",
                "Delivered",
                "Order Canceled",
                "Delivery Cancelled",
                "Drink Canceled",
                "Payment Canceled"
            ]
        );
        for s in MyPageStatus::ALL {
            assert_eq!(MyPageStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(MyPageStatus::parse("PaymentApproved"), None);
        let ranks: Vec<i64> = MyPageStatus::ALL.iter().map(|s| s.rank()).collect();
        assert_eq!(ranks, [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]);
    }
}
