use axum::http::StatusCode;
use contracts::events::{DeliveryChanged, DrinkChanged, OrderCanceled, OrderInfoReceived, Ordered, PaymentChanged};
use contracts::{DeliveryStatus, DrinkStatus, Event, OrderStatus, Payload, PaymentStatus};
use customercenter::events::UpdateMyPage;
use platform::testing::envelope_by_hand;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

pub fn ordered(id: i64, phone: &str) -> Event {
    Event::new(
        "order",
        Payload::Ordered(Ordered {
            id,
            phone_number: phone.into(),
            product_name: "latte".into(),
            qty: 2,
            amt: 6000,
            status: OrderStatus::Ordered,
            create_time: "2026-01-01T00:00:00.000Z".into(),
        }),
    )
}

fn payment(id: i64, phone: &str, status: PaymentStatus) -> PaymentChanged {
    PaymentChanged { id: 100 + id, order_id: id, phone_number: phone.into(), amt: 6000, status }
}

fn drink(id: i64, phone: &str, status: DrinkStatus) -> DrinkChanged {
    DrinkChanged { id: 200 + id, order_id: id, phone_number: phone.into(), status }
}

fn delivery(id: i64, status: DeliveryStatus) -> DeliveryChanged {
    DeliveryChanged { id: 300 + id, order_id: id, status }
}

/// The whole life of order `id`, placed from `phone`, up to delivery.
pub fn happy_path(id: i64, phone: &str) -> Vec<Event> {
    vec![
        ordered(id, phone),
        Event::new("payment", Payload::PaymentApproved(payment(id, phone, PaymentStatus::Approved))),
        Event::new(
            "drink",
            Payload::OrderInfoReceived(OrderInfoReceived {
                id: 200 + id,
                order_id: id,
                phone_number: phone.into(),
                product_name: "latte".into(),
                qty: 2,
                status: DrinkStatus::Received,
            }),
        ),
        Event::new("drink", Payload::Receipted(drink(id, phone, DrinkStatus::Receipted))),
        Event::new("drink", Payload::Made(drink(id, phone, DrinkStatus::Made))),
        Event::new("delivery", Payload::DeliveryStarted(delivery(id, DeliveryStatus::DeliveryStarted))),
        Event::new("delivery", Payload::Delivered(delivery(id, DeliveryStatus::Delivered))),
    ]
}

#[tokio::test]
async fn the_whole_life_of_an_order_in_reverse_gives_the_delivered_row() {
    let app = spawn_app().await;
    let mut events = happy_path(8, "01012345678");
    events.reverse();
    for e in &events {
        app.consume(&UpdateMyPage, std::slice::from_ref(e)).await;
    }
    app.consume(&UpdateMyPage, &events).await; // redelivered: the inbox drops them
    let row = app.get("/mypages/8").await;
    assert_eq!(row.status, StatusCode::OK);
    assert_eq!(row.headers["content-type"], "application/hal+json");
    assert_eq!(
        row.body,
        json!({
            "id": 8, "orderId": 8, "paymentId": 108, "drinkId": 208, "deliveryId": 308,
            "phoneNumber": "01012345678", "productName": "latte", "qty": 2, "amt": 6000, "status": "Delivered",
            "_links": {
                "self": {"href": "http://customercenter:8084/mypages/8"},
                "mypage": {"href": "http://customercenter:8084/mypages/8"},
            },
        })
    );
    assert_eq!(app.get("/mypages/search/findByOrderId?orderId=8").await.body["deliveryId"], 308);
}

#[tokio::test]
async fn a_cancelled_order_ends_payment_canceled() {
    let app = spawn_app().await;
    let mut events = happy_path(5, "01012345678");
    events.truncate(3);
    events.push(Event::new(
        "delivery",
        Payload::DeliveryCanceled(DeliveryChanged { id: 1, order_id: 5, status: DeliveryStatus::DeliveryCancelled }),
    ));
    events.push(Event::new("payment", Payload::PaymentCanceled(payment(5, "01012345678", PaymentStatus::Canceled))));
    events.push(Event::new(
        "order",
        Payload::OrderCanceled(OrderCanceled {
            id: 5,
            phone_number: "01012345678".into(),
            product_name: "latte".into(),
            qty: 2,
            amt: 6000,
            status: OrderStatus::OrderCanceled,
        }),
    ));
    events.push(Event::new("drink", Payload::DrinkCanceled(drink(5, "01012345678", DrinkStatus::Canceled))));
    app.consume(&UpdateMyPage, &events).await;
    let row = app.get("/mypages/5").await.body;
    assert_eq!(
        (row["status"].clone(), row["deliveryId"].clone(), row["drinkId"].clone()),
        (json!("Payment Canceled"), json!(null), json!(205))
    );
}

