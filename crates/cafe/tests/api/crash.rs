//! Crash safety (SPEC §5, §6): orders placed by many clients while baristas make drinks,
//! with the whole process killed (`kill -9`) at random moments and restarted on the same data.
//! Once settled, every order has exactly one approved payment, one drink, one delivery and
//! its two view rows, and every approved payment has its order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, order_body, spawn_app_with, wait_until_ok, Rng, TestApp, POLL};

const ORDERS: u64 = 300;
const CLIENTS: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_when_the_process_is_killed_under_load() {
    let app = Arc::new(spawn_app_with(&["--settle-after-ms", "1000", "--payment-delay-ms", "5-40"]).await);
    let mut rng = Rng::seeded(0x5eed_cafe);
    let placed = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Every order a client was told was created (201): none may be lost.
    let created = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    // Nothing may run forever, whatever the binary does.
    let give_up = Instant::now() + Duration::from_secs(100);

    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (app, placed, attempts, created) = (app.clone(), placed.clone(), attempts.clone(), created.clone());
        clients.spawn(async move {
            let mut n = 0u64;
            while placed.load(Ordering::SeqCst) < ORDERS && Instant::now() < give_up {
                n += 1;
                attempts.fetch_add(1, Ordering::SeqCst);
                let body =
                    order_body(c * 10_000 + n, "Espresso", (n % 5 + 1) as i64, ((c * 997 + n * 31) % 20_000) as i64);
                match app.try_request(Method::POST, "/orders", Some(&body)).await {
                    Ok(r) if r.status == StatusCode::CREATED => {
                        created.lock().unwrap().push(id(&r.json));
                        placed.fetch_add(1, Ordering::SeqCst);
                    }
                    // Killed mid-request, restarting, or a fast 503: expected; try again soon.
                    _ => tokio::time::sleep(POLL).await,
                }
            }
        });
    }

    // The baristas: make every drink in the queue, ignoring errors while the process is down.
    let barista = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut made = 0u64;
            while !done.load(Ordering::SeqCst) && Instant::now() < give_up {
                made += make_queued_drinks(&app).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            made
        })
    };

    // Kill at random moments: after a random number of further successful orders.
    let kills = rng.between(3, 4);
    let mut next_at = 0;
    for k in 0..kills {
        next_at += rng.between(30, ORDERS / (kills + 1));
        let target = next_at;
        crate::helpers::wait_until(&format!("{target} orders placed before kill {k}"), Duration::from_secs(60), || {
            let placed = placed.clone();
            async move { (placed.load(Ordering::SeqCst) >= target).then_some(()) }
        })
        .await;
        app.crash_and_restart().await;
        eprintln!("kill {} of {kills} after {} orders; restarted", k + 1, placed.load(Ordering::SeqCst));
    }

    while clients.join_next().await.is_some() {}
    done.store(true, Ordering::SeqCst);
    let made = barista.await.unwrap();
    eprintln!(
        "{} orders placed in {} attempts; baristas made {made} drinks while it ran",
        placed.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst)
    );
    assert!(placed.load(Ordering::SeqCst) >= ORDERS, "the clients could not place {ORDERS} orders in time");

    // Settle: make whatever is still queued, until everything agrees.
    {
        let app = &*app;
        wait_until_ok(
            "every order settled with its payment, drink, delivery and views",
            Duration::from_secs(30),
            || async move {
                make_queued_drinks(app).await;
                check_settled(app).await
            },
        )
        .await;
    }

    // The search endpoints agree with the collections, for every order.
    let orders = app.all("orders").await;
    let payments = app.all("payments").await;
    let voided = payments.iter().filter(|p| p["status"] == "Canceled").count();
    let phantom = app.all("mypages").await.len().saturating_sub(orders.len());
    eprintln!(
        "{} orders, {voided} placements voided by the kills, {phantom} my page rows of voided placements",
        orders.len()
    );
    let listed: std::collections::HashSet<i64> = orders.iter().map(id).collect();
    let lost: Vec<i64> = created.lock().unwrap().iter().copied().filter(|o| !listed.contains(o)).collect();
    assert!(lost.is_empty(), "orders answered 201 but gone after the crashes: {lost:?}");
    let mut checks = tokio::task::JoinSet::new();
    for chunk in orders.chunks(orders.len().div_ceil(4)) {
        let ids: Vec<i64> = chunk.iter().map(id).collect();
        let app = app.clone();
        checks.spawn(async move {
            for order_id in ids {
                let payments = app.find_by_order_id("payments", order_id).await;
                assert_eq!(payments.len(), 1, "order {order_id}: payments {payments:?}");
                assert_eq!(payments[0]["status"], "Approved", "order {order_id}");
                let deliveries = app.find_by_order_id("deliveries", order_id).await;
                assert_eq!(deliveries.len(), 1, "order {order_id}: deliveries {deliveries:?}");
                let page = app.find_one("deliverypages", order_id).await.expect("a delivery page row");
                assert_eq!(page["deliveryId"], deliveries[0]["id"], "order {order_id}");
                let mine = app.find_one("mypages", order_id).await.expect("a my page row");
                assert_eq!(mine["deliveryId"], deliveries[0]["id"], "order {order_id}");
                assert_eq!(mine["paymentId"], payments[0]["id"], "order {order_id}");
            }
        });
    }
    while let Some(r) = checks.join_next().await {
        r.unwrap();
    }
}

