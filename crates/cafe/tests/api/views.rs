//! The two CQRS views (SPEC §4): whatever order events arrive in, and whatever is delivered
//! twice, they converge to the same rows. Checked on the pure merge functions over random
//! histories whose events disagree about the order's fields, and once over HTTP on a real
//! order.

use std::collections::BTreeMap;

use contracts::events::{DeliveryChanged, DrinkChanged, OrderCanceled, OrderInfoReceived, Ordered, PaymentChanged};
use contracts::{DeliveryStatus, DrinkStatus, Event, OrderStatus, Payload, PaymentStatus};
use customercenter::events::UpdateMyPage;
use deliverycenter::events::UpdateDeliveryPage;
use platform::view::View;
use proptest::prelude::*;

use crate::common::{id, TestApp};

in_both_modes!(the_view_rows_of_a_delivered_order_end_delivered,);

/// What happened to one order, as its events: a prefix of the happy path, possibly followed by
/// a prefix of the cancellation chain; or a placement voided before it was ever ordered.
#[derive(Debug, Clone)]
enum History {
    Placed { stage: usize, receipted: bool, cancel: usize },
    Voided,
}

fn history() -> impl Strategy<Value = History> {
    prop_oneof![
        9 => (1usize..=7, any::<bool>(), 0usize..=4).prop_map(|(stage, receipted, cancel)| History::Placed {
            stage,
            receipted,
            // A delivered order cannot be cancelled.
            cancel: if stage == 7 { 0 } else { cancel },
        }),
        1 => Just(History::Voided),
    ]
}

/// What the payment's and the drink's events say of the order's own fields. They copy them
/// from the order (the charge, the `Ordered` event), so today they agree but for spelling:
/// payment keeps a phone number as its caller posted it. They disagree outright when a copy
/// was made by an older version or another caller, or when an order id is reused (an order
/// database restored from a backup, the others not). Each is drawn freely: the views must
/// converge whatever the copies say.
#[derive(Debug, Clone)]
struct Copies {
    payment_phone: Phone,
    /// Added to the order's amount.
    payment_amt: i64,
    drink_phone: Phone,
    drink_product: &'static str,
    drink_qty: i64,
}

/// A copy of the order's phone number `01012340001`.
#[derive(Debug, Clone, Copy)]
enum Phone {
    Same,
    Hyphenated,
    Another,
}

impl Phone {
    fn of(self, order_id: i64) -> String {
        match self {
            Phone::Same => format!("0101234{order_id:04}"),
            Phone::Hyphenated => format!("010-1234-{order_id:04}"),
            Phone::Another => format!("0109876{order_id:04}"),
        }
    }
}

fn phone() -> impl Strategy<Value = Phone> {
    prop_oneof![Just(Phone::Same), Just(Phone::Hyphenated), Just(Phone::Another)]
}

fn copies() -> impl Strategy<Value = Copies> {
    (
        phone(),
        prop_oneof![Just(0i64), -999i64..=999],
        phone(),
        prop::sample::select(&["Latte", "latte", "Mocha"][..]),
        1i64..=3,
    )
        .prop_map(|(payment_phone, payment_amt, drink_phone, drink_product, drink_qty)| Copies {
            payment_phone,
            payment_amt,
            drink_phone,
            drink_product,
            drink_qty,
        })
}