#[tokio::test]
async fn a_customer_finds_their_orders_by_phone_number_with_or_without_hyphens() {
    let app = spawn_app().await;
    let mut events = happy_path(1, "01012345678");
    events.extend(happy_path(2, "01012345678"));
    events.extend(happy_path(3, "01099998888"));
    app.consume(&UpdateMyPage, &events).await;

    let mine = app.get("/mypages/search/findByPhoneNumber?phoneNumber=010-1234-5678&sort=orderId,desc").await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["page"]["totalElements"], 2);
    let orders: Vec<_> =
        mine.body["_embedded"]["mypages"].as_array().unwrap().iter().map(|r| r["orderId"].clone()).collect();
    assert_eq!(orders, [json!(2), json!(1)]);

    let none = app.get("/mypages/search/findByPhoneNumber?phoneNumber=0100000000").await;
    assert_eq!((none.status, none.body["page"]["totalElements"].clone()), (StatusCode::OK, json!(0)));
    for bad in [
        "/mypages/search/findByPhoneNumber",
        "/mypages/search/findByPhoneNumber?phoneNumber=",
        "/mypages/search/findByPhoneNumber?phoneNumber=---",
    ] {
        let a = app.get(bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.body["errors"][0]["field"], "phoneNumber", "{bad}");
    }
    assert_eq!(app.get("/mypages").await.body["page"]["totalElements"], 3);
}

#[tokio::test]
async fn rows_are_built_from_the_bus() {
    let app = spawn_app().await;
    app.publish(&happy_path(4, "01012345678")[..5]).await;
    let row = app.eventually("/mypages/4", |a| a.body["status"] == "Made").await;
    assert_eq!(row.body["paymentId"], 104);
    assert_eq!(row.body["drinkId"], 204);
}

/// Only what reads as a contract's event reaches the view: the platform rejects the rest
/// before it, and the events behind them still arrive.
#[tokio::test]
async fn unreadable_and_unknown_events_are_rejected_and_bad_reads_refused() {
    let app = spawn_app().await;
    // Read leniently, either would have moved order 2 on.
    let broken = envelope_by_hand(
        "drink",
        "Made",
        json!({"id": 1, "orderId": 2, "phoneNumber": "01012345678", "status": "made"}),
    );
    let foreign = envelope_by_hand("delivery", "Shipped", json!({"id": 1, "orderId": 2, "status": "Delivered"}));
    let after = ordered(2, "01012345678").envelope().unwrap();
    app.ctx.bus().publish(&[broken, foreign, after]).await.unwrap();
    let row = app.eventually("/mypages/2", |a| a.status == StatusCode::OK).await;
    assert_eq!((row.body["status"].clone(), row.body["drinkId"].clone()), (json!("Ordered"), json!(null)));
    assert_eq!(app.get("/mypages").await.body["page"]["totalElements"], 1);
    app.check_statuses(&[
        ("/mypages?sort=amt", StatusCode::BAD_REQUEST),
        ("/mypages/1", StatusCode::NOT_FOUND),
        ("/mypages/zero", StatusCode::NOT_FOUND),
        ("/mypages/search/findByOrderId?orderId=1", StatusCode::NOT_FOUND),
        ("/mypages/search/findByOrderId?orderId=a", StatusCode::BAD_REQUEST),
    ])
    .await;
}

/// On PostgreSQL the batches run in truly concurrent transactions; the per-order guard is
/// what keeps one merge from overwriting another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_about_one_order_lose_nothing() {
    let app = std::sync::Arc::new(spawn_app().await);
    let events = (1..=6).flat_map(|order| happy_path(order, "01012345678")).collect();
    app.consume_each_at_once(&UpdateMyPage, events).await;
    for order in 1..=6 {
        let r = app.get(&format!("/mypages/{order}")).await.body;
        let got: Vec<Value> =
            ["status", "paymentId", "drinkId", "deliveryId", "amt", "qty"].iter().map(|f| r[*f].clone()).collect();
        assert_eq!(
            got,
            [json!("Delivered"), json!(100 + order), json!(200 + order), json!(300 + order), json!(6000), json!(2)],
            "order {order}"
        );
    }
}