/// PATCHes every queued drink to Made; returns how many it made. Errors are ignored: the
/// process may be down.
async fn make_queued_drinks(app: &TestApp) -> u64 {
    let Ok(queue) = app.try_all("orderinfos").await else { return 0 };
    let mut made = 0;
    for drink in queue {
        let Some(drink_id) = drink["id"].as_i64() else { continue };
        let body = json!({"status": "Made"});
        if let Ok(r) = app.try_request(Method::PATCH, &format!("/drinks/{drink_id}"), Some(&body)).await {
            if r.status == StatusCode::OK {
                made += 1;
            }
        }
    }
    made
}

fn by_order(rows: &[Value]) -> HashMap<i64, Vec<&Value>> {
    let mut m: HashMap<i64, Vec<&Value>> = HashMap::new();
    for r in rows {
        m.entry(r["orderId"].as_i64().unwrap_or(-1)).or_default().push(r);
    }
    m
}

/// `Ok` once everything agrees; otherwise why not (yet).
async fn check_settled(app: &TestApp) -> Result<(), String> {
    let orders = app.try_all("orders").await?;
    let payments = app.try_all("payments").await?;
    let drinks = app.try_all("drinks").await?;
    let deliveries = app.try_all("deliveries").await?;
    let pages = app.try_all("deliverypages").await?;
    let mypages = app.try_all("mypages").await?;
    let (payments_of, drinks_of, deliveries_of, pages_of, mine_of) =
        (by_order(&payments), by_order(&drinks), by_order(&deliveries), by_order(&pages), by_order(&mypages));
    let none = Vec::new();

    for o in &orders {
        let oid = id(o);
        if o["status"] != "Ordered" {
            return Err(format!("order {oid} listed with status {}", o["status"]));
        }
        let ps = payments_of.get(&oid).unwrap_or(&none);
        if ps.len() != 1 || ps[0]["status"] != "Approved" {
            return Err(format!("order {oid}: payments {ps:?}"));
        }
        if ps[0]["amt"] != o["amt"] {
            return Err(format!("order {oid}: paid {} for {}", ps[0]["amt"], o["amt"]));
        }
        let ds = drinks_of.get(&oid).unwrap_or(&none);
        if ds.len() != 1 || ds[0]["status"] != "Made" {
            return Err(format!("order {oid}: drinks {ds:?}"));
        }
        let ls = deliveries_of.get(&oid).unwrap_or(&none);
        if ls.len() > 1 {
            return Err(format!("order {oid}: {} deliveries {ls:?}", ls.len()));
        }
        let Some(delivery) = ls.first() else { return Err(format!("order {oid}: no delivery yet")) };
        if delivery["status"] != "Delivery Started" {
            return Err(format!("order {oid}: delivery {delivery}"));
        }
        let page = pages_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no delivery page row"))?;
        if page["status"] != "Delivery Started" || page["deliveryId"] != delivery["id"] || page["amt"] != o["amt"] {
            return Err(format!("order {oid}: delivery page {page} vs delivery {delivery}"));
        }
        let mine = mine_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no my page row"))?;
        if mine["status"] != "Delivery Started"
            || mine["deliveryId"] != delivery["id"]
            || mine["paymentId"] != ps[0]["id"]
            || mine["drinkId"] != ds[0]["id"]
        {
            return Err(format!("order {oid}: my page {mine}"));
        }
    }

    let order_ids: std::collections::HashSet<i64> = orders.iter().map(id).collect();
    for p in &payments {
        if p["status"] == "Approved" && !order_ids.contains(&p["orderId"].as_i64().unwrap_or(-1)) {
            return Err(format!("approved payment without its order: {p}"));
        }
    }
    for (what, rows) in [("drink", &drinks), ("delivery", &deliveries), ("delivery page", &pages)] {
        if let Some(r) = rows.iter().find(|r| !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))) {
            return Err(format!("{what} without its order: {r}"));
        }
    }
    if pages.len() != orders.len() {
        return Err(format!("{} delivery page rows for {} orders", pages.len(), orders.len()));
    }
    // My page hears of payments too, so a placement voided by a kill may show there, but
    // only as what it is: a cancelled payment with no drink and no delivery.
    for r in &mypages {
        if !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))
            && (r["status"] != "Payment Canceled" || !r["drinkId"].is_null() || !r["deliveryId"].is_null())
        {
            return Err(format!("my page row without its order: {r}"));
        }
    }
    Ok(())
}
