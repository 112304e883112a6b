//! The service on a real SQLite database, driven through its router (no socket) and its
//! consumer (by hand). No relay runs, so the events raised stay in the outbox to be read.
//! These run as the original did, auth off; `auth` runs them signed.

mod auth;

use axum::http::{header, Method, StatusCode};
use contracts::events::{DrinkChanged, PaymentChanged};
use contracts::{DrinkStatus, Event, EventType, Payload, PaymentStatus};
use platform::testing::TestService;
use serde_json::{json, Value};

platform::test_app!(TestApp);

async fn spawn_app() -> TestApp {
    spawn_behind(platform::testing::signed::open).await
}

/// The service, its router wrapped in `guard` (which decides who is calling).
async fn spawn_behind(guard: impl FnOnce(axum::Router) -> axum::Router) -> TestApp {
    let start = |ctx| guard(crate::start(ctx, crate::Config { delay_ms: None }));
    TestApp(TestService::start(crate::NAME, "payment:8082", crate::MIGRATIONS, start).await)
}

impl TestApp {
    /// The status, the `Location` header and the body of the answer.
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Option<String>, Value) {
        let answer = self.request(method, uri, body).await;
        let location = answer.headers.get(header::LOCATION).map(|v| v.to_str().unwrap().to_string());
        (answer.status, location, answer.body)
    }

    async fn pay(&self, order_id: i64) -> (StatusCode, Option<String>, Value) {
        self.call(
            Method::POST,
            "/payments",
            Some(json!({"orderId": order_id, "phoneNumber": "010-1234-5678", "amt": 4500})),
        )
        .await
    }

    async fn void(&self, order_id: i64) -> (StatusCode, Option<String>, Value) {
        self.call(Method::POST, "/payments/voids", Some(json!({"orderId": order_id}))).await
    }

    async fn deliver(&self, event: Event) {
        self.consume(&crate::events::Refund { ctx: self.ctx.clone() }, &[event]).await;
    }

    async fn raised(&self) -> Vec<Event> {
        self.0.raised::<Payload>().await
    }

    async fn raised_types(&self) -> Vec<EventType> {
        self.raised().await.iter().map(|e| e.payload.kind()).collect()
    }
}

fn drink_canceled(order_id: i64) -> Event {
    Event::new(
        "drink",
        Payload::DrinkCanceled(DrinkChanged {
            id: 1,
            order_id,
            phone_number: "01012345678".into(),
            status: DrinkStatus::Canceled,
        }),
    )
}

/// The payment an event carries, if it is one of payment's.
fn payment_of(event: &Event) -> &PaymentChanged {
    match &event.payload {
        Payload::PaymentApproved(p) | Payload::PaymentCanceled(p) => p,
        other => panic!("not a payment event: {other:?}"),
    }
}

#[tokio::test]
async fn a_repeated_charge_returns_the_first_payment_and_charges_once() {
    let app = spawn_app().await;
    let (status, location, first) = app.pay(8).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "Approved");
    assert_eq!(first["orderId"], 8);
    let href = format!("http://payment:8082/payments/{}", first["id"]);
    assert_eq!(location.as_deref(), Some(href.as_str()));
    assert_eq!(first["_links"]["payment"]["href"], href.as_str());

    let (status, _, again) = app.pay(8).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);

    let raised = app.raised().await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].payload.kind(), EventType::PaymentApproved);
    assert_eq!(raised[0].source, "payment");
    let approved = payment_of(&raised[0]);
    assert_eq!(json!(approved.id), first["id"]);
    assert_eq!((approved.order_id, approved.amt), (8, 4500));
    assert_eq!((approved.phone_number.as_str(), approved.status), ("010-1234-5678", PaymentStatus::Approved));
}

#[tokio::test]
async fn a_void_before_the_charge_bars_the_late_charge() {
    let app = spawn_app().await;
    let (status, _, voided) = app.void(5).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((voided["status"].as_str(), voided["amt"].as_i64()), (Some("Canceled"), Some(0)));

    let (status, _, late) = app.pay(5).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(late["id"], voided["id"]);
    assert_eq!(late["status"], "Canceled");
    assert!(app.raised().await.is_empty());
}

#[tokio::test]
async fn a_void_refunds_an_approved_payment_once() {
    let app = spawn_app().await;
    let (_, _, paid) = app.pay(3).await;
    let (status, _, voided) = app.void(3).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&voided["id"], voided["status"].as_str()), (&paid["id"], Some("Canceled")));
    let (status, _, again) = app.void(3).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("Canceled")));

    assert_eq!(app.raised_types().await, [EventType::PaymentApproved, EventType::PaymentCanceled]);
}

