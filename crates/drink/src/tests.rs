//! The service on a real SQLite database, driven through its router (no socket) and its
//! consumer (by hand). No relay runs, so the events raised stay in the outbox to be read.

use std::ops::Deref;

use axum::http::{Method, StatusCode};
use platform::testing::TestService;
use platform::Event;
use serde_json::{json, Value};

struct TestApp(TestService);

impl Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

async fn spawn_app() -> TestApp {
    TestApp(TestService::start(crate::NAME, "drink:8083", crate::MIGRATIONS, crate::start).await)
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let answer = self.request(method, uri, body).await;
        (answer.status, answer.body)
    }

    async fn patch(&self, id: &Value, status: &str) -> (StatusCode, Value) {
        self.call(Method::PATCH, &format!("/drinks/{id}"), Some(json!({ "status": status }))).await
    }

    async fn deliver(&self, event: Event) {
        self.consume(&crate::events::OrderPolicy { ctx: self.ctx.clone() }, &[event]).await;
    }

    async fn raised_types(&self) -> Vec<String> {
        self.raised().await.into_iter().map(|(t, _)| t).collect()
    }

    async fn drink_of(&self, order_id: i64) -> Value {
        let (_, page) = self.call(Method::GET, "/drinks?size=1000", None).await;
        page["_embedded"]["drinks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["orderId"] == order_id)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn ordered(order_id: i64) -> Event {
    Event::new(
        "order",
        "Ordered",
        &json!({"id": order_id, "phoneNumber": "01012345678", "productName": "latte", "qty": 2, "amt": 9000,
                "status": "Ordered", "createTime": "2026-01-01T00:00:00.000Z"}),
    )
}

fn order_canceled(order_id: i64) -> Event {
    Event::new(
        "order",
        "OrderCanceled",
        &json!({"id": order_id, "phoneNumber": "01012345678", "productName": "latte", "qty": 2, "amt": 9000,
                "status": "OrderCanceled"}),
    )
}

/// A batch as the bus hands it over: the `Ordered` runs take one insert, the rest goes in
/// order, and the outcome is that of one event at a time.
#[tokio::test]
async fn a_mixed_batch_ends_as_one_event_at_a_time_would() {
    let app = spawn_app().await;
    let again = Event { event_id: "another-delivery-of-1".into(), ..ordered(1) };
    let batch = [ordered(1), ordered(2), again, order_canceled(3), ordered(3), ordered(4), order_canceled(4)];
    app.consume(&crate::events::OrderPolicy { ctx: app.ctx.clone() }, &batch).await;
    assert_eq!(app.drink_of(1).await["status"], "Received");
    assert_eq!(app.drink_of(2).await["status"], "Received");
    assert_eq!(app.drink_of(3).await["status"], "Canceled");
    assert_eq!(app.drink_of(4).await["status"], "Canceled");
    let mut raised = app.raised_types().await;
    raised.sort();
    assert_eq!(
        raised,
        ["DrinkCanceled", "DrinkCanceled", "OrderInfoReceived", "OrderInfoReceived", "OrderInfoReceived"]
    );
}

#[tokio::test]
async fn an_order_becomes_one_received_drink_in_the_queue() {
    let app = spawn_app().await;
    app.deliver(ordered(7)).await;
    app.deliver(ordered(7)).await;

    let raised = app.raised().await;
    assert_eq!(raised.len(), 1);
    let (kind, info) = &raised[0];
    assert_eq!(kind, "OrderInfoReceived");
    assert_eq!(
        (info["orderId"].as_i64(), info["productName"].as_str(), info["qty"].as_i64()),
        (Some(7), Some("latte"), Some(2))
    );
    assert_eq!(info["status"], "Received");

    let (status, queue) = app.call(Method::GET, "/orderinfos", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = queue["_embedded"]["orderinfos"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], info["id"]);
    assert_eq!(items[0]["_links"]["orderinfo"]["href"], format!("http://drink:8083/orderinfos/{}", info["id"]));

    let (status, one) = app.call(Method::GET, &format!("/orderinfos/{}", info["id"]), None).await;
    assert_eq!((status, one["status"].as_str()), (StatusCode::OK, Some("Received")));
}

#[tokio::test]
async fn a_barista_accepts_then_makes_a_drink() {
    let app = spawn_app().await;
    app.deliver(ordered(1)).await;
    let id = app.drink_of(1).await["id"].clone();

    let (status, drink) = app.patch(&id, "Receipted").await;
    assert_eq!((status, drink["status"].as_str()), (StatusCode::OK, Some("Receipted")));
    let (status, _) = app.patch(&id, "Receipted").await;
    assert_eq!(status, StatusCode::OK);
    let (status, drink) = app.patch(&id, "Made").await;
    assert_eq!((status, drink["status"].as_str()), (StatusCode::OK, Some("Made")));
    assert_eq!(drink["_links"]["drink"]["href"], format!("http://drink:8083/drinks/{id}"));

    let raised = app.raised().await;
    let types: Vec<_> = raised.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["OrderInfoReceived", "Receipted", "Made"]);
    assert_eq!(raised[2].1["orderId"], 1);
    assert_eq!(raised[2].1["status"], "Made");

    let (_, queue) = app.call(Method::GET, "/orderinfos", None).await;
    assert_eq!(queue["page"]["totalElements"], 0);
}

