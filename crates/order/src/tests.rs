//! The service on a real SQLite database, driven through its router (no socket), with
//! payment and delivery stood in for by small HTTP servers that answer as the real ones do
//! and record what they were sent. No relay runs, so the events raised stay in the outbox to
//! be read. These run as the original did, auth off; `auth` runs them signed.

mod auth;
mod cancelling;
mod settling;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use contracts::{Event, EventType, OrderStatus, Payload};
use platform::breaker::{Breaker, Settings};
use platform::client::ServiceClient;
use platform::testing::{Answer, TestService};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// What a stand-in dependency was sent: `(path, body)`, in order.
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A dependency that answers each of `answers`' paths with its status and body.
async fn stand_in(answers: Vec<(&'static str, StatusCode, Value)>) -> (String, Calls) {
    let calls = Calls::default();
    let mut router = Router::new();
    for (path, status, body) in answers {
        let calls = calls.clone();
        router = router.route(
            path,
            post(move |Json(sent): Json<Value>| async move {
                calls.lock().unwrap().push((path.to_string(), sent));
                (status, Json(body))
            }),
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, calls)
}

/// An address nobody listens on: a dependency that is down.
async fn down() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A payment as payment answers it, links and all.
fn payment(id: i64, order_id: i64, status: &str) -> Value {
    let href = format!("http://payment:8082/payments/{id}");
    json!({
        "id": id, "orderId": order_id, "phoneNumber": "01012345678", "amt": 9000, "status": status,
        "createTime": "2026-01-01T00:00:00.000Z",
        "_links": {"self": {"href": href}, "payment": {"href": href}},
    })
}

/// The ledger entry as delivery answers it.
fn cancellation(order_id: i64) -> Value {
    let href = "http://delivery:8085/cancellations/1";
    json!({"id": 1, "orderId": order_id, "status": "Delivery Cancelled",
           "_links": {"self": {"href": href}, "cancellation": {"href": href}}})
}

platform::test_app!(TestApp);

const RETRY_AFTER_SECS: u64 = 2;

/// The service with its reconciler not running (a test calls `reconcile_once` itself),
/// calling payment and delivery at these bases with these timeouts.
async fn unreconciled(payment: (&str, Duration), delivery: (&str, Duration)) -> (TestApp, Arc<crate::Service>) {
    let client = |name, (base, timeout): (&str, Duration)| {
        ServiceClient::new(name, base, timeout, Arc::new(Breaker::new(Settings::default())))
    };
    let config = crate::Config {
        payment: client("payment", payment),
        delivery: client("delivery", delivery),
        settle_after: Duration::from_secs(600),
        retry_after_secs: RETRY_AFTER_SECS,
        payment_retries: 0,
        menu: crate::Menu::default(),
    };
    let mut svc = None;
    let app = TestService::start(crate::NAME, "order:8081", crate::MIGRATIONS, |ctx| {
        let built = crate::Service::new(ctx, config);
        svc = Some(built.clone());
        platform::testing::signed::open(crate::api::router(built))
    })
    .await;
    (TestApp(app), svc.expect("the service was built"))
}

async fn spawn_app(payment: &str, delivery: &str) -> TestApp {
    spawn_behind(payment, delivery, platform::testing::signed::open).await
}

/// The service, its router wrapped in `guard` (which decides who is calling).
async fn spawn_behind(payment: &str, delivery: &str, guard: impl FnOnce(Router) -> Router) -> TestApp {
    let client = |name, base: &str| {
        ServiceClient::new(name, base, Duration::from_secs(2), Arc::new(Breaker::new(Settings::default())))
    };
    let config = crate::Config {
        payment: client("payment", payment),
        delivery: client("delivery", delivery),
        // Far beyond any test: the reconciler never settles an order under test.
        settle_after: Duration::from_secs(600),
        retry_after_secs: RETRY_AFTER_SECS,
        payment_retries: 1,
        menu: crate::Menu::default(),
    };
    let start = |ctx| guard(crate::start(ctx, config));
    TestApp(TestService::start(crate::NAME, "order:8081", crate::MIGRATIONS, start).await)
}

impl TestApp {
    async fn place(&self) -> Answer {
        let body = json!({"phoneNumber": "010-1234-5678", "productName": "Latte", "qty": 2, "amt": 9000});
        self.request(Method::POST, "/orders", Some(body)).await
    }

    async fn raised(&self) -> Vec<Event> {
        self.0.raised::<Payload>().await
    }

    async fn raised_types(&self) -> Vec<EventType> {
        self.raised().await.iter().map(|e| e.payload.kind()).collect()
    }
}

#[tokio::test]
async fn an_order_paid_for_is_placed_and_raises_ordered() {
    let (payment_base, paid) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let app = spawn_app(&payment_base, &down().await).await;

    let answer = app.place().await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let order = answer.body;
    assert_eq!((order["id"].as_i64(), order["status"].as_str()), (Some(1), Some("Ordered")));
    assert_eq!(order["phoneNumber"], "01012345678");
    assert_eq!(answer.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()), Some("http://order:8081/orders/1"));

    let sent = paid.lock().unwrap().clone();
    assert_eq!(sent, [("/payments".to_string(), json!({"orderId": 1, "phoneNumber": "01012345678", "amt": 9000}))]);

    let raised = app.raised().await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].source, "order");
    let Payload::Ordered(ordered) = &raised[0].payload else { panic!("not Ordered: {:?}", raised[0]) };
    assert_eq!((ordered.id, ordered.status), (1, OrderStatus::Ordered));
    // The event's JSON is the order's fields, as it was before events were typed.
    let mut wire = serde_json::to_value(&raised[0]).unwrap();
    for envelope in ["eventId", "eventType", "timestamp", "source"] {
        wire.as_object_mut().unwrap().remove(envelope);
    }
    let mut fields = order.clone();
    fields.as_object_mut().unwrap().remove("_links");
    assert_eq!(wire, fields);

    let found = app.get("/orders/1").await;
    assert_eq!((found.status, &found.body["status"]), (StatusCode::OK, &json!("Ordered")));
}

