//! SPEC §9 for delivery, with real signed tokens: riders and managers see and mark the
//! deliveries; recording a cancellation is for the cafe's services only. A refusal changes
//! nothing.

use axum::http::Method;
use contracts::Payload;
use platform::testing::signed::{answers, expect, refusals, Guarded, Signed, Who};
use serde_json::{json, Value};

use crate::helpers::{spawn_behind, TestApp};
use Who::*;

const RIDERS: &[Who] = &[Rider, Manager];

type Cafe = Guarded<TestApp>;

/// The status of the item at `uri`, as a manager reads it.
async fn status_of(cafe: &Cafe, uri: &str) -> Value {
    cafe.call(Manager, Method::GET, uri, None).await.body["status"].clone()
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

#[tokio::test]
async fn only_riders_and_managers_see_deliveries_and_cancellations() {
    let cafe = cafe().await;
    for uri in [
        "/deliveries",
        "/deliveries/1",
        "/deliveries/search/findByOrderId?orderId=1",
        "/cancellations",
        "/cancellations/1",
        "/cancellations/search/findByOrderId?orderId=2",
    ] {
        cafe.check_table(Method::GET, uri, None, answers(Who::EVERYONE, RIDERS, 200)).await;
    }
}

#[tokio::test]
async fn only_riders_and_managers_mark_a_delivery_delivered() {
    let cafe = cafe().await;
    let delivered = json!({"status": "Delivered"});
    let refused = refusals(Who::EVERYONE, RIDERS);
    cafe.check_table(Method::PATCH, "/deliveries/1", Some(&delivered), refused).await;
    assert_eq!(status_of(&cafe, "/deliveries/1").await, "Delivery Started", "the delivery is as it was");
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
    let cancel = json!({"orderId": 1});
    let refused = refusals(Who::EVERYONE, &[Service]);
    cafe.check_table(Method::POST, "/cancellations", Some(&cancel), refused).await;
    assert_eq!(status_of(&cafe, "/deliveries/1").await, "Delivery Started", "the delivery still runs");
    let ledger = cafe.call(Manager, Method::GET, "/cancellations", None).await;
    assert_eq!(ledger.body["page"]["totalElements"], 1, "only order 2's cancellation is recorded");
    assert_eq!(cafe.app.raised_payloads().await, raised, "and nothing was raised");

    let recorded = cafe.call(Service, Method::POST, "/cancellations", Some(cancel)).await;
    expect(&recorded, 201, "order records a cancellation");
    assert_eq!(status_of(&cafe, "/deliveries/1").await, "Delivery Cancelled");
    assert!(matches!(cafe.app.raised_payloads().await.last(), Some(Payload::DeliveryCanceled(_))));
}
