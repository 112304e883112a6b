//! Resilience of the synchronous calls (SPEC §6, demonstration 4), through the whole cafe
//! built as `cafe up` builds it: a slow, dead or crashed neighbour never takes placing or
//! cancelling down, the client always gets an answer (201/204, or a fast 503 with `Retry-After`), and once settled
//! no money is left behind: every listed order has exactly one `Approved` payment and every
//! `Approved` payment has its listed order.
//!
//! The breaker's state machine itself is tested beside it (`platform::breaker`); here it is
//! driven end to end, with small settings so each test is quick and deterministic. Nothing
//! sleeps for a fixed time: every wait is a poll with a deadline.
//!
//! The cafe runs in the test's process, except where the process itself crashes at a
//! failpoint: that test runs the `cafe up` binary.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use contracts::ServiceName;
use reqwest::StatusCode;
use serde_json::Value;

use common::{eventually, id, order_body, spawn_app_with, spawn_process_with, Reply, TestApp, DEADLINE};

/// Once the circuit is open a placement must fail at once: under this.
const FAST: Duration = Duration::from_millis(100);

// ---- shared checks ----------------------------------------------------------------------

/// A 503 problem+json with a numeric `Retry-After` of at least a second; returns it.
#[track_caller]
fn expect_busy(r: &Reply, what: &str) -> u64 {
    r.expect_problem(503, what);
    let retry = r
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{what}: 503 without a numeric Retry-After: {:?}", r.headers));
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    retry
}

/// Places an order and times the round trip.
async fn timed_post_order(app: &TestApp, n: u64) -> (Reply, Duration) {
    let started = Instant::now();
    let r = app.post_order(&order_body(n, "Americano", 1, 4500)).await;
    (r, started.elapsed())
}

/// `components.<name>.details` of the order service's health: `{state, calls, failures}`.
async fn circuit(app: &TestApp, name: &str) -> Value {
    let url = format!("{}/actuator/health", app.service_url(ServiceName::Order));
    let r = app.client.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let health: Value = r.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
    let details = health["components"][name]["details"].clone();
    assert!(details["state"].is_string(), "no {name} in the order service's health: {health}");
    details
}

/// Every item of a collection behind `gateway`, all pages of 1000.
async fn all_at(client: &reqwest::Client, gateway: &str, collection: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut page = 0;
    loop {
        let url = format!("{gateway}/{collection}?size=1000&page={page}");
        let r = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if r.status() != StatusCode::OK {
            return Err(format!("GET {url}: {}", r.status()));
        }
        let v: Value = r.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        out.extend(common::items(&v));
        page += 1;
        if page >= v["page"]["totalPages"].as_i64().unwrap_or(0) {
            return Ok(out);
        }
    }
}

/// Orders and payments as listed now, or why they cannot be read.
struct Books {
    orders: Vec<Value>,
    payments: Vec<Value>,
}

impl Books {
    async fn read(client: &reqwest::Client, gateway: &str) -> Result<Books, String> {
        Ok(Books {
            orders: all_at(client, gateway, "orders").await?,
            payments: all_at(client, gateway, "payments").await?,
        })
    }

    /// The rule of SPEC §6: every order has exactly one payment, `Approved` and of its amount;
    /// every `Approved` payment has its order.
    fn consistent(&self) -> Result<(), String> {
        let mut payments_of: HashMap<i64, Vec<&Value>> = HashMap::new();
        for p in &self.payments {
            payments_of.entry(p["orderId"].as_i64().unwrap_or(-1)).or_default().push(p);
        }
        for o in &self.orders {
            let oid = id(o);
            match payments_of.get(&oid).map(Vec::as_slice) {
                Some([p]) if p["status"] == "Approved" && p["amt"] == o["amt"] => {}
                other => return Err(format!("order {oid} ({}) has payments {other:?}", o["amt"])),
            }
        }
        let ordered: HashSet<i64> = self.orders.iter().map(id).collect();
        if let Some(p) = self
            .payments
            .iter()
            .find(|p| p["status"] == "Approved" && !ordered.contains(&p["orderId"].as_i64().unwrap_or(-1)))
        {
            return Err(format!("an approved payment without its order: {p}"));
        }
        Ok(())
    }

    fn approved(&self) -> usize {
        self.payments.iter().filter(|p| p["status"] == "Approved").count()
    }
}