/// The events of one order, in the order the system raises them, the payment's and the
/// drink's carrying `copies` of the order's fields. Ids are derived from the order id so
/// every service's ids differ.
fn events_of(order_id: i64, h: &History, copies: &Copies) -> Vec<Event> {
    let phone = Phone::Same.of(order_id);
    let (payment_id, drink_id, delivery_id, cancellation_id) =
        (order_id + 100, order_id + 200, order_id + 300, order_id + 400);
    let amt = 1000 * order_id;
    let payment = |status| PaymentChanged {
        id: payment_id,
        order_id,
        phone_number: copies.payment_phone.of(order_id),
        amt: amt + copies.payment_amt,
        status,
    };
    let approved = Event::new("payment", Payload::PaymentApproved(payment(PaymentStatus::Approved)));
    let payment_canceled = Event::new("payment", Payload::PaymentCanceled(payment(PaymentStatus::Canceled)));
    let (stage, receipted, cancel) = match *h {
        History::Voided => return vec![approved, payment_canceled],
        History::Placed { stage, receipted, cancel } => (stage, receipted, cancel),
    };
    let drink_phone = copies.drink_phone.of(order_id);
    let drink = |kind: fn(DrinkChanged) -> Payload, status| {
        Event::new("drink", kind(DrinkChanged { id: drink_id, order_id, phone_number: drink_phone.clone(), status }))
    };
    let info_received = Event::new(
        "drink",
        Payload::OrderInfoReceived(OrderInfoReceived {
            id: drink_id,
            order_id,
            phone_number: drink_phone.clone(),
            product_name: copies.drink_product.into(),
            qty: copies.drink_qty,
            status: DrinkStatus::Received,
        }),
    );
    let delivery = |kind: fn(DeliveryChanged) -> Payload, id, status| {
        Event::new("delivery", kind(DeliveryChanged { id, order_id, status }))
    };
    let mut happy = vec![
        approved,
        Event::new(
            "order",
            Payload::Ordered(Ordered {
                id: order_id,
                phone_number: phone.clone(),
                product_name: "Latte".into(),
                qty: 2,
                amt,
                status: OrderStatus::Ordered,
                create_time: "2024-05-01T10:00:00.000Z".into(),
            }),
        ),
        info_received.clone(),
    ];
    if receipted {
        happy.push(drink(Payload::Receipted, DrinkStatus::Receipted));
    }
    happy.push(drink(Payload::Made, DrinkStatus::Made));
    happy.push(delivery(Payload::DeliveryStarted, delivery_id, DeliveryStatus::DeliveryStarted));
    happy.push(delivery(Payload::Delivered, delivery_id, DeliveryStatus::Delivered));
    // `stage` counts the happy path's steps, Receipted not among them.
    let steps = if receipted && stage >= 4 { stage + 1 } else { stage };
    let mut events: Vec<Event> = happy.into_iter().take(steps).collect();

    let mut chain = vec![
        delivery(Payload::DeliveryCanceled, cancellation_id, DeliveryStatus::DeliveryCancelled),
        Event::new(
            "order",
            Payload::OrderCanceled(OrderCanceled {
                id: order_id,
                phone_number: phone.clone(),
                product_name: "Latte".into(),
                qty: 2,
                amt,
                status: OrderStatus::OrderCanceled,
            }),
        ),
    ];
    if stage < 3 {
        // The drink is created from Ordered before OrderCanceled cancels it.
        chain.push(info_received);
    }
    chain.push(drink(Payload::DrinkCanceled, DrinkStatus::Canceled));
    chain.push(payment_canceled);
    if cancel > 0 {
        // Cancelling needs the order placed: Ordered has been raised.
        if stage < 2 {
            events.truncate(0);
            events.extend(events_of(order_id, &History::Placed { stage: 2, receipted, cancel: 0 }, copies));
        }
        let take = match cancel {
            1 => 1,
            2 => 2,
            3 => chain.len() - 1,
            _ => chain.len(),
        };
        events.extend(chain.into_iter().take(take));
    }
    events
}

/// Several orders' histories (and what their copies say), and a delivery schedule: each
/// event's position in the shuffled stream, and which events are delivered again (and where).
type Scenario = (Vec<(History, Copies)>, Vec<u64>, Vec<(usize, u64)>);

/// A [`Scenario`] of one to three orders.
fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((history(), copies()), 1..=3),
        prop::collection::vec(any::<u64>(), 40),
        prop::collection::vec((any::<usize>(), any::<u64>()), 0..10),
    )
}

