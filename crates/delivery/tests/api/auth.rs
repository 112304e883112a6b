//! SPEC §9 for delivery, with real signed tokens: riders and managers see and mark the
//! deliveries; recording a cancellation is for the cafe's services only. A refusal changes
//! nothing.

use axum::http::{header, Method};
use contracts::Payload;
use platform::testing::Answer;
use serde_json::{json, Value};

use crate::helpers::{spawn_behind, TestApp};
use platform::testing::signed::{Signed, Who};
use Who::*;

const EVERYONE: [Who; 6] = [Anonymous, Customer("01012345678"), Barista, Rider, Manager, Service];

struct Cafe {
    app: TestApp,
    signed: Signed,
}

impl Cafe {
    async fn call(&self, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed.act_as(who);
        self.app.request(method, uri, body).await
    }

    async fn status_of(&self, uri: &str) -> Value {
        self.call(Manager, Method::GET, uri, None).await.body["status"].clone()
    }
}

/// Delivery with auth on: order 1's delivery started (delivery 1), order 2's cancelled
/// (cancellation 1).
async fn cafe() -> Cafe {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    app.deliver(&[TestApp::made_event(1)]).await;
    let cafe = Cafe { app, signed };
    let recorded = cafe.call(Service, Method::POST, "/cancellations", Some(json!({"orderId": 2}))).await;
    expect(&recorded, 201, "order records a cancellation");
    cafe
}

/// What `who` is answered on a route for `roles`: `allowed`, or the refusal.
fn answer_to(who: Who, roles: &[Who], allowed: u16) -> u16 {
    match who {
        _ if roles.contains(&who) => allowed,
        Anonymous => 401,
        _ => 403,
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
async fn only_riders_and_managers_see_deliveries_and_cancellations() {
    let cafe = cafe().await;
    for who in EVERYONE {
        for uri in [
            "/deliveries",
            "/deliveries/1",
            "/deliveries/search/findByOrderId?orderId=1",
            "/cancellations",
            "/cancellations/1",
            "/cancellations/search/findByOrderId?orderId=2",
        ] {
            let answer = cafe.call(who, Method::GET, uri, None).await;
            expect(&answer, answer_to(who, &[Rider, Manager], 200), &format!("{who:?} reads {uri}"));
        }
    }
}

#[tokio::test]
async fn only_riders_and_managers_mark_a_delivery_delivered() {
    let cafe = cafe().await;
    let delivered = json!({"status": "Delivered"});
    for who in EVERYONE.into_iter().filter(|who| !matches!(who, Rider | Manager)) {
        let answer = cafe.call(who, Method::PATCH, "/deliveries/1", Some(delivered.clone())).await;
        expect(&answer, answer_to(who, &[Rider, Manager], 200), &format!("{who:?} delivers"));
    }
    assert_eq!(cafe.status_of("/deliveries/1").await, "Delivery Started", "the delivery is as it was");
    for who in [Rider, Manager] {
        let answer = cafe.call(who, Method::PATCH, "/deliveries/1", Some(delivered.clone())).await;
        expect(&answer, 200, &format!("{who:?} delivers"));
        assert_eq!(answer.body["status"], "Delivered");
    }
}

#[tokio::test]
async fn only_a_service_records_a_cancellation_even_a_manager_may_not() {
    let cafe = cafe().await;
    let raised = cafe.app.raised_payloads().await;
    for who in EVERYONE.into_iter().filter(|who| *who != Service) {
        let answer = cafe.call(who, Method::POST, "/cancellations", Some(json!({"orderId": 1}))).await;
        expect(&answer, answer_to(who, &[Service], 201), &format!("{who:?} cancels"));
    }
    assert_eq!(cafe.status_of("/deliveries/1").await, "Delivery Started", "the delivery still runs");
    let ledger = cafe.call(Manager, Method::GET, "/cancellations", None).await;
    assert_eq!(ledger.body["page"]["totalElements"], 1, "only order 2's cancellation is recorded");
    assert_eq!(cafe.app.raised_payloads().await, raised, "and nothing was raised");

    let recorded = cafe.call(Service, Method::POST, "/cancellations", Some(json!({"orderId": 1}))).await;
    expect(&recorded, 201, "order records a cancellation");
    assert_eq!(cafe.status_of("/deliveries/1").await, "Delivery Cancelled");
    assert!(matches!(cafe.app.raised_payloads().await.last(), Some(Payload::DeliveryCanceled(_))));
}