async fn books(app: &TestApp) -> Result<Books, String> {
    Books::read(&app.client, &app.gateway()).await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// ---- payment down: the circuit opens, fails fast, and closes again -----------------------

/// Payment killed: placing answers 503 + `Retry-After` + problem+json, within 100 ms once
/// the circuit is open, and no order appears; payment back: orders succeed again within the
/// open period plus one trial call.
///
/// Fast means: of 20 placements while the circuit is open, the median and at least 16 take
/// under 100 ms (a single one may be held up by a busy shared machine), and none takes as
/// long as the call timeout.
#[tokio::test]
async fn while_payment_is_down_placing_fails_fast_with_503_and_resumes_once_it_is_back() {
    const OPEN_MS: u64 = 2000;
    const MIN_CALLS: u64 = 5;
    let app = spawn_app_with(&["--breaker-min-calls", "5", "--breaker-open-ms", "2000"]).await;
    let first = app.place_order().await;
    assert_eq!(circuit(&app, "paymentCircuit").await["state"], "CLOSED");

    app.stop_service(ServiceName::Payment).await;
    // Refused connections are failures; the circuit opens once it has seen MIN_CALLS calls.
    let mut n = 100;
    loop {
        n += 1;
        let (r, _) = timed_post_order(&app, n).await;
        expect_busy(&r, "POST /orders while payment is down");
        let state = circuit(&app, "paymentCircuit").await;
        if state["state"] != "CLOSED" {
            break;
        }
        assert!(n - 100 < MIN_CALLS, "the circuit is still closed after {} failed placements: {state}", n - 100);
    }

    let before = circuit(&app, "paymentCircuit").await;
    let burst_started = Instant::now();
    let mut took = Vec::new();
    for _ in 0..20 {
        n += 1;
        let (r, t) = timed_post_order(&app, n).await;
        let retry = expect_busy(&r, "POST /orders behind an open circuit");
        assert!(retry <= OPEN_MS.div_ceil(1000), "Retry-After {retry}s beyond the open period");
        took.push(t);
    }
    let burst = burst_started.elapsed();
    let fast = took.iter().filter(|t| **t < FAST).count();
    let slowest = took.iter().max().copied().unwrap_or_default();
    assert!(
        median(took.clone()) < FAST && fast >= 16 && slowest < Duration::from_millis(610),
        "503s behind an open circuit are not fast: {took:?}"
    );
    // Nothing reached payment meanwhile, but at most one trial per open period.
    let after = circuit(&app, "paymentCircuit").await;
    let trials = burst.as_millis() as u64 / OPEN_MS + 1;
    assert!(
        after["calls"].as_u64().unwrap_or(u64::MAX) <= before["calls"].as_u64().unwrap_or(0) + trials,
        "calls went out behind an open circuit: before {before}, after {after}, burst {burst:?}"
    );

    // No order appeared (payment's own list is down with it: its rows are checked below).
    let orders = all_at(&app.client, &app.gateway(), "orders").await.expect("orders");
    assert_eq!(orders.iter().map(id).collect::<Vec<_>>(), vec![id(&first)], "orders while payment was down");

    app.start_service(ServiceName::Payment).await;
    let back = Instant::now();
    // The circuit was (re)opened at most OPEN_MS ago: the first trial after that succeeds.
    let placed = eventually(Duration::from_millis(OPEN_MS) + DEADLINE, async || {
        n += 1;
        let (r, _) = timed_post_order(&app, n).await;
        if r.status == StatusCode::CREATED {
            return Some(r.json);
        }
        expect_busy(&r, "POST /orders while the circuit waits for its trial");
        None
    })
    .await
    .expect("an order placed after payment came back");
    let recovered = back.elapsed();
    assert!(
        recovered < Duration::from_millis(OPEN_MS) + Duration::from_secs(5),
        "orders resumed only {recovered:?} after payment came back (open period {OPEN_MS} ms)"
    );
    assert_eq!(circuit(&app, "paymentCircuit").await["state"], "CLOSED");
    let mut ids = vec![id(&first), id(&placed)];
    for _ in 0..3 {
        n += 1;
        ids.push(id(&app.place_order_with(&order_body(n, "Latte", 1, 4500)).await));
    }

    let b = books(&app).await.expect("orders and payments");
    b.consistent().unwrap_or_else(|e| panic!("{e}"));
    let mut listed: Vec<i64> = b.orders.iter().map(id).collect();
    listed.sort();
    assert_eq!(listed, ids, "exactly the orders answered 201 are listed");
    assert_eq!(b.payments.len(), ids.len(), "one payment per order, none for refused placements: {:?}", b.payments);
}

// ---- payment slower than the timeout -------------------------------------------------------

/// Waits until no placement is still in flight at payment (a late charge would have landed
/// by `quiet_after`) and the books are consistent, then checks they stay so.
async fn settle(app: &TestApp, quiet_after: Instant, settled: impl Fn(&Books) -> Result<(), String>) -> Books {
    eventually(Duration::from_secs(30), async || {
        let b = books(app).await?;
        b.consistent()?;
        settled(&b)?;
        if Instant::now() < quiet_after {
            return Err("a late payment could still land".to_string());
        }
        Ok(())
    })
    .await
    .expect("the books to settle");
    let b = books(app).await.expect("orders and payments");
    b.consistent().unwrap_or_else(|e| panic!("after settling: {e}"));
    b
}

/// Payment answers after 900–1000 ms, order gives up after 300 ms (and once more on retry):
/// 503, and once settled, no payment without an order and no order without a payment: each
/// attempt's payment is voided (a `Canceled` row), and a late charge is refused.
#[tokio::test]
async fn payment_slower_than_the_timeout_answers_503_and_leaves_no_payment_without_an_order() {
    let app =
        spawn_app_with(&["--payment-delay-ms", "900-1000", "--call-timeout-ms", "300", "--settle-after-ms", "1000"])
            .await;
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        timed_post_order(&app, 1),
        timed_post_order(&app, 2),
        timed_post_order(&app, 3),
        timed_post_order(&app, 4)
    );
    for (r, took) in [a, b, c, d] {
        expect_busy(&r, "POST /orders with payment slower than the timeout");
        assert!(took >= Duration::from_millis(300), "a 503 before the call timed out: {took:?}");
        assert!(took < Duration::from_secs(5), "the timeout did not bound the wait: {took:?}");
    }
    // Two attempts of 300 ms, then the charge would take at most 1000 ms more.
    let quiet_after = started + Duration::from_millis(2 * 300 + 1000 + 1000);
    let b = settle(&app, quiet_after, |b| {
        if b.payments.len() < 4 || b.payments.iter().any(|p| p["status"] != "Canceled") {
            return Err(format!("not every attempt voided yet: {:?}", b.payments));
        }
        Ok(())
    })
    .await;
    assert!(b.orders.is_empty(), "orders without payment: {:?}", b.orders);
    assert_eq!(b.approved(), 0, "approved payments without an order: {:?}", b.payments);
    let mut paid_for: Vec<i64> = b.payments.iter().map(|p| p["orderId"].as_i64().unwrap_or(-1)).collect();
    paid_for.sort();
    paid_for.dedup();
    assert_eq!(paid_for.len(), 4, "one voided payment per attempt: {:?}", b.payments);
}

