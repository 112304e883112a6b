use axum::http::StatusCode;
use contracts::events::DeliveryChanged;
use contracts::{DeliveryStatus, Payload};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn made_starts_one_delivery_and_raises_delivery_started() {
    let app = spawn_app().await;
    app.deliver(&[TestApp::made_event(8)]).await;
    app.deliver(&[TestApp::made_event(8), TestApp::made_event(8)]).await;

    let page = app.get("/deliveries").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "application/hal+json");
    let items = page.body["_embedded"]["deliveries"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["orderId"], 8);
    assert_eq!(items[0]["status"], "Delivery Started");
    assert_eq!(items[0]["_links"]["delivery"]["href"], format!("http://delivery:8085/deliveries/{}", items[0]["id"]));

    let id = items[0]["id"].as_i64().unwrap();
    assert_eq!(
        app.raised_payloads().await,
        [Payload::DeliveryStarted(DeliveryChanged { id, order_id: 8, status: DeliveryStatus::DeliveryStarted })]
    );
}

#[tokio::test]
async fn made_from_the_bus_starts_a_delivery() {
    let app = spawn_app().await;
    app.publish(&[TestApp::made_event(3)]).await;
    let found = app.eventually("/deliveries/search/findByOrderId?orderId=3", |a| a.status == StatusCode::OK).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["status"], "Delivery Started");
}

#[tokio::test]
async fn a_cancelled_order_starts_no_delivery() {
    let app = spawn_app().await;
    assert_eq!(app.cancel_order(5).await.status, StatusCode::CREATED);
    app.deliver(&[TestApp::made_event(5)]).await;
    assert_eq!(app.get("/deliveries/search/findByOrderId?orderId=5").await.status, StatusCode::NOT_FOUND);
    let raised = app.raised_payloads().await;
    assert!(matches!(raised.as_slice(), [Payload::DeliveryCanceled(c)] if c.order_id == 5), "{raised:?}");
}

#[tokio::test]
async fn a_started_delivery_is_delivered_once() {
    let app = spawn_app().await;
    let id = app.start(9).await;

    let first = app.patch_status(id, "Delivered").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "Delivered");
    let again = app.patch_status(id, "Delivered").await;
    assert_eq!(again.status, StatusCode::OK);

    assert_eq!(
        app.raised_payloads().await,
        [
            Payload::DeliveryStarted(DeliveryChanged { id, order_id: 9, status: DeliveryStatus::DeliveryStarted }),
            Payload::Delivered(DeliveryChanged { id, order_id: 9, status: DeliveryStatus::Delivered }),
        ]
    );
}

#[tokio::test]
async fn patch_refuses_bad_statuses_unknown_ids_and_cancelled_deliveries() {
    let app = spawn_app().await;
    let id = app.start(4).await;

    let bad = app.patch_status(id, "Delivery Started").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers["content-type"], "application/problem+json");
    assert_eq!(bad.body["errors"][0]["field"], "status");

    assert_eq!(app.patch_status(id + 100, "Delivered").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.patch_status(-1, "Delivered").await.status, StatusCode::NOT_FOUND);

    assert_eq!(app.cancel_order(4).await.status, StatusCode::CREATED);
    let conflict = app.patch_status(id, "Delivered").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.body["detail"], format!("delivery {id} is 'Delivery Cancelled' and cannot become 'Delivered'"));
    assert_eq!(app.get(&format!("/deliveries/{id}")).await.body["status"], "Delivery Cancelled");
}

#[tokio::test]
async fn reads_page_sort_and_search() {
    let app = spawn_app().await;
    app.deliver(&[TestApp::made_event(1), TestApp::made_event(2), TestApp::made_event(3)]).await;
    let page = app.get("/deliveries?size=2&sort=orderId,desc").await;
    assert_eq!(page.body["page"], json!({"size": 2, "totalElements": 3, "totalPages": 2, "number": 0}));
    let orders: Vec<_> =
        page.body["_embedded"]["deliveries"].as_array().unwrap().iter().map(|d| d["orderId"].clone()).collect();
    assert_eq!(orders, [json!(3), json!(2)]);

    app.check_statuses(&[
        ("/deliveries?sort=secret", StatusCode::BAD_REQUEST),
        ("/deliveries/999", StatusCode::NOT_FOUND),
        ("/deliveries/abc", StatusCode::NOT_FOUND),
        ("/deliveries/search/findByOrderId?orderId=x", StatusCode::BAD_REQUEST),
        ("/deliveries/search/findByOrderId", StatusCode::BAD_REQUEST),
        ("/deliveries/search/findByOrderId?orderId=77", StatusCode::NOT_FOUND),
    ])
    .await;
}

/// On PostgreSQL the two run in truly concurrent transactions; the per-order guard is what
/// keeps a delivery from starting for an order whose cancellation was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_made_and_cancellation_never_start_a_cancelled_orders_delivery() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for order in 1..=30 {
        let a = app.clone();
        tasks.push(tokio::spawn(async move { a.deliver(&[TestApp::made_event(order)]).await }));
        let a = app.clone();
        tasks.push(tokio::spawn(async move {
            assert_eq!(a.cancel_order(order).await.status, StatusCode::CREATED);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for order in 1..=30 {
        let d = app.get(&format!("/deliveries/search/findByOrderId?orderId={order}")).await;
        if d.status == StatusCode::OK {
            assert_eq!(d.body["status"], "Delivery Cancelled", "order {order}");
        }
    }
}
