//! Cancellation as a recorded intent, its interleavings driven by hand: delivery's ledger is
//! stood in for by a server told how to answer (record, record and lose the answer, refuse,
//! be down), the reconciler runs only when the test calls it, and a cancellation is made
//! stale by backdating its mark. No sleeps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use contracts::EventType;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{cancellation, payment, stand_in, unreconciled, TestApp};
use crate::Service;

/// How the stand-in delivery answers `POST /cancellations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ledger {
    /// Records the cancellation (once per order) and says so.
    Records,
    /// Records the cancellation, then never answers: the caller times out.
    LosesTheAnswer,
    /// Refuses: the order was already delivered. Records nothing.
    Refuses,
    /// Answers 503. Records nothing.
    Down,
}

/// Delivery's cancellation ledger, answering as it is told to.
struct Delivery {
    base: String,
    answers: Arc<Mutex<Ledger>>,
    /// The orders whose cancellation is recorded.
    recorded: Arc<Mutex<BTreeSet<i64>>>,
    /// Rings with the order id of each ask, once recorded (or not).
    asked: mpsc::UnboundedReceiver<i64>,
}

impl Delivery {
    async fn start(answers: Ledger) -> Delivery {
        let answers = Arc::new(Mutex::new(answers));
        let recorded = Arc::new(Mutex::new(BTreeSet::new()));
        let (ask, asked) = mpsc::unbounded_channel();
        let router = Router::new().route(
            "/cancellations",
            post({
                let (answers, recorded) = (answers.clone(), recorded.clone());
                move |Json(sent): Json<Value>| async move {
                    let order_id = sent["orderId"].as_i64().unwrap();
                    let how = *answers.lock().unwrap();
                    let created = match how {
                        Ledger::Records | Ledger::LosesTheAnswer => recorded.lock().unwrap().insert(order_id),
                        Ledger::Refuses | Ledger::Down => false,
                    };
                    ask.send(order_id).unwrap();
                    match how {
                        Ledger::Records if created => (StatusCode::CREATED, Json(cancellation(order_id))),
                        Ledger::Records => (StatusCode::OK, Json(cancellation(order_id))),
                        Ledger::LosesTheAnswer => std::future::pending().await,
                        Ledger::Refuses => (
                            StatusCode::CONFLICT,
                            Json(json!({"type": "https://cafe.example/problems/conflict", "title": "Conflict",
                                        "status": 409, "detail": format!("order {order_id} was already delivered")})),
                        ),
                        Ledger::Down => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"title": "Service Unavailable", "status": 503})),
                        ),
                    }
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Delivery { base, answers, recorded, asked }
    }

    /// From now on, answers `how`.
    fn answers(&self, how: Ledger) {
        *self.answers.lock().unwrap() = how;
    }

    /// Waits for the next ask to have reached the ledger, and returns its order id.
    async fn ask(&mut self) -> i64 {
        let asked = tokio::time::timeout(Duration::from_secs(10), self.asked.recv()).await;
        asked.expect("an ask within 10 s").expect("the stand-in is running")
    }

    fn recorded(&self) -> Vec<i64> {
        self.recorded.lock().unwrap().iter().copied().collect()
    }
}

/// The service, its reconciler not running, with order 1 placed and paid. Calls to delivery
/// time out as in the other tests, so an answer the ledger never sends is given up on.
async fn ordered(delivery: &Delivery) -> (TestApp, Arc<Service>) {
    let (payment_base, _) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let (app, svc) =
        unreconciled((&payment_base, Duration::from_secs(30)), (&delivery.base, Duration::from_secs(2))).await;
    assert_eq!(app.place().await.status, StatusCode::CREATED);
    (app, svc)
}

/// Makes order 1's cancellation look asked for long ago.
async fn backdate_the_ask(app: &TestApp) {
    let marked = sqlx::query("UPDATE orders SET cancel_asked = $1 WHERE id = 1 AND cancel_asked IS NOT NULL")
        .bind("2000-01-01T00:00:00.000Z")
        .execute(app.ctx.db().pool())
        .await
        .unwrap();
    assert_eq!(marked.rows_affected(), 1, "order 1 is cancelling");
}

async fn cancel(app: &TestApp) -> StatusCode {
    app.request(Method::DELETE, "/orders/1", None).await.status
}

/// Order 1 as a client sees it: its status, or `None` if it is gone.
async fn order_status(app: &TestApp) -> Option<Value> {
    let answer = app.get("/orders/1").await;
    (answer.status == StatusCode::OK).then(|| answer.body["status"].clone())
}