/// Timeouts open the circuit in the middle of the placements: the voids of the orders in
/// flight are refused by the open circuit too, so those pending orders are left to the
/// reconciler, which voids them once the circuit lets a call through. Placing behind the
/// open circuit answers at once.
#[tokio::test]
async fn pending_orders_left_by_an_open_circuit_are_voided_by_the_reconciler() {
    let app = spawn_app_with(&[
        "--payment-delay-ms",
        "900-1000",
        "--call-timeout-ms",
        "300",
        "--settle-after-ms",
        "1000",
        "--breaker-min-calls",
        "4",
        "--breaker-open-ms",
        "1000",
    ])
    .await;
    let started = Instant::now();
    let (a, b) = tokio::join!(timed_post_order(&app, 1), timed_post_order(&app, 2));
    for (r, _) in [a, b] {
        expect_busy(&r, "POST /orders with payment slower than the timeout");
    }
    // Four timed-out calls opened it (it may already be half-open on a slow machine).
    let state = circuit(&app, "paymentCircuit").await;
    assert_ne!(state["state"], "CLOSED", "four timeouts in four calls did not open the circuit: {state}");
    let (r, _) = timed_post_order(&app, 3).await;
    expect_busy(&r, "POST /orders behind an open circuit");

    let quiet_after = started + Duration::from_millis(2 * 300 + 1000 + 1000);
    let b = settle(&app, quiet_after, |b| {
        let voided: HashSet<i64> =
            b.payments.iter().filter(|p| p["status"] == "Canceled").filter_map(|p| p["orderId"].as_i64()).collect();
        // The two slow placements reached payment; whatever they left is voided.
        if voided.len() < 2 {
            return Err(format!("the slow placements are not voided yet: {:?}", b.payments));
        }
        Ok(())
    })
    .await;
    assert!(b.orders.is_empty(), "orders without payment: {:?}", b.orders);
    assert_eq!(b.approved(), 0, "approved payments without an order: {:?}", b.payments);
    // The circuit is not left open: once its sleep window passes it lets a trial through
    // (or a reconciler's void already was that trial and closed it).
    eventually(DEADLINE, async || (circuit(&app, "paymentCircuit").await["state"] != "OPEN").then_some(()))
        .await
        .expect("the payment circuit to leave OPEN");
}