/// The canonical stream and a shuffled one with duplicates.
fn streams(histories: &[(History, Copies)], keys: &[u64], dups: &[(usize, u64)]) -> (Vec<Event>, Vec<Event>) {
    let canonical: Vec<Event> =
        histories.iter().enumerate().flat_map(|(i, (h, c))| events_of(i as i64 + 1, h, c)).collect();
    let mut keyed: Vec<(u64, Event)> =
        canonical.iter().enumerate().map(|(i, e)| (keys[i % keys.len()] ^ i as u64, e.clone())).collect();
    for &(which, key) in dups {
        let e = canonical[which % canonical.len()].clone();
        keyed.push((key, e));
    }
    keyed.sort_by_key(|(k, _)| *k);
    (canonical, keyed.into_iter().map(|(_, e)| e).collect())
}

fn order_of(e: &Event) -> i64 {
    e.order_id()
}

/// The furthest stage among `events` of one order, by a view's ranking of event types.
fn furthest(events: &[Event], order_id: i64, ranking: &[(&str, &str)]) -> Option<String> {
    events
        .iter()
        .filter(|e| order_of(e) == order_id)
        .filter_map(|e| ranking.iter().position(|(t, _)| *t == e.event_type()))
        .max()
        .map(|i| ranking[i].1.to_string())
}

const DELIVERY_PAGE_STAGES: &[(&str, &str)] = &[
    ("Ordered", "Ordered"),
    ("DeliveryStarted", "Delivery Started"),
    ("Delivered", "Delivered"),
    ("DeliveryCanceled", "Delivery Cancelled"),
];

const MY_PAGE_STAGES: &[(&str, &str)] = &[
    ("Ordered", "Ordered"),
    ("PaymentApproved", "Payment Approved"),
    ("OrderInfoReceived", "Received"),
    ("Receipted", "Receipted"),
    ("Made", "Made"),
    ("DeliveryStarted", "Delivery Started"),
    ("Delivered", "Delivered"),
    ("OrderCanceled", "Order Canceled"),
    ("DeliveryCanceled", "Delivery Cancelled"),
    ("DrinkCanceled", "Drink Canceled"),
    ("PaymentCanceled", "Payment Canceled"),
];

/// Each row's status is the furthest stage its order reached; ids are the order's.
fn check_statuses<R: serde::Serialize>(
    rows: &BTreeMap<i64, R>,
    events: &[Event],
    ranking: &[(&str, &str)],
) -> Result<(), TestCaseError> {
    let order_ids: std::collections::BTreeSet<i64> = events.iter().map(order_of).collect();
    for order_id in order_ids {
        let want = furthest(events, order_id, ranking);
        let row = rows.get(&order_id).map(|r| serde_json::to_value(r).unwrap());
        prop_assert_eq!(row.is_some(), want.is_some(), "order {}: row {:?}", order_id, row);
        if let (Some(row), Some(want)) = (row, want) {
            prop_assert_eq!(row["status"].as_str(), Some(want.as_str()), "order {}: {}", order_id, row);
            prop_assert_eq!(row["id"].as_i64(), Some(order_id));
            prop_assert_eq!(row["orderId"].as_i64(), Some(order_id));
        }
    }
    Ok(())
}

/// The order's own fields win: where the history holds `Ordered`, each row shows its phone
/// number (without hyphens), product, quantity and amount, whatever the copies say.
fn check_sources<R: serde::Serialize>(rows: &BTreeMap<i64, R>, events: &[Event]) -> Result<(), TestCaseError> {
    for e in events {
        let Payload::Ordered(o) = &e.payload else { continue };
        let row = rows.get(&o.id).map(|r| serde_json::to_value(r).unwrap());
        prop_assert!(row.is_some(), "order {}: no row", o.id);
        let row = row.unwrap();
        let phone = o.phone_number.replace('-', "");
        prop_assert_eq!(row["phoneNumber"].as_str(), Some(phone.as_str()), "order {}: {}", o.id, row);
        prop_assert_eq!(row["productName"].as_str(), Some(o.product_name.as_str()), "order {}: {}", o.id, row);
        prop_assert_eq!(row["qty"].as_i64(), Some(o.qty), "order {}: {}", o.id, row);
        prop_assert_eq!(row["amt"].as_i64(), Some(o.amt), "order {}: {}", o.id, row);
    }
    Ok(())
}

