//! The service on a real SQLite database, driven through its router (no socket) and its
//! consumer (by hand). No relay runs, so the events raised stay in the outbox to be read.
//! These run as the original did, auth off; `auth` runs them signed.

mod auth;

use axum::http::{Method, StatusCode};
use contracts::events::{DrinkChanged, OrderCanceled, OrderInfoReceived, Ordered, PaymentChanged};
use contracts::{DrinkStatus, Event, OrderStatus, Payload, PaymentStatus};
use opentelemetry::trace::{TraceContextExt, TraceId};
use platform::testing::TestService;
use serde_json::{json, Value};

platform::test_app!(TestApp);

async fn spawn_app() -> TestApp {
    spawn_behind(platform::testing::signed::open).await
}

/// The service, its router wrapped in `guard` (which decides who is calling).
async fn spawn_behind(guard: impl FnOnce(axum::Router) -> axum::Router) -> TestApp {
    let start = |ctx| guard(crate::start(ctx));
    TestApp(TestService::start(crate::NAME, "drink:8083", crate::MIGRATIONS, start).await)
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

    async fn raised_events(&self) -> Vec<Event> {
        self.raised::<Payload>().await
    }

    async fn raised_types(&self) -> Vec<&'static str> {
        self.raised_events().await.iter().map(|e| e.event_type()).collect()
    }

    /// Order `order_id` arrives: the id of the drink it is received as.
    async fn receive(&self, order_id: i64) -> Value {
        self.deliver(ordered(order_id)).await;
        self.drink_of(order_id).await["id"].clone()
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
        Payload::Ordered(Ordered {
            id: order_id,
            phone_number: "01012345678".into(),
            product_name: "latte".into(),
            qty: 2,
            amt: 9000,
            status: OrderStatus::Ordered,
            create_time: "2026-01-01T00:00:00.000Z".into(),
        }),
    )
}

fn order_canceled(order_id: i64) -> Event {
    Event::new(
        "order",
        Payload::OrderCanceled(OrderCanceled {
            id: order_id,
            phone_number: "01012345678".into(),
            product_name: "latte".into(),
            qty: 2,
            amt: 9000,
            status: OrderStatus::OrderCanceled,
        }),
    )
}

/// The drink change an event announces, if it is one.
fn drink_changed(event: &Event) -> &DrinkChanged {
    match &event.payload {
        Payload::Receipted(d) | Payload::Made(d) | Payload::DrinkCanceled(d) => d,
        other => panic!("not a drink change: {other:?}"),
    }
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

    let raised = app.raised_events().await;
    assert_eq!(raised.len(), 1);
    let Payload::OrderInfoReceived(info) = &raised[0].payload else { panic!("{:?}", raised[0]) };
    assert_eq!(
        info,
        &OrderInfoReceived {
            id: info.id,
            order_id: 7,
            phone_number: "01012345678".into(),
            product_name: "latte".into(),
            qty: 2,
            status: DrinkStatus::Received,
        }
    );

    let (status, queue) = app.call(Method::GET, "/orderinfos", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = queue["_embedded"]["orderinfos"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], info.id);
    assert_eq!(items[0]["_links"]["orderinfo"]["href"], format!("http://drink:8083/orderinfos/{}", info.id));

    let (status, one) = app.call(Method::GET, &format!("/orderinfos/{}", info.id), None).await;
    assert_eq!((status, one["status"].as_str()), (StatusCode::OK, Some("Received")));
}

#[tokio::test]
async fn a_barista_accepts_then_makes_a_drink() {
    let app = spawn_app().await;
    let id = app.receive(1).await;

    let (status, drink) = app.patch(&id, "Receipted").await;
    assert_eq!((status, drink["status"].as_str()), (StatusCode::OK, Some("Receipted")));
    let (status, _) = app.patch(&id, "Receipted").await;
    assert_eq!(status, StatusCode::OK);
    let (status, drink) = app.patch(&id, "Made").await;
    assert_eq!((status, drink["status"].as_str()), (StatusCode::OK, Some("Made")));
    assert_eq!(drink["_links"]["drink"]["href"], format!("http://drink:8083/drinks/{id}"));

    let raised = app.raised_events().await;
    let types: Vec<_> = raised.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["OrderInfoReceived", "Receipted", "Made"]);
    assert_eq!(
        drink_changed(&raised[2]),
        &DrinkChanged {
            id: id.as_i64().unwrap(),
            order_id: 1,
            phone_number: "01012345678".into(),
            status: DrinkStatus::Made
        }
    );

    let (_, queue) = app.call(Method::GET, "/orderinfos", None).await;
    assert_eq!(queue["page"]["totalElements"], 0);
}