/// A client that hangs up while its placement is the circuit's half-open trial must not
/// leave the circuit waiting for that trial forever: once payment answers, orders resume.
#[tokio::test]
async fn a_client_hanging_up_during_the_trial_call_does_not_wedge_the_circuit() {
    let app = spawn_app_with(&[
        "--payment-delay-ms",
        "1500-1500",
        "--call-timeout-ms",
        "5000",
        "--settle-after-ms",
        "1000",
        "--breaker-min-calls",
        "2",
        "--breaker-open-ms",
        "1000",
    ])
    .await;
    app.stop_service(ServiceName::Payment).await;
    let mut n = 0;
    while circuit(&app, "paymentCircuit").await["state"] == "CLOSED" {
        n += 1;
        assert!(n <= 2, "two refused calls did not open the circuit");
        expect_busy(&timed_post_order(&app, n).await.0, "POST /orders while payment is down");
    }
    app.start_service(ServiceName::Payment).await;
    eventually(DEADLINE, async || (circuit(&app, "paymentCircuit").await["state"] == "HALF_OPEN").then_some(()))
        .await
        .expect("the circuit to allow a trial");

    // The trial: payment takes 1.5 s, this client leaves after 300 ms.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("http client");
    let gone = impatient.post(app.url("/orders")).json(&order_body(10, "Mocha", 1, 4500)).send().await;
    assert!(gone.is_err(), "the trial answered within 300 ms although payment takes 1.5 s: {gone:?}");

    let placed = eventually(Duration::from_secs(20), async || {
        n += 1;
        let (r, _) = timed_post_order(&app, 100 + n).await;
        if r.status == StatusCode::CREATED {
            return Ok(r.json);
        }
        expect_busy(&r, "POST /orders after the abandoned trial");
        Err(format!("circuit {}", circuit(&app, "paymentCircuit").await))
    })
    .await
    .expect("orders to resume after a client hung up during the trial");
    let b = settle(&app, Instant::now(), |b| {
        b.orders
            .iter()
            .any(|o| id(o) == id(&placed))
            .then_some(())
            .ok_or_else(|| "the placed order is not listed".into())
    })
    .await;
    assert!(b.approved() >= 1);
}

// ---- a crash between payment and the order's commit -------------------------------------

/// The process dies (as `kill -9` would) after payment approved and before the order was
/// confirmed. After a restart and settling, the approved payment is voided and there is no
/// order: neither money without an order nor an order without money. New orders work.
#[tokio::test]
async fn a_crash_between_payment_and_the_orders_commit_leaves_nothing_half_made() {
    let app = spawn_process_with(&["--failpoint", "order-after-payment"], &[]).await;
    let client = &app.client;
    let body = order_body(1, "Flat White", 1, 4500);
    let url = app.url("/orders");
    let (a, b, c) = tokio::join!(
        client.post(&url).json(&body).send(),
        client.post(&url).json(&body).send(),
        client.post(&url).json(&body).send()
    );
    // The process dies under them: no answer, or at least no 201.
    for r in [a, b, c].into_iter().flatten() {
        assert_ne!(r.status(), StatusCode::CREATED, "an order was confirmed past the failpoint");
    }
    let status = app.wait_for_exit(DEADLINE).await;
    assert!(!status.success(), "the process exited cleanly: {status}");

    app.restart_with(&["--settle-after-ms", "1000"]).await;
    eventually(Duration::from_secs(30), async || {
        let b = books(&app).await?;
        b.consistent()?;
        if !b.orders.is_empty() {
            return Err(format!("orders after the crash: {:?}", b.orders));
        }
        // The payment approved before the crash is there, voided.
        if !b.payments.iter().any(|p| p["amt"] == 4500 && p["status"] == "Canceled") {
            return Err(format!("the approved payment is not voided yet: {:?}", b.payments));
        }
        Ok(())
    })
    .await
    .expect("the crash to be settled");
    let b = books(&app).await.expect("orders and payments");
    assert_eq!(b.approved(), 0, "approved payments without an order: {:?}", b.payments);

    let r = client.post(app.url("/orders")).json(&order_body(2, "Latte", 1, 5000)).send().await;
    let r = r.expect("POST /orders after the restart");
    assert_eq!(r.status(), StatusCode::CREATED, "POST /orders after the restart");
    let b = books(&app).await.expect("orders and payments");
    b.consistent().unwrap_or_else(|e| panic!("after a new order: {e}"));
    assert_eq!(b.orders.len(), 1);
}