/// Order 1's cancellation asked for and recorded by delivery, whose answer was lost: 503.
async fn cancelled_with_the_answer_lost() -> (Delivery, TestApp, Arc<Service>) {
    let mut delivery = Delivery::start(Ledger::LosesTheAnswer).await;
    let (app, svc) = ordered(&delivery).await;
    assert_eq!(cancel(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(delivery.ask().await, 1);
    (delivery, app, svc)
}

#[tokio::test]
async fn a_recorded_cancellation_whose_answer_was_lost_is_finished_by_the_reconciler() {
    let (mut delivery, app, svc) = cancelled_with_the_answer_lost().await;
    assert_eq!(delivery.recorded(), [1], "delivery recorded it: no delivery will start");
    assert_eq!(order_status(&app).await, Some(json!("Ordered")), "still an order until settled");
    assert_eq!(app.raised_types().await, [EventType::Ordered]);
    assert_eq!(svc.reconcile_once().await.unwrap(), 1, "a fresh ask is left to its caller");

    backdate_the_ask(&app).await;
    delivery.answers(Ledger::Records);
    assert_eq!(svc.reconcile_once().await.unwrap(), 0, "settled");
    assert_eq!(delivery.ask().await, 1, "the reconciler asked again");
    assert_eq!(order_status(&app).await, None);
    assert_eq!(app.raised_types().await, [EventType::Ordered, EventType::OrderCanceled]);

    assert_eq!(svc.reconcile_once().await.unwrap(), 0);
    assert_eq!(app.raised_types().await, [EventType::Ordered, EventType::OrderCanceled], "raised once");
    assert_eq!(cancel(&app).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_cancellation_delivery_refuses_leaves_the_order_ordered_again() {
    let mut delivery = Delivery::start(Ledger::Refuses).await;
    let (app, svc) = ordered(&delivery).await;

    assert_eq!(cancel(&app).await, StatusCode::CONFLICT);
    assert_eq!(order_status(&app).await, Some(json!("Ordered")));
    assert_eq!(svc.reconcile_once().await.unwrap(), 0, "nothing left to settle");

    // Refused when the reconciler asks, after the customer's answer was lost.
    delivery.answers(Ledger::Down);
    assert_eq!(cancel(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    backdate_the_ask(&app).await;
    delivery.answers(Ledger::Refuses);
    assert_eq!(svc.reconcile_once().await.unwrap(), 0, "settled: ordered again");
    assert_eq!([delivery.ask().await, delivery.ask().await, delivery.ask().await], [1, 1, 1]);
    assert_eq!(order_status(&app).await, Some(json!("Ordered")));
    assert!(delivery.recorded().is_empty());
    assert_eq!(app.raised_types().await, [EventType::Ordered], "no OrderCanceled");
    assert_eq!(svc.reconcile_once().await.unwrap(), 0);
    assert!(delivery.asked.is_empty(), "an order ordered again is not asked about");
}

#[tokio::test]
async fn an_order_is_never_deleted_while_delivery_is_down_and_is_once_it_records() {
    let mut delivery = Delivery::start(Ledger::Down).await;
    let (app, svc) = ordered(&delivery).await;

    assert_eq!(cancel(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    backdate_the_ask(&app).await;
    assert_eq!(svc.reconcile_once().await.unwrap(), 1, "still down: the order stays cancelling");
    assert_eq!([delivery.ask().await, delivery.ask().await], [1, 1]);
    assert_eq!(order_status(&app).await, Some(json!("Ordered")));
    assert_eq!(app.raised_types().await, [EventType::Ordered]);

    delivery.answers(Ledger::Records);
    assert_eq!(svc.reconcile_once().await.unwrap(), 0);
    assert_eq!(delivery.recorded(), [1]);
    assert_eq!(order_status(&app).await, None);
    assert_eq!(app.raised_types().await, [EventType::Ordered, EventType::OrderCanceled]);
}

#[tokio::test]
async fn a_second_cancel_while_cancelling_asks_again_and_answers_as_delivery_does() {
    let (mut delivery, app, svc) = cancelled_with_the_answer_lost().await;
    delivery.answers(Ledger::Records);
    assert_eq!(cancel(&app).await, StatusCode::NO_CONTENT, "the customer's retry finishes it");
    assert_eq!(delivery.ask().await, 1);
    assert_eq!(delivery.recorded(), [1]);
    assert_eq!(order_status(&app).await, None);
    assert_eq!(app.raised_types().await, [EventType::Ordered, EventType::OrderCanceled]);
    assert_eq!(svc.reconcile_once().await.unwrap(), 0);
    assert_eq!(cancel(&app).await, StatusCode::NOT_FOUND);
    assert!(delivery.asked.is_empty(), "a cancelled order is not asked about again");
}
