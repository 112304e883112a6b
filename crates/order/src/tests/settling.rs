//! The reconciler against a placement slower than `settle_after`, the interleavings driven
//! by hand: payment holds its answer until the test lets it go, the reconciler runs only
//! when the test calls it, and an order is made stale by backdating it. No sleeps.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use contracts::EventType;
use platform::testing::Answer;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use super::{down, payment, unreconciled, Calls, TestApp};
use crate::domain::{NewOrder, OrderStatus, PhoneNumber};
use crate::{store, Service};

/// Payment approving every charge and voiding every void, each only once the test lets it
/// answer: the caller waits in between, as on a slow payment.
struct HeldPayment {
    base: String,
    calls: Calls,
    charges: Held,
    voids: Held,
}

/// The calls of one path that payment holds: `arrived` rings for each, and each answers once
/// it gets a permit from `release`.
struct Held {
    arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

impl Held {
    /// Waits for the next call to arrive and be held.
    async fn arrival(&mut self) {
        let arrived = tokio::time::timeout(Duration::from_secs(10), self.arrived.recv()).await;
        arrived.expect("a call within 10 s").expect("the stand-in is running");
    }

    /// Lets `n` held (or future) calls answer.
    fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

impl HeldPayment {
    async fn start() -> HeldPayment {
        let calls = Calls::default();
        let mut router = Router::new();
        let mut held = Vec::new();
        for (path, status, answer) in
            [("/payments", StatusCode::CREATED, "Approved"), ("/payments/voids", StatusCode::OK, "Canceled")]
        {
            let (arrival, arrived) = mpsc::unbounded_channel();
            let release = Arc::new(Semaphore::new(0));
            held.push(Held { arrived, release: release.clone() });
            let calls = calls.clone();
            router = router.route(
                path,
                post(move |Json(sent): Json<Value>| async move {
                    calls.lock().unwrap().push((path.to_string(), sent.clone()));
                    arrival.send(()).unwrap();
                    release.acquire().await.unwrap().forget();
                    (status, Json(payment(4, sent["orderId"].as_i64().unwrap(), answer)))
                }),
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let voids = held.pop().unwrap();
        let charges = held.pop().unwrap();
        HeldPayment { base, calls, charges, voids }
    }

    /// The voids payment was asked for, by order id.
    fn voided(&self) -> Vec<i64> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(path, _)| path == "/payments/voids")
            .map(|(_, b)| b["orderId"].as_i64().unwrap())
            .collect()
    }
}

/// The service with its reconciler not running: the test calls [`Service::reconcile_once`].
async fn driven(payment: &str) -> (Arc<TestApp>, Arc<Service>) {
    // Long enough that no call under test times out while the test holds it.
    let long = Duration::from_secs(30);
    let (app, svc) = unreconciled((payment, long), (&down().await, long)).await;
    (Arc::new(app), svc)
}

/// Makes an order look as old as one a crashed placement left long ago.
async fn backdate(app: &TestApp, id: i64) {
    sqlx::query("UPDATE orders SET create_time = $1 WHERE id = $2")
        .bind("2000-01-01T00:00:00.000Z")
        .bind(id)
        .execute(app.ctx.db().pool())
        .await
        .unwrap();
}

fn latte() -> NewOrder {
    NewOrder {
        phone_number: PhoneNumber::parse("01012345678").unwrap(),
        product_name: "Latte".into(),
        qty: 2,
        amt: 9000,
    }
}

/// How many orders the table holds, whatever their stage.
async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(app.ctx.db().pool()).await.unwrap()
}

#[tokio::test]
async fn an_order_claimed_for_voiding_cannot_be_confirmed() {
    let (app, _) = driven(&down().await).await;
    let order = store::insert_pending(&app.ctx, &latte()).await.unwrap();

    assert!(store::abandon(&app.ctx, order.id).await.unwrap(), "a pending order is claimed");
    assert_eq!(store::confirm(&app.ctx, order.id).await.unwrap(), None, "the late confirmation is refused");
    assert!(store::abandon(&app.ctx, order.id).await.unwrap(), "a claimed order stays claimed");
    assert_eq!(store::find(&app.ctx, order.id).await.unwrap(), None, "nobody sees it");
    assert!(app.raised().await.is_empty(), "no Ordered was raised");
}

#[tokio::test]
async fn a_confirmed_order_cannot_be_claimed() {
    let (app, _) = driven(&down().await).await;
    let order = store::insert_pending(&app.ctx, &latte()).await.unwrap();

    let confirmed = store::confirm(&app.ctx, order.id).await.unwrap().expect("a pending order is confirmed");
    assert_eq!(confirmed.status, OrderStatus::Ordered);
    assert!(!store::abandon(&app.ctx, order.id).await.unwrap(), "the claim finds nothing to claim");
    assert_eq!(store::find(&app.ctx, order.id).await.unwrap().map(|o| o.status), Some(OrderStatus::Ordered));
}

/// Order 1 placed and waiting on payment's answer to its charge, already older than
/// `settle_after`: what the reconciler and the placement then race over.
async fn placing_while_stale() -> (HeldPayment, Arc<TestApp>, Arc<Service>, tokio::task::JoinHandle<Answer>) {
    let mut payment = HeldPayment::start().await;
    let (app, svc) = driven(&payment.base).await;
    let placing = tokio::spawn({
        let app = app.clone();
        async move { app.place().await }
    });
    payment.charges.arrival().await;
    backdate(&app, 1).await;
    (payment, app, svc, placing)
}

#[tokio::test]
async fn a_placement_approved_while_the_reconciler_voids_it_answers_503_and_is_never_ordered() {
    let (mut payment, app, svc, placing) = placing_while_stale().await;
    // The placement waits on payment longer than `settle_after`: the reconciler claims the
    // order and asks payment to void it.
    let reconciling = tokio::spawn({
        let svc = svc.clone();
        async move { svc.reconcile_once().await.unwrap() }
    });
    payment.voids.arrival().await;
    assert_eq!(store::find(&app.ctx, 1).await.unwrap(), None);

    // Payment's approval arrives while the void is under way: too late to confirm.
    payment.charges.release(1);
    payment.voids.release(2);
    let answer = placing.await.unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["detail"], "payment is busy, please try again shortly; you have not been charged");
    assert_eq!(reconciling.await.unwrap(), 0, "settled");