// ---- demonstration 4: delivery down while cancelling ------------------------------------

/// Delivery down: cancelling answers 503 (fast once the delivery circuit is open) and the
/// order, its drink, delivery and page stay as they were; delivery back: the customer's retry
/// cancels and the whole chain runs: the ledger, the delivery and its page `Delivery
/// Cancelled`, the order gone, `DrinkCanceled`, then `PaymentCanceled` of the one payment.
/// The reconciler, which would also finish the cancellation, is kept out of the way (a long
/// `settle_after`; order's own tests drive it), so the retry is what settles it here.
#[tokio::test]
async fn cancelling_while_delivery_is_down_keeps_the_order_and_compensates_once_it_is_back() {
    let app =
        spawn_app_with(&["--breaker-min-calls", "3", "--breaker-open-ms", "1000", "--settle-after-ms", "600000"]).await;
    let (order, drink, delivery) = app.order_made_and_started().await;
    let order_id = id(&order);
    let payment = app.find_one("payments", order_id).await.expect("the order's payment");
    assert_eq!(payment["status"], "Approved");
    let before = app.get_json(&format!("/orders/{order_id}")).await;

    app.stop_service(ServiceName::Delivery).await;
    for attempt in 1..=4 {
        let r = app.cancel_order(order_id).await;
        expect_busy(&r, &format!("DELETE /orders/{order_id} while delivery is down (attempt {attempt})"));
        assert_eq!(app.get_json(&format!("/orders/{order_id}")).await, before, "the order changed");
    }
    let state = circuit(&app, "deliveryCircuit").await;
    assert_ne!(state["state"], "CLOSED", "three failed calls did not open the delivery circuit: {state}");
    assert_eq!(app.get_json(&format!("/drinks/{}", id(&drink))).await["status"], "Made");
    let page = app.find_one("deliverypages", order_id).await.expect("a delivery page row");
    assert_eq!(page["status"], "Delivery Started", "the page moved on a refused cancellation: {page}");
    assert_eq!(app.get_json(&format!("/payments/{}", id(&payment))).await["status"], "Approved");

    app.start_service(ServiceName::Delivery).await;
    assert!(
        app.find_by_order_id("cancellations", order_id).await.is_empty(),
        "a cancellation delivery never received was recorded in the ledger"
    );
    assert_eq!(app.get_json(&format!("/deliveries/{}", id(&delivery))).await["status"], "Delivery Started");
    // The circuit lets a trial through within its open period.
    let r = eventually(DEADLINE, async || {
        let r = app.cancel_order(order_id).await;
        (r.status != StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await
    .expect("DELETE to stop answering 503");
    r.expect(204, "DELETE once delivery is back");

    let ledger = app.wait_for_status("cancellations", order_id, "Delivery Cancelled").await;
    assert_eq!(ledger["orderId"].as_i64(), Some(order_id));
    assert_eq!(app.find_by_order_id("cancellations", order_id).await.len(), 1, "one ledger entry");
    app.wait_for_status("deliverypages", order_id, "Delivery Cancelled").await;
    assert_eq!(app.get_json(&format!("/deliveries/{}", id(&delivery))).await["status"], "Delivery Cancelled");
    app.get(&format!("/orders/{order_id}")).await.expect_problem(404, "GET the cancelled order");
    // Compensation: OrderCanceled → DrinkCanceled → PaymentCanceled.
    app.wait_for_compensation(order_id, id(&drink), id(&payment)).await;
    assert_eq!(circuit(&app, "deliveryCircuit").await["state"], "CLOSED");
    books(&app).await.expect("orders and payments").consistent().unwrap_or_else(|e| panic!("{e}"));
}