#[tokio::test]
async fn a_refused_payment_voids_the_order_and_answers_503() {
    let (payment_base, calls) = stand_in(vec![
        ("/payments", StatusCode::BAD_REQUEST, json!({"status": 400, "detail": "invalid fields: amt"})),
        ("/payments/voids", StatusCode::OK, payment(4, 1, "Canceled")),
    ])
    .await;
    let app = spawn_app(&payment_base, &down().await).await;

    let answer = app.place().await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["detail"], "payment is busy, please try again shortly; you have not been charged");
    assert_eq!(answer.headers.get(header::RETRY_AFTER).unwrap(), &RETRY_AFTER_SECS.to_string());

    let sent = calls.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "the charge, then its void");
    assert_eq!(sent[1], ("/payments/voids".to_string(), json!({"orderId": 1})));
    assert_eq!(app.get("/orders").await.body["page"]["totalElements"], 0);
    assert_eq!(app.get("/orders/1").await.status, StatusCode::NOT_FOUND);
    assert!(app.raised().await.is_empty());
}

#[tokio::test]
async fn a_payment_that_is_not_approved_places_no_order() {
    let (payment_base, calls) = stand_in(vec![
        ("/payments", StatusCode::OK, payment(4, 1, "Canceled")),
        ("/payments/voids", StatusCode::OK, payment(4, 1, "Canceled")),
    ])
    .await;
    let app = spawn_app(&payment_base, &down().await).await;
    assert_eq!(app.place().await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.lock().unwrap().len(), 2, "the charge, then its void");
    assert_eq!(app.get("/orders").await.body["page"]["totalElements"], 0);
    assert!(app.raised().await.is_empty());
}

#[tokio::test]
async fn cancelling_records_the_cancellation_first_then_raises_order_canceled() {
    let (payment_base, _) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let (delivery_base, recorded) = stand_in(vec![("/cancellations", StatusCode::CREATED, cancellation(1))]).await;
    let app = spawn_app(&payment_base, &delivery_base).await;
    let order = app.place().await.body;

    let answer = app.request(Method::DELETE, "/orders/1", None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(recorded.lock().unwrap().clone(), [("/cancellations".to_string(), json!({"orderId": 1}))]);
    assert_eq!(app.get("/orders/1").await.status, StatusCode::NOT_FOUND);

    assert_eq!(app.raised_types().await, [EventType::Ordered, EventType::OrderCanceled]);
    let raised = app.raised().await;
    let wire = serde_json::to_value(&raised[1]).unwrap();
    for (field, expected) in [
        ("eventType", json!("OrderCanceled")),
        ("id", json!(1)),
        ("phoneNumber", order["phoneNumber"].clone()),
        ("productName", json!("Latte")),
        ("qty", json!(2)),
        ("amt", json!(9000)),
        ("status", json!("OrderCanceled")),
    ] {
        assert_eq!(wire[field], expected, "{field}");
    }
    assert!(wire.get("createTime").is_none());

    assert_eq!(app.request(Method::DELETE, "/orders/1", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(recorded.lock().unwrap().len(), 1, "an unknown order is not sent to delivery");
}

#[tokio::test]
async fn a_cancellation_delivery_refuses_keeps_the_order_with_409() {
    let (payment_base, _) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let refusal = json!({"type": "https://cafe.example/problems/conflict", "title": "Conflict", "status": 409,
                         "detail": "order 1 was already delivered"});
    let (delivery_base, _) = stand_in(vec![("/cancellations", StatusCode::CONFLICT, refusal)]).await;
    let app = spawn_app(&payment_base, &delivery_base).await;
    app.place().await;

    let answer = app.request(Method::DELETE, "/orders/1", None).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.body["detail"], "order 1 cannot be cancelled: order 1 was already delivered");
    assert_eq!(app.get("/orders/1").await.status, StatusCode::OK);
    assert_eq!(app.raised_types().await, [EventType::Ordered]);
}

#[tokio::test]
async fn a_cancellation_delivery_cannot_record_keeps_the_order_with_503() {
    let (payment_base, _) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let app = spawn_app(&payment_base, &down().await).await;
    app.place().await;

    let answer = app.request(Method::DELETE, "/orders/1", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers.get(header::RETRY_AFTER).unwrap(), &RETRY_AFTER_SECS.to_string());
    assert_eq!(
        answer.body["detail"],
        "delivery has not confirmed the cancellation yet; it is being settled, please try again shortly \
         (the order stays until delivery records its cancellation)"
    );
    assert_eq!(app.get("/orders/1").await.body["status"], "Ordered");
    assert_eq!(app.raised_types().await, [EventType::Ordered]);
}