#[tokio::test]
async fn illegal_and_unknown_changes_are_refused() {
    let app = spawn_app().await;
    let id = app.receive(2).await;
    app.patch(&id, "Made").await;

    let (status, problem) = app.patch(&id, "Receipted").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["detail"], "illegal status change from Made to Receipted");

    let (status, problem) = app.patch(&id, "Brewing").await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    let (status, problem) = app.patch(&json!(999), "Made").await;
    assert_eq!((status, problem["detail"].as_str()), (StatusCode::NOT_FOUND, Some("no drink 999")));
    assert_eq!(app.patch(&json!("x"), "Made").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.raised_types().await, ["OrderInfoReceived", "Made"]);
}

#[tokio::test]
async fn a_cancelled_order_cancels_its_drink_whatever_its_state_once() {
    let app = spawn_app().await;
    let id = app.receive(3).await;
    app.patch(&id, "Made").await;

    app.deliver(order_canceled(3)).await;
    app.deliver(order_canceled(3)).await;
    let raised = app.raised_events().await;
    let types: Vec<_> = raised.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["OrderInfoReceived", "Made", "DrinkCanceled"]);
    let canceled = drink_changed(&raised[2]);
    assert_eq!((canceled.id, canceled.order_id, canceled.status), (id.as_i64().unwrap(), 3, DrinkStatus::Canceled));

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

/// An unreadable event never reaches the policy now (the platform rejects it on decoding);
/// what reaches it and is not about orders changes nothing.
#[tokio::test]
async fn events_about_other_things_change_nothing() {
    let app = spawn_app().await;
    let payment = PaymentChanged {
        id: 1,
        order_id: 5,
        phone_number: "01012345678".into(),
        amt: 9000,
        status: PaymentStatus::Approved,
    };
    app.deliver(Event::new("payment", Payload::PaymentApproved(payment))).await;
    assert!(app.raised_events().await.is_empty());
    let (_, page) = app.call(Method::GET, "/drinks", None).await;
    assert_eq!(page["page"]["totalElements"], 0);
}

/// One trace per order: the drink's events, raised by the bus (one by one or in a batch)
/// or by a barista's request, continue the trace its `Ordered` came in.
#[tokio::test]
async fn a_drinks_events_continue_its_orders_trace() {
    let _spans = platform::trace::record_here();
    let app = spawn_app().await;
    let trace_of = |e: &Event| {
        let id = platform::trace::extract(&e.headers).span().span_context().trace_id();
        (e.order_id(), e.event_type(), (id != TraceId::INVALID).then_some(id))
    };
    // Each order placed in a trace of its own.
    let in_trace = |order_id: i64| tracing::info_span!("place").in_scope(|| ordered(order_id));
    let (first, second) = (in_trace(1), in_trace(2));
    let (one, batched) = (trace_of(&first).2, trace_of(&second).2);
    assert!(one.is_some() && batched.is_some() && one != batched);
    app.deliver(first).await;
    let batch = [second, ordered(3)];
    app.consume(&crate::events::OrderPolicy { ctx: app.ctx.clone() }, &batch).await;
    for order in [1, 2] {
        let id = app.drink_of(order).await["id"].clone();
        assert_eq!(app.patch(&id, "Receipted").await.0, StatusCode::OK);
    }

    let traces: Vec<_> = app.raised_events().await.iter().map(trace_of).collect();
    assert_eq!(traces[0], (1, "OrderInfoReceived", one));
    assert!(traces.contains(&(2, "OrderInfoReceived", batched)), "{traces:?}");
    // Raised in a batch without a trace of its own: a new trace, not another order's.
    let third = traces.iter().find(|t| t.0 == 3).unwrap();
    assert!(third.2.is_some() && third.2 != one && third.2 != batched, "{traces:?}");
    assert_eq!(&traces[traces.len() - 2..], [(1, "Receipted", one), (2, "Receipted", batched)]);
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
