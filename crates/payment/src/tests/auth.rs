//! SPEC §9 for payment, with real signed tokens: charging and voiding are for the cafe's
//! services only, and a customer reads only their own payments. Every refusal leaves the
//! payments as they were.

use axum::http::Method;
use contracts::EventType;
use platform::testing::signed::{expect, refusals, Guarded, Signed, Who};
use serde_json::json;

use super::{spawn_behind, TestApp};
use Who::*;

const ANN: &str = "01011112222";
const BOB: &str = "01033334444";

const EVERYONE: [Who; 7] = [Anonymous, Customer(ANN), Customer(BOB), Barista, Rider, Manager, Service];

type Cafe = Guarded<TestApp>;

async fn cafe() -> Cafe {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    Cafe { app, signed }
}

/// Order charges for `order_id`, placed from `phone`: the payment's id.
async fn charge(cafe: &Cafe, order_id: i64, phone: &str) -> i64 {
    let body = json!({"orderId": order_id, "phoneNumber": phone, "amt": 4500});
    let charged = cafe.call(Service, Method::POST, "/payments", Some(body)).await;
    expect(&charged, 201, "order charges");
    charged.body["id"].as_i64().unwrap()
}

/// Every payment as a manager reads it: `(orderId, status)`.
async fn payments(cafe: &Cafe) -> Vec<(i64, String)> {
    let page = cafe.call(Manager, Method::GET, "/payments", None).await;
    let items = page.body["_embedded"]["payments"].as_array().cloned().unwrap_or_default();
    items.iter().map(|p| (p["orderId"].as_i64().unwrap(), p["status"].as_str().unwrap().to_string())).collect()
}

#[tokio::test]
async fn a_customer_reads_only_their_own_payments_and_managers_read_all() {
    let cafe = cafe().await;
    let (ann, bob) = (charge(&cafe, 1, ANN).await, charge(&cafe, 2, BOB).await);
    // who, then the status of: the list, Ann's, Bob's, Ann's by order, Bob's by order, the
    // search index; and the orders listed.
    for (who, statuses, listed) in [
        (Anonymous, [401; 6], vec![]),
        (Customer(ANN), [200, 200, 404, 200, 404, 200], vec![1]),
        (Customer(BOB), [200, 404, 200, 404, 200, 200], vec![2]),
        (Barista, [403; 6], vec![]),
        (Rider, [403; 6], vec![]),
        (Manager, [200; 6], vec![1, 2]),
        (Service, [403; 6], vec![]),
    ] {
        let uris = [
            "/payments".to_string(),
            format!("/payments/{ann}"),
            format!("/payments/{bob}"),
            "/payments/search/findByOrderId?orderId=1".into(),
            "/payments/search/findByOrderId?orderId=2".into(),
            "/payments/search".into(),
        ];
        for (uri, status) in uris.iter().zip(statuses) {
            expect(&cafe.call(who, Method::GET, uri, None).await, status, &format!("{who:?} reads {uri}"));
        }
        let list = cafe.call(who, Method::GET, "/payments", None).await;
        assert_eq!(list.listed("payments", "orderId"), listed, "{who:?} lists");
        if statuses[0] == 200 {
            assert_eq!(list.body["page"]["totalElements"], listed.len(), "{who:?} counts");
        }
    }
}

#[tokio::test]
async fn only_a_service_charges_or_voids_even_a_manager_may_not() {
    let cafe = cafe().await;
    let charge_7 = json!({"orderId": 7, "phoneNumber": ANN, "amt": 4500});
    let void = json!({"orderId": 7});
    cafe.check_table(Method::POST, "/payments", Some(&charge_7), refusals(EVERYONE, &[Service])).await;
    assert_eq!(payments(&cafe).await, [], "nothing was charged");

    charge(&cafe, 7, ANN).await;
    let refused = refusals(EVERYONE, &[Service]);
    cafe.check_table(Method::POST, "/payments/voids", Some(&void), refused).await;
    assert_eq!(payments(&cafe).await, [(7, "Approved".to_string())], "nothing was voided");
    assert_eq!(cafe.app.raised_types().await, [EventType::PaymentApproved]);

    expect(&cafe.call(Service, Method::POST, "/payments/voids", Some(void)).await, 200, "order voids");
    assert_eq!(payments(&cafe).await, [(7, "Canceled".to_string())]);
}