#[tokio::test]
async fn illegal_and_unknown_changes_are_refused() {
    let app = spawn_app().await;
    app.deliver(ordered(2)).await;
    let id = app.drink_of(2).await["id"].clone();
    app.patch(&id, "Made").await;

    let (status, problem) = app.patch(&id, "Receipted").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("Made") && detail.contains("Receipted"), "{detail}");

    let (status, problem) = app.patch(&id, "Brewing").await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    assert_eq!(app.patch(&json!(999), "Made").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.patch(&json!("x"), "Made").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.raised_types().await, ["OrderInfoReceived", "Made"]);
}

#[tokio::test]
async fn a_cancelled_order_cancels_its_drink_whatever_its_state_once() {
    let app = spawn_app().await;
    app.deliver(ordered(3)).await;
    let id = app.drink_of(3).await["id"].clone();
    app.patch(&id, "Made").await;

    app.deliver(order_canceled(3)).await;
    app.deliver(order_canceled(3)).await;
    let raised = app.raised().await;
    let types: Vec<_> = raised.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["OrderInfoReceived", "Made", "DrinkCanceled"]);
    assert_eq!((&raised[2].1["id"], raised[2].1["orderId"].as_i64()), (&id, Some(3)));
    assert_eq!(raised[2].1["status"], "Canceled");

    let (status, _) = app.patch(&id, "Made").await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_cancellation_that_comes_first_keeps_the_late_order_out_of_the_queue() {
    let app = spawn_app().await;
    app.deliver(order_canceled(4)).await;
    app.deliver(ordered(4)).await;

    assert_eq!(app.raised_types().await, ["DrinkCanceled"]);
    assert_eq!(app.drink_of(4).await["status"], "Canceled");
    let (_, queue) = app.call(Method::GET, "/orderinfos", None).await;
    assert_eq!(queue["page"]["totalElements"], 0);
}

#[tokio::test]
async fn an_unreadable_event_is_skipped() {
    let app = spawn_app().await;
    app.deliver(Event::new("order", "Ordered", &json!({"id": "seven"}))).await;
    assert!(app.raised().await.is_empty());
    let (_, page) = app.call(Method::GET, "/drinks", None).await;
    assert_eq!(page["page"]["totalElements"], 0);
}

#[tokio::test]
async fn the_queue_is_oldest_first_and_drinks_sort() {
    let app = spawn_app().await;
    for order in [30, 10, 20] {
        app.deliver(ordered(order)).await;
    }
    let (_, queue) = app.call(Method::GET, "/orderinfos", None).await;
    let orders: Vec<_> =
        queue["_embedded"]["orderinfos"].as_array().unwrap().iter().map(|d| d["orderId"].as_i64().unwrap()).collect();
    assert_eq!(orders, [30, 10, 20]);

    let (_, page) = app.call(Method::GET, "/drinks?sort=orderId,desc", None).await;
    let orders: Vec<_> =
        page["_embedded"]["drinks"].as_array().unwrap().iter().map(|d| d["orderId"].as_i64().unwrap()).collect();
    assert_eq!(orders, [30, 20, 10]);
    assert_eq!(app.call(Method::GET, "/drinks?sort=secret", None).await.0, StatusCode::BAD_REQUEST);
}
