//! Replicas share work (SPEC §5): the two drink replicas pull from one durable consumer, so
//! each `Ordered` event is handled by one of them, and both get a share.
//!
//! Which replica handled how many is read from each instance's own metrics,
//! `cafe_events_handled_total{type="Ordered"}`, which counts every event handed to it (a
//! redelivery too). One per order in total means none was handled twice.

use std::collections::HashSet;
use std::sync::Arc;

use contracts::ServiceName;
use reqwest::{Method, StatusCode};

use crate::common::{eventually, id, order_body, spawn, Mode, TestApp};

const ORDERS: u64 = 60;
const CLIENTS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_drink_replicas_share_the_orders_and_none_is_handled_twice() {
    let _alone = crate::one_at_a_time().await;
    let Some(app) = spawn(Mode::Distributed).await else { return };
    let app = Arc::new(app);

    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let app = app.clone();
        clients.spawn(async move {
            let mut placed = Vec::new();
            for n in 0..ORDERS / CLIENTS {
                let body = order_body(c * 1000 + n, "Flat White", 1, 4000);
                let r = app.try_request(Method::POST, "/orders", Some(&body)).await.expect("POST /orders");
                assert_eq!(r.status, StatusCode::CREATED, "POST /orders: {}", r.text);
                placed.push(id(&r.json));
            }
            placed
        });
    }
    let mut orders = Vec::new();
    while let Some(placed) = clients.join_next().await {
        orders.extend(placed.expect("a client"));
    }
    assert_eq!(orders.len() as u64, ORDERS);

    // Every order has exactly one drink.
    let app = &*app;
    eventually(app.deadline, async || {
        let drinks = app.try_all("drinks").await?;
        let of_orders: Vec<i64> = drinks.iter().filter_map(|d| d["orderId"].as_i64()).collect();
        let distinct: HashSet<i64> = of_orders.iter().copied().collect();
        if of_orders.len() != distinct.len() {
            return Err(format!("an order with two drinks: {drinks:?}"));
        }
        let missing: Vec<&i64> = orders.iter().filter(|o| !distinct.contains(o)).collect();
        if !missing.is_empty() {
            return Err(format!("no drink yet for {missing:?}"));
        }
        Ok(())
    })
    .await
    .expect("a drink for every order");

    // Each replica's share. The drinks exist, so both counts are final unless an event came
    // twice; a second look after the drinks were all there would show that.
    let (first, second) = (handled(app, 0).await, handled(app, 1).await);
    eprintln!("drink#0 handled {first} Ordered events, drink#1 {second}");
    assert_eq!(first + second, ORDERS, "one Ordered event per order, each handed to one replica once");
    assert!(first > 0 && second > 0, "both replicas take a share: drink#0 {first}, drink#1 {second}");
}

/// `cafe_events_handled_total{type="Ordered"}` of the drink instance in `slot`.
async fn handled(app: &TestApp, slot: u16) -> u64 {
    let inst = app.instance(ServiceName::Drink, slot).unwrap_or_else(|| panic!("drink#{slot} is not running"));
    let url = format!("http://127.0.0.1:{}/actuator/prometheus", inst.port);
    let res = app.client.get(&url).send().await.and_then(|r| r.error_for_status()).expect("metrics");
    let text = res.text().await.expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("cafe_events_handled_total{") && l.contains("type=\"Ordered\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