/// The rows `events` fold into, one per order, by view `V`'s own merge.
fn fold<V: View<Payload = Payload>>(events: &[Event]) -> BTreeMap<i64, V::Row> {
    let mut rows = BTreeMap::new();
    for e in events {
        let current = rows.get(&order_of(e)).cloned();
        // `None`: an event this view does not consume; the row stays as it was.
        if let Some(row) = V::apply(current, &e.payload) {
            rows.insert(order_of(e), row);
        }
    }
    rows
}

/// Whatever the arrival order and the repeats, view `V` folds `histories` into the same
/// rows, each at its order's furthest stage by `ranking` and holding the order's own fields.
fn converges<V: View<Payload = Payload>>(
    (histories, keys, dups): &Scenario,
    ranking: &[(&str, &str)],
) -> Result<(), TestCaseError>
where
    V::Row: serde::Serialize + std::fmt::Debug,
{
    let (canonical, shuffled) = streams(histories, keys, dups);
    let expected = fold::<V>(&canonical);
    check_statuses(&expected, &canonical, ranking)?;
    check_sources(&expected, &canonical)?;
    prop_assert_eq!(&fold::<V>(&shuffled), &expected, "histories {:?}", histories);
    // Folding the same stream twice over is a no-op the second time.
    let twice: Vec<Event> = canonical.iter().chain(canonical.iter()).cloned().collect();
    prop_assert_eq!(&fold::<V>(&twice), &expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_delivery_page_converges_whatever_the_order_and_the_repeats(scenario in scenario()) {
        converges::<UpdateDeliveryPage>(&scenario, DELIVERY_PAGE_STAGES)?;
    }

    #[test]
    fn my_page_converges_whatever_the_order_and_the_repeats(scenario in scenario()) {
        converges::<UpdateMyPage>(&scenario, MY_PAGE_STAGES)?;
    }
}

/// Over HTTP: an order's two view rows end in the right final status, with every id.
async fn the_view_rows_of_a_delivered_order_end_delivered(app: TestApp) {
    let (order, drink, delivery) = app.order_made_and_started().await;
    let order_id = id(&order);
    let payment = app.find_one("payments", order_id).await.expect("a payment");
    app.patch_delivery(id(&delivery), "Delivered").await.expect(200, "PATCH Delivered");

    let page = app.wait_for_status("deliverypages", order_id, "Delivered").await;
    assert_eq!(page["deliveryId"].as_i64(), Some(id(&delivery)));
    assert_eq!(page["orderId"].as_i64(), Some(order_id));
    assert_eq!(page["amt"], order["amt"]);
    assert_eq!(page["productName"], order["productName"]);
    assert_eq!(page["qty"], order["qty"]);
    assert_eq!(page["phoneNumber"], order["phoneNumber"]);

    let mine = app.wait_for_status("mypages", order_id, "Delivered").await;
    assert_eq!(mine["paymentId"].as_i64(), Some(id(&payment)));
    assert_eq!(mine["drinkId"].as_i64(), Some(id(&drink)));
    assert_eq!(mine["deliveryId"].as_i64(), Some(id(&delivery)));
    assert_eq!(mine["phoneNumber"], order["phoneNumber"]);
    assert_eq!(mine["productName"], order["productName"]);
    assert_eq!(mine["qty"], order["qty"]);
    assert_eq!(mine["amt"], order["amt"]);

    // A second, cancelled order ends cancelled on both pages, and both are found by phone.
    let second = app.place_order().await;
    let second_id = id(&second);
    app.drink_for(second_id).await;
    app.cancel_order(second_id).await.expect(204, "cancel");
    app.wait_for_status("deliverypages", second_id, "Delivery Cancelled").await;
    app.wait_for_status("mypages", second_id, "Payment Canceled").await;
    let phone = order["phoneNumber"].as_str().unwrap();
    let rows = app.search(&format!("/mypages/search/findByPhoneNumber?phoneNumber={phone}")).await;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["orderId"].as_i64()).collect();
    assert!(ids.contains(&order_id) && ids.contains(&second_id), "findByPhoneNumber: {rows:?}");
}
