//! The service on a real SQLite database, driven through its router (no socket) and its
//! consumer (by hand). No relay runs, so the events raised stay in the outbox to be read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use platform::embedded::EmbeddedBus;
use platform::outbox::{handle_batch, Outbox};
use platform::{Ctx, Db, Event};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

struct TestApp {
    ctx: Ctx,
    router: Router,
    dir: std::path::PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.ctx.cancel.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn spawn_app() -> TestApp {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("cafe-payment-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::sqlite_file(&dir, "payment").await.expect("a test database");
    db.migrate(crate::MIGRATIONS).await.expect("migrations");
    let bus = Arc::new(EmbeddedBus::open(&dir).await.expect("a test bus"));
    let ctx = Ctx {
        service: crate::NAME,
        group: "test-payment".into(),
        db,
        bus,
        outbox: Outbox::default(),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    let router = crate::start(ctx.clone(), crate::Config { delay_ms: None });
    TestApp { ctx, router, dir }
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Option<String>, Value) {
        let req = Request::builder().method(method).uri(uri).header(header::HOST, "payment:8082");
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let location = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, location, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn pay(&self, order_id: i64) -> (StatusCode, Option<String>, Value) {
        self.call(Method::POST, "/payments", Some(json!({"orderId": order_id, "phoneNumber": "010-1234-5678", "amt": 4500}))).await
    }

    async fn void(&self, order_id: i64) -> (StatusCode, Option<String>, Value) {
        self.call(Method::POST, "/payments/voids", Some(json!({"orderId": order_id}))).await
    }

    async fn deliver(&self, event: Event) {
        handle_batch(&self.ctx.db, &self.ctx.outbox, &crate::events::Refund { ctx: self.ctx.clone() }, &[event]).await.unwrap();
    }

    /// The events raised so far, as (type, payload).
    async fn raised(&self) -> Vec<(String, Value)> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT event_type, body FROM outbox ORDER BY seq")
            .fetch_all(&self.ctx.db.pool)
            .await
            .unwrap();
        rows.into_iter().map(|(t, b)| (t, serde_json::from_str(&b).unwrap())).collect()
    }
}

fn drink_canceled(order_id: Value) -> Event {
    Event::new("drink", "DrinkCanceled", &json!({"id": 1, "orderId": order_id, "phoneNumber": "01012345678", "status": "Canceled"}))
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
    assert_eq!(raised[0].0, "PaymentApproved");
    assert_eq!(raised[0].1["orderId"], 8);
    assert_eq!(raised[0].1["amt"], 4500);
    assert_eq!(raised[0].1["status"], "Approved");
    assert_eq!(raised[0].1["source"], "payment");
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

    let types: Vec<_> = app.raised().await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["PaymentApproved", "PaymentCanceled"]);
}

#[tokio::test]
async fn a_canceled_drink_refunds_the_payment_once() {
    let app = spawn_app().await;
    let (_, _, paid) = app.pay(11).await;
    app.deliver(drink_canceled(json!(11))).await;
    app.deliver(drink_canceled(json!(11))).await;
    app.deliver(drink_canceled(json!(404))).await;
    app.deliver(drink_canceled(json!("not an id"))).await;

    let raised = app.raised().await;
    let types: Vec<_> = raised.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["PaymentApproved", "PaymentCanceled"]);
    assert_eq!(raised[1].1["id"], paid["id"]);
    assert_eq!(raised[1].1["status"], "Canceled");
    assert_eq!(raised[1].1["amt"], 4500);

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
    let (status, _, problem) = app
        .call(Method::POST, "/payments", Some(json!({"orderId": "1", "phoneNumber": "", "amt": -1})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<_> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["orderId", "phoneNumber", "amt"]);
    let (status, _, _) = app.call(Method::POST, "/payments/voids", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(app.raised().await.is_empty());
}
