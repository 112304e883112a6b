use axum::http::StatusCode;
use contracts::events::{DeliveryChanged, DrinkChanged, Ordered};
use contracts::{DeliveryStatus, DrinkStatus, Event, OrderStatus, Payload};
use deliverycenter::events::UpdateDeliveryPage;
use platform::testing::envelope_by_hand;
use serde_json::json;

use crate::helpers::spawn_app;

pub fn ordered(order_id: i64) -> Event {
    Event::new(
        "order",
        Payload::Ordered(Ordered {
            id: order_id,
            phone_number: "01012345678".into(),
            product_name: "latte".into(),
            qty: 2,
            amt: 6000,
            status: OrderStatus::Ordered,
            create_time: "2026-01-01T00:00:00.000Z".into(),
        }),
    )
}

fn delivery_started(order_id: i64, delivery_id: i64) -> Event {
    let d = DeliveryChanged { id: delivery_id, order_id, status: DeliveryStatus::DeliveryStarted };
    Event::new("delivery", Payload::DeliveryStarted(d))
}

fn delivered(order_id: i64, delivery_id: i64) -> Event {
    let d = DeliveryChanged { id: delivery_id, order_id, status: DeliveryStatus::Delivered };
    Event::new("delivery", Payload::Delivered(d))
}

fn delivery_canceled(order_id: i64) -> Event {
    let d = DeliveryChanged { id: 70, order_id, status: DeliveryStatus::DeliveryCancelled };
    Event::new("delivery", Payload::DeliveryCanceled(d))
}

#[tokio::test]
async fn events_in_any_order_build_the_same_page() {
    let app = spawn_app().await;
    let started = delivery_started(8, 41);
    app.consume(&UpdateDeliveryPage, &[delivered(8, 41), started.clone()]).await;
    let early = app.get("/deliverypages/8").await;
    assert_eq!(early.status, StatusCode::OK);
    assert_eq!(early.body["status"], "Delivered");
    assert_eq!(early.body["amt"], json!(null));

    app.consume(&UpdateDeliveryPage, &[ordered(8), started]).await;
    let page = app.get("/deliverypages/8").await;
    assert_eq!(page.headers["content-type"], "application/hal+json");
    assert_eq!(
        page.body,
        json!({
            "id": 8, "orderId": 8, "amt": 6000, "deliveryId": 41, "status": "Delivered",
            "productName": "latte", "qty": 2, "phoneNumber": "01012345678",
            "_links": {
                "self": {"href": "http://deliverycenter:8086/deliverypages/8"},
                "deliverypage": {"href": "http://deliverycenter:8086/deliverypages/8"},
            },
        })
    );
    assert_eq!(app.get("/deliverypages/search/findByOrderId?orderId=8").await.body["deliveryId"], 41);
}

#[tokio::test]
async fn a_cancelled_delivery_stays_cancelled() {
    let app = spawn_app().await;
    app.consume(&UpdateDeliveryPage, &[ordered(2), delivery_canceled(2), delivery_started(2, 5)]).await;
    assert_eq!(app.get("/deliverypages/2").await.body["status"], "Delivery Cancelled");
}

/// Events of other stages are not this view's business.
#[tokio::test]
async fn events_it_does_not_follow_are_skipped() {
    let app = spawn_app().await;
    let made = DrinkChanged { id: 1, order_id: 3, phone_number: "01012345678".into(), status: DrinkStatus::Made };
    let foreign = Event::new("drink", Payload::Made(made));
    app.consume(&UpdateDeliveryPage, &[foreign, ordered(3)]).await;
    let list = app.get("/deliverypages").await;
    assert_eq!(list.body["page"]["totalElements"], 1);
    assert_eq!(list.body["_embedded"]["deliverypages"][0]["status"], "Ordered");
}

/// Only what reads as a contract's event reaches the view: the platform rejects the rest
/// before it, and the events behind them still arrive.
#[tokio::test]
async fn unreadable_events_on_the_bus_are_rejected() {
    let app = spawn_app().await;
    // Read leniently, either would have moved order 3 on.
    let broken = envelope_by_hand("delivery", "DeliveryStarted", json!({"id": 1, "orderId": 3, "status": "Started"}));
    let no_status = envelope_by_hand("delivery", "Delivered", json!({"id": 1, "orderId": 3}));
    let after = ordered(3).envelope().unwrap();
    app.ctx.bus().publish(&[broken, no_status, after]).await.unwrap();
    let page = app.eventually("/deliverypages/3", |a| a.status == StatusCode::OK).await;
    assert_eq!((page.body["status"].clone(), page.body["deliveryId"].clone()), (json!("Ordered"), json!(null)));
    assert_eq!(app.get("/deliverypages").await.body["page"]["totalElements"], 1);
}