    assert_eq!(stored(&app).await, 0, "no order with a voided payment");
    assert!(app.raised().await.is_empty(), "no Ordered was raised");
    assert!(payment.voided().iter().all(|&id| id == 1));
    assert_eq!(app.get("/orders/1").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_placement_confirmed_while_the_reconciler_looked_keeps_its_payment() {
    let (payment, app, svc, placing) = placing_while_stale().await;
    // The reconciler finds the order stale and pending...
    assert_eq!(store::unsettled(&app.ctx, &crate::time_ago(Duration::from_secs(600))).await.unwrap(), [1]);
    // ...but the approval arrives and the placement confirms before the reconciler claims it.
    payment.voids.release(100);
    payment.charges.release(1);
    let answer = placing.await.unwrap();
    assert_eq!((answer.status, &answer.body["status"]), (StatusCode::CREATED, &json!("Ordered")));

    assert!(svc.void(1).await, "nothing left to settle");
    assert!(payment.voided().is_empty(), "the payment of a confirmed order is not voided");
    assert_eq!(app.get("/orders/1").await.body["status"], "Ordered");
    assert_eq!(app.raised_types().await, [EventType::Ordered]);
    assert_eq!(svc.reconcile_once().await.unwrap(), 0);
    assert!(payment.voided().is_empty());
}

#[tokio::test]
async fn the_reconciler_finishes_a_claimed_order_whose_void_failed() {
    let (app, svc) = driven(&down().await).await;
    let order = store::insert_pending(&app.ctx, &latte()).await.unwrap();
    // Claimed, then the void could not reach payment: a fresh order, but claimed, is settled.
    assert!(!svc.void(order.id).await, "payment is down");
    assert_eq!(svc.reconcile_once().await.unwrap(), 1, "still claimed");
    assert_eq!(store::confirm(&app.ctx, order.id).await.unwrap(), None);

    let payment = HeldPayment::start().await;
    payment.voids.release(1);
    let (app, svc) = driven(&payment.base).await;
    let order = store::insert_pending(&app.ctx, &latte()).await.unwrap();
    assert!(store::abandon(&app.ctx, order.id).await.unwrap());
    assert_eq!(svc.reconcile_once().await.unwrap(), 0, "claimed orders are settled whatever their age");
    assert_eq!(payment.voided(), [order.id]);
    assert_eq!(stored(&app).await, 0);
}