#[tokio::test]
async fn a_canceled_drink_refunds_the_payment_once() {
    let app = spawn_app().await;
    let (_, _, paid) = app.pay(11).await;
    app.deliver(drink_canceled(11)).await;
    app.deliver(drink_canceled(11)).await;
    app.deliver(drink_canceled(404)).await;

    let raised = app.raised().await;
    let types: Vec<_> = raised.iter().map(|e| e.payload.kind()).collect();
    assert_eq!(types, [EventType::PaymentApproved, EventType::PaymentCanceled]);
    let refunded = payment_of(&raised[1]);
    assert_eq!(json!(refunded.id), paid["id"]);
    assert_eq!((refunded.order_id, refunded.amt, refunded.status), (11, 4500, PaymentStatus::Canceled));

    let (_, _, now) = app.call(Method::GET, &format!("/payments/{}", paid["id"]), None).await;
    assert_eq!(now["status"], "Canceled");
    let (status, _, _) = app.call(Method::GET, "/payments/search/findByOrderId?orderId=404", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn payments_are_found_by_order_and_listed() {
    let app = spawn_app().await;
    app.pay(1).await;
    let (_, _, second) = app.pay(2).await;

    let (status, _, found) = app.call(Method::GET, "/payments/search/findByOrderId?orderId=2", None).await;
    assert_eq!((status, &found["id"]), (StatusCode::OK, &second["id"]));
    for q in ["", "?orderId=", "?orderId=x", "?orderId=-1"] {
        let (status, _, _) = app.call(Method::GET, &format!("/payments/search/findByOrderId{q}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
    }

    let (status, _, page) = app.call(Method::GET, "/payments?sort=orderId,desc&size=1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["_embedded"]["payments"][0]["orderId"], 2);
    assert_eq!(page["page"], json!({"size": 1, "totalElements": 2, "totalPages": 2, "number": 0}));

    for (uri, expected) in [("/payments/0", 404), ("/payments/abc", 404), ("/payments/999", 404)] {
        assert_eq!(app.call(Method::GET, uri, None).await.0.as_u16(), expected, "{uri}");
    }
}

#[tokio::test]
async fn a_bad_charge_names_each_field() {
    let app = spawn_app().await;
    let (status, _, problem) =
        app.call(Method::POST, "/payments", Some(json!({"orderId": "1", "phoneNumber": "", "amt": -1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<_> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["orderId", "phoneNumber", "amt"]);
    let (status, _, _) = app.call(Method::POST, "/payments/voids", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(app.raised().await.is_empty());
}

#[tokio::test]
async fn a_canceled_drink_on_the_bus_reaches_the_refund() {
    let app = spawn_app().await;
    let (_, _, paid) = app.pay(12).await;
    app.publish(&[drink_canceled(12)]).await;
    let now = app.eventually(&format!("/payments/{}", paid["id"]), |a| a.body["status"] == "Canceled").await;
    assert_eq!(now.body["status"], "Canceled");
    assert_eq!(app.raised_types().await, [EventType::PaymentApproved, EventType::PaymentCanceled]);
}

#[tokio::test]
async fn events_other_than_a_canceled_drink_refund_nothing() {
    let app = spawn_app().await;
    let (_, _, paid) = app.pay(13).await;
    let made = DrinkChanged { id: 1, order_id: 13, phone_number: "01012345678".into(), status: DrinkStatus::Made };
    app.deliver(Event::new("drink", Payload::Made(made))).await;
    let (_, _, now) = app.call(Method::GET, &format!("/payments/{}", paid["id"]), None).await;
    assert_eq!(now["status"], "Approved");
    assert_eq!(app.raised_types().await, [EventType::PaymentApproved]);
}

#[tokio::test]
async fn the_search_index_links_find_by_order_id() {
    let app = spawn_app().await;
    let answer = app.get("/payments/search").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers.get(header::CONTENT_TYPE).unwrap(), "application/hal+json");
    assert_eq!(
        answer.body,
        json!({"_links": {
            "findByOrderId": {"href": "http://payment:8082/payments/search/findByOrderId{?orderId}", "templated": true},
            "self": {"href": "http://payment:8082/payments/search"},
        }})
    );
}
