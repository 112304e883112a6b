//! Crash safety (SPEC §5, §6): orders placed by many clients while baristas make drinks,
//! with the whole process killed (`kill -9`) at random moments and restarted on the same data.
//! Once settled, every order has exactly one approved payment, one drink, one delivery and
//! its two view rows, and every approved payment has its order.
//!
//! The cafe runs as the `cafe up` binary here, not in the test's process: what is killed is
//! a whole process, with whatever it had in flight.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{check_settled, eventually, id, make_queued_drinks, spawn_process_with, Load, Rng, POLL};

const ORDERS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_when_the_process_is_killed_under_load() {
    let app = Arc::new(spawn_process_with(&["--settle-after-ms", "1000", "--payment-delay-ms", "5-40"], &[]).await);
    let mut rng = Rng::seeded(0x5eed_cafe);
    let load = Load {
        clients: 16,
        orders: ORDERS,
        give_up: Duration::from_secs(100),
        retry: POLL,
        barista_pause: Duration::from_millis(50),
        think_ms: 0,
        cancel_one_in: 0,
    }
    .start(&app, &mut rng);

    // Kill at random moments: after a random number of further successful orders.
    let kills = rng.between(3, 4);
    let mut next_at = 0;
    for k in 0..kills {
        next_at += rng.between(30, ORDERS / (kills + 1));
        load.until_placed(next_at, Duration::from_secs(60), format!("kill {k}")).await;
        app.crash_and_restart().await;
        eprintln!("kill {} of {kills} after {} orders; restarted", k + 1, load.placed());
    }
    let placed = load.finish().await;
    eprintln!("{placed}");

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
    let lost = placed.lost(&orders);
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
