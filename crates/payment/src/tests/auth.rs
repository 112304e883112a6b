//! SPEC §9 for payment, with real signed tokens: charging and voiding are for the cafe's
//! services only, and a customer reads only their own payments. Every refusal leaves the
//! payments as they were.

use axum::http::{header, Method};
use contracts::EventType;
use platform::testing::Answer;
use serde_json::{json, Value};

use super::{spawn_behind, TestApp};
use platform::testing::signed::{Signed, Who};
use Who::*;

const ANN: &str = "01011112222";
const BOB: &str = "01033334444";

const EVERYONE: [Who; 7] = [Anonymous, Customer(ANN), Customer(BOB), Barista, Rider, Manager, Service];

struct Cafe {
    app: TestApp,
    signed: Signed,
}

async fn cafe() -> Cafe {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    Cafe { app, signed }
}

impl Cafe {
    async fn call(&self, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed.act_as(who);
        self.app.request(method, uri, body).await
    }

    /// Order charges for `order_id`, placed from `phone`: the payment's id.
    async fn charge(&self, order_id: i64, phone: &str) -> i64 {
        let body = json!({"orderId": order_id, "phoneNumber": phone, "amt": 4500});
        let charged = self.call(Service, Method::POST, "/payments", Some(body)).await;
        expect(&charged, 201, "order charges");
        charged.body["id"].as_i64().unwrap()
    }

    /// Every payment as a manager reads it: `(orderId, status)`.
    async fn payments(&self) -> Vec<(i64, String)> {
        let page = self.call(Manager, Method::GET, "/payments", None).await;
        let items = page.body["_embedded"]["payments"].as_array().cloned().unwrap_or_default();
        items.iter().map(|p| (p["orderId"].as_i64().unwrap(), p["status"].as_str().unwrap().to_string())).collect()
    }
}

/// `answer` has `status`; a 401 also challenges for a bearer token.
fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
    if status == 401 {
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{what}");
    }
}

#[tokio::test]
async fn a_customer_reads_only_their_own_payments_and_managers_read_all() {
    let cafe = cafe().await;
    let (ann, bob) = (cafe.charge(1, ANN).await, cafe.charge(2, BOB).await);
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
        let orders: Vec<i64> = list.body["_embedded"]["payments"]
            .as_array()
            .map(|a| a.iter().map(|p| p["orderId"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(orders, listed, "{who:?} lists");
        if statuses[0] == 200 {
            assert_eq!(list.body["page"]["totalElements"], listed.len(), "{who:?} counts");
        }
    }
}

#[tokio::test]
async fn only_a_service_charges_or_voids_even_a_manager_may_not() {
    let cafe = cafe().await;
    let charge = json!({"orderId": 7, "phoneNumber": ANN, "amt": 4500});
    let void = json!({"orderId": 7});
    for who in EVERYONE.into_iter().filter(|who| *who != Service) {
        let status = if who == Anonymous { 401 } else { 403 };
        expect(
            &cafe.call(who, Method::POST, "/payments", Some(charge.clone())).await,
            status,
            &format!("{who:?} charges"),
        );
    }
    assert_eq!(cafe.payments().await, [], "nothing was charged");

    cafe.charge(7, ANN).await;
    for who in EVERYONE.into_iter().filter(|who| *who != Service) {
        let status = if who == Anonymous { 401 } else { 403 };
        expect(
            &cafe.call(who, Method::POST, "/payments/voids", Some(void.clone())).await,
            status,
            &format!("{who:?} voids"),
        );
    }
    assert_eq!(cafe.payments().await, [(7, "Approved".to_string())], "nothing was voided");
    assert_eq!(cafe.app.raised_types().await, [EventType::PaymentApproved]);

    expect(&cafe.call(Service, Method::POST, "/payments/voids", Some(void)).await, 200, "order voids");
    assert_eq!(cafe.payments().await, [(7, "Canceled".to_string())]);
}
