use axum::http::{Method, StatusCode};
use contracts::calls::CancellationAnswer;
use contracts::events::DeliveryChanged;
use contracts::{DeliveryStatus, Payload};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn a_cancellation_is_recorded_once_and_repeats_answer_the_same_entry() {
    let app = spawn_app().await;
    let first = app.cancel_order(8).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["orderId"], 8);
    assert_eq!(first.body["status"], "Delivery Cancelled");
    let id = first.body["id"].as_i64().unwrap();
    // What order reads of the answer.
    let answer: CancellationAnswer = serde_json::from_value(first.body.clone()).unwrap();
    assert_eq!(answer, CancellationAnswer { id, order_id: 8, status: DeliveryStatus::DeliveryCancelled });
    assert_eq!(first.headers["location"], format!("http://delivery:8085/cancellations/{id}"));

    let again = app.cancel_order(8).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], id);

    assert_eq!(
        app.raised_payloads().await,
        [Payload::DeliveryCanceled(DeliveryChanged { id, order_id: 8, status: DeliveryStatus::DeliveryCancelled })]
    );

    assert_eq!(app.get(&format!("/cancellations/{id}")).await.body["orderId"], 8);
    assert_eq!(app.get("/cancellations/search/findByOrderId?orderId=8").await.body["id"], id);
    assert_eq!(app.get("/cancellations/search/findByOrderId?orderId=9").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/cancellations").await.body["page"]["totalElements"], 1);
}

#[tokio::test]
async fn cancelling_marks_the_started_delivery_cancelled() {
    let app = spawn_app().await;
    app.deliver(&[TestApp::made_event(6)]).await;
    assert_eq!(app.cancel_order(6).await.status, StatusCode::CREATED);
    let d = app.get("/deliveries/search/findByOrderId?orderId=6").await;
    assert_eq!(d.body["status"], "Delivery Cancelled");
}

#[tokio::test]
async fn a_delivered_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let id = app.start(2).await;
    assert_eq!(app.patch_status(id, "Delivered").await.status, StatusCode::OK);

    let refused = app.cancel_order(2).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert_eq!(refused.body["detail"], "order 2 was already delivered");
    assert_eq!(app.get("/cancellations").await.body["page"]["totalElements"], 0);
}

#[tokio::test]
async fn bad_cancellation_bodies_are_400_or_415() {
    let app = spawn_app().await;
    for body in [json!({}), json!({"orderId": "8"}), json!({"orderId": 0}), json!({"orderId": 2.5})] {
        let a = app.request(Method::POST, "/cancellations", Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.body["errors"][0]["field"], "orderId", "{body}");
    }
    // No JSON content type at all.
    let a = app.request(Method::POST, "/cancellations", None).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