/// The total is kept, not counted: each page counts once, however many events, batches and
/// redeliveries built it.
#[tokio::test]
async fn the_total_counts_each_page_once() {
    let app = spawn_app().await;
    let events = [ordered(1), delivery_started(1, 5), ordered(2)];
    app.consume(&UpdateDeliveryPage, &events).await;
    app.consume(&UpdateDeliveryPage, &events).await; // redelivered: the inbox drops them
    app.consume(&UpdateDeliveryPage, &[delivered(1, 5), ordered(3), delivered(3, 6)]).await;
    app.consume(&UpdateDeliveryPage, &[ordered(3)]).await; // the same fact again, a new event
    let list = app.get("/deliverypages").await;
    assert_eq!(list.body["page"]["totalElements"], 3);
    assert_eq!(list.body["_embedded"]["deliverypages"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn pages_are_built_from_the_bus() {
    let app = spawn_app().await;
    app.publish(&[ordered(4), delivery_started(4, 9)]).await;
    let page = app.eventually("/deliverypages/4", |a| a.body["status"] == "Delivery Started").await;
    assert_eq!(page.body["deliveryId"], 9);
    assert_eq!(page.body["amt"], 6000);
}

#[tokio::test]
async fn reads_page_sort_and_refuse_bad_input() {
    let app = spawn_app().await;
    app.consume(&UpdateDeliveryPage, &[ordered(1), ordered(2), ordered(3), delivery_started(2, 1)]).await;
    let page = app.get("/deliverypages?size=2&sort=status,desc&sort=orderId,asc").await;
    assert_eq!(page.body["page"], json!({"size": 2, "totalElements": 3, "totalPages": 2, "number": 0}));
    assert_eq!(page.body["_embedded"]["deliverypages"][0]["orderId"], 1);
    assert_eq!(app.get("/deliverypages?sort=status,desc").await.body["_embedded"]["deliverypages"][0]["orderId"], 1);
    app.check_statuses(&[
        ("/deliverypages?sort=amt", StatusCode::BAD_REQUEST),
        ("/deliverypages/99", StatusCode::NOT_FOUND),
        ("/deliverypages/x", StatusCode::NOT_FOUND),
        ("/deliverypages/search/findByOrderId?orderId=99", StatusCode::NOT_FOUND),
        ("/deliverypages/search/findByOrderId?orderId=-1", StatusCode::BAD_REQUEST),
    ])
    .await;
}

#[tokio::test]
async fn pages_are_found_by_status_paged_like_the_list() {
    let app = spawn_app().await;
    let mut events: Vec<Event> = (1..=5).map(ordered).collect();
    events.extend([delivery_started(2, 12), delivery_started(4, 14), delivered(4, 14), delivery_started(5, 15)]);
    app.consume(&UpdateDeliveryPage, &events).await;
    let app = &app;
    let listed = async |uri: &'static str| {
        let a = app.get(uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
        let ids: Vec<i64> = a.body["_embedded"]["deliverypages"]
            .as_array()
            .map(|pages| pages.iter().map(|p| p["orderId"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        (ids, a.body["page"]["totalElements"].clone())
    };
    let started = "/deliverypages/search/findByStatus?status=Delivery%20Started&sort=orderId,desc";
    assert_eq!(listed(started).await, (vec![5, 2], json!(2)));
    let ordered_only = "/deliverypages/search/findByStatus?status=Ordered&sort=orderId,asc&size=1&page=1";
    assert_eq!(listed(ordered_only).await, (vec![3], json!(2)), "the second of two, one a page");
    assert_eq!(listed("/deliverypages/search/findByStatus?status=Delivered").await, (vec![4], json!(1)));
    app.check_statuses(&[
        ("/deliverypages/search/findByStatus?status=Lost", StatusCode::BAD_REQUEST),
        ("/deliverypages/search/findByStatus", StatusCode::BAD_REQUEST),
        ("/deliverypages/search/findByStatus?status=Ordered&sort=amt", StatusCode::BAD_REQUEST),
    ])
    .await;
}

/// On PostgreSQL the batches run in truly concurrent transactions; the per-order guard is
/// what keeps one merge from overwriting another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_about_one_order_lose_nothing() {
    let app = std::sync::Arc::new(spawn_app().await);
    let events = (1..=10)
        .flat_map(|order| [ordered(order), delivery_started(order, 100 + order), delivered(order, 100 + order)])
        .collect();
    app.consume_each_at_once(&UpdateDeliveryPage, events).await;
    for order in 1..=10 {
        let p = app.get(&format!("/deliverypages/{order}")).await.body;
        assert_eq!(
            (p["status"].clone(), p["deliveryId"].clone(), p["amt"].clone()),
            (json!("Delivered"), json!(100 + order), json!(6000)),
            "order {order}"
        );
    }
}
