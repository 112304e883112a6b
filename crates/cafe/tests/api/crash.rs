//! Crash safety (SPEC §5, §6): orders placed by many clients while baristas make drinks,
//! with the whole process killed (`kill -9`) at random moments and restarted on the same data.
//! Once settled, every order has exactly one approved payment, one drink, one delivery and
//! its two view rows, and every approved payment has its order.
//!
//! The cafe runs as the `cafe up` binary here, not in the test's process: what is killed is
//! a whole process, with whatever it had in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::common::{check_settled, eventually, id, make_queued_drinks, order_body, spawn_process_with, Rng, POLL};

const ORDERS: u64 = 300;
const CLIENTS: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_when_the_process_is_killed_under_load() {
    let app = Arc::new(spawn_process_with(&["--settle-after-ms", "1000", "--payment-delay-ms", "5-40"], &[]).await);
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
        eventually(Duration::from_secs(60), async || (placed.load(Ordering::SeqCst) >= target).then_some(()))
            .await
            .unwrap_or_else(|t| panic!("{target} orders placed before kill {k}: {t:?}"));
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
    eventually(Duration::from_secs(30), async || {
        make_queued_drinks(&app).await;
        check_settled(&app).await
    })
    .await
    .expect("every order settled with its payment, drink, delivery and views");

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
