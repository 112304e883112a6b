//! The delivery page of an order and the merge rule that keeps it convergent: a field is
//! filled by the first event that knows it, and the status only moves to a higher-ranked
//! stage. Each field has one source, so "first known" never has to choose between two
//! values:
//!
//! | field | source |
//! |---|---|
//! | `amt`, `productName`, `qty`, `phoneNumber` | `Ordered` (the order's own record; the other copies, payment's and drink's, are not read here) |
//! | `deliveryId` | `DeliveryStarted` (the one delivery of the order; `Delivered` and `DeliveryCanceled` tell only the stage, the latter's id being the ledger entry's) |
//! | `status` | the highest-ranked of `Ordered`, `DeliveryStarted`, `Delivered`, `DeliveryCanceled` |
//!
//! Both rules are commutative and idempotent, so any order and any repeat of the same events
//! give the same page. A field given a second source must say which wins (as "my page" does
//! for the order's fields). Pure: no I/O.

use platform::view::{advance, fill, Merge};
use serde::{Deserialize, Serialize};

/// The stage an order's delivery has reached, ranked so that later stages win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DeliveryPageStatus {
    Ordered,
    #[serde(rename = "Delivery Started")]
    DeliveryStarted,
    Delivered,
    /// Ranked highest: a cancellation recorded in the ledger is final, whatever else arrives.
    #[serde(rename = "Delivery Cancelled")]
    DeliveryCancelled,
}

impl DeliveryPageStatus {
    pub const ALL: [DeliveryPageStatus; 4] = [
        DeliveryPageStatus::Ordered,
        DeliveryPageStatus::DeliveryStarted,
        DeliveryPageStatus::Delivered,
        DeliveryPageStatus::DeliveryCancelled,
    ];

    pub fn rank(self) -> i64 {
        match self {
            DeliveryPageStatus::Ordered => 1,
            DeliveryPageStatus::DeliveryStarted => 2,
            DeliveryPageStatus::Delivered => 3,
            DeliveryPageStatus::DeliveryCancelled => 4,
        }
    }

    /// Its name on the wire and in storage, as its serde attributes spell it.
    pub fn as_str(self) -> &'static str {
        platform::spelling::name(&self)
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<DeliveryPageStatus> {
        platform::spelling::parse(text)
    }
}

/// One order's delivery page. `id` is the order id, so a page is the same wherever and in
/// whatever order it was built. Fields no event has told yet are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub id: i64,
    pub order_id: i64,
    pub amt: Option<i64>,
    pub delivery_id: Option<i64>,
    pub status: DeliveryPageStatus,
    pub product_name: Option<String>,
    pub qty: Option<i64>,
    pub phone_number: Option<String>,
}

pub type Row = DeliveryPage;

impl DeliveryPage {
    /// A page that only tells the stage: the fact of an event that carries nothing else, and
    /// what a page starts as.
    pub fn stage(order_id: i64, status: DeliveryPageStatus) -> DeliveryPage {
        DeliveryPage {
            id: order_id,
            order_id,
            amt: None,
            delivery_id: None,
            status,
            product_name: None,
            qty: None,
            phone_number: None,
        }
    }
}

/// What one event tells about an order is a page holding only that
/// ([`DeliveryPage::stage`] and the fields it carries); merging it fills what the page does
/// not know yet and moves the status on.
impl Merge for DeliveryPage {
    fn key(&self) -> i64 {
        self.order_id
    }

    fn merge(row: Option<DeliveryPage>, fact: &DeliveryPage) -> DeliveryPage {
        let mut row = row.unwrap_or_else(|| DeliveryPage::stage(fact.order_id, fact.status));
        fill(&mut row.amt, &fact.amt);
        fill(&mut row.delivery_id, &fact.delivery_id);
        fill(&mut row.product_name, &fact.product_name);
        fill(&mut row.qty, &fact.qty);
        fill(&mut row.phone_number, &fact.phone_number);
        advance(&mut row.status, fact.status, DeliveryPageStatus::rank);
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::testing::permutations;
    use serde_json::json;

    fn ordered(order_id: i64) -> DeliveryPage {
        DeliveryPage {
            amt: Some(6000),
            product_name: Some("latte".into()),
            qty: Some(2),
            phone_number: Some("01012345678".into()),
            ..DeliveryPage::stage(order_id, DeliveryPageStatus::Ordered)
        }
    }

    fn started(order_id: i64) -> DeliveryPage {
        DeliveryPage { delivery_id: Some(41), ..DeliveryPage::stage(order_id, DeliveryPageStatus::DeliveryStarted) }
    }

    fn fold(facts: &[DeliveryPage]) -> Option<Row> {
        facts.iter().fold(None, |row, f| Some(DeliveryPage::merge(row, f)))
    }

    #[test]
    fn every_arrival_order_with_repeats_gives_the_same_page() {
        let facts = [
            ordered(8),
            started(8),
            DeliveryPage::stage(8, DeliveryPageStatus::Delivered),
            started(8),
            ordered(8),
            DeliveryPage::stage(8, DeliveryPageStatus::Delivered),
        ];
        let expected = DeliveryPage {
            id: 8,
            order_id: 8,
            amt: Some(6000),
            delivery_id: Some(41),
            status: DeliveryPageStatus::Delivered,
            product_name: Some("latte".into()),
            qty: Some(2),
            phone_number: Some("01012345678".into()),
        };
        let all = permutations(&facts);
        assert_eq!(all.len(), 720);
        for p in all {
            assert_eq!(fold(&p).as_ref(), Some(&expected), "{p:?}");
        }
    }

    #[test]
    fn a_cancellation_wins_in_any_order() {
        let cancelled = DeliveryPage::stage(3, DeliveryPageStatus::DeliveryCancelled);
        let facts = [ordered(3), started(3), cancelled, started(3), ordered(3)];
        for p in permutations(&facts) {
            let row = fold(&p).unwrap();
            assert_eq!(
                (row.status, row.delivery_id, row.amt),
                (DeliveryPageStatus::DeliveryCancelled, Some(41), Some(6000))
            );
        }
    }

    #[test]
    fn a_page_started_by_a_later_event_shows_nulls_until_ordered_arrives() {
        let row = DeliveryPage::merge(None, &started(5));
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"id": 5, "orderId": 5, "amt": null, "deliveryId": 41, "status": "Delivery Started",
                   "productName": null, "qty": null, "phoneNumber": null})
        );
        let row = DeliveryPage::merge(Some(row), &ordered(5));
        assert_eq!((row.status, row.amt, row.qty), (DeliveryPageStatus::DeliveryStarted, Some(6000), Some(2)));
    }

    #[test]
    fn statuses_are_spelled_as_the_spec_spells_them_and_rank_in_order() {
        let names: Vec<&str> = DeliveryPageStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["Ordered", "Delivery Started", "Delivered", "Delivery Cancelled"]);
        assert_eq!(DeliveryPageStatus::parse("DeliveryStarted"), None);
        for (i, s) in DeliveryPageStatus::ALL.into_iter().enumerate() {
            assert_eq!(DeliveryPageStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(s.rank(), i as i64 + 1);
        }
    }
}
