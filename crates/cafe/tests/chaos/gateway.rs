//! The gateway over replicas (SPEC §7): a dead instance costs no failed request while another
//! is ready. Clients keep reading payments and drinks and placing orders (which order pays
//! through payment's instances) while one replica after another is killed with `kill -9`;
//! the cluster starts each again, and the next is killed only once the last is back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use contracts::ServiceName;
use reqwest::Method;
use serde_json::Value;

use crate::common::{eventually, id, order_body, spawn_with, Mode, TestApp};

const CLIENTS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_replica_at_a_time_fails_no_request_at_the_gateway() {
    let _alone = crate::one_at_a_time().await;
    // What is tested is the failover, not the call timeout: a generous one keeps a machine
    // busy with other work from failing a placement that merely ran slow.
    let env = [("CAFE_CALL_TIMEOUT_MS", "3000")];
    let Some(app) = spawn_with(Mode::Distributed, &[], &env).await else { return };
    let app = Arc::new(app);
    let first = app.place_order().await;
    let first_id = id(&first);
    let drink = app.drink_for(first_id).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (app, stop, sent, failures) = (app.clone(), stop.clone(), sent.clone(), failures.clone());
        let paths = [
            "/payments?size=5".to_string(),
            format!("/payments/search/findByOrderId?orderId={first_id}"),
            format!("/drinks/{}", id(&drink)),
            "/orderinfos?size=5".to_string(),
        ];
        clients.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (method, path, body, want) = if n.is_multiple_of(3) {
                    (Method::POST, "/orders".to_string(), Some(order_body(c * 100_000 + n, "Latte", 1, 3000)), 201)
                } else {
                    (Method::GET, paths[(n as usize) % paths.len()].clone(), None, 200)
                };
                let outcome = app.try_request(method.clone(), &path, body.as_ref()).await;
                sent.fetch_add(1, Ordering::SeqCst);
                match outcome {
                    Ok(r) if r.status.as_u16() == want => {}
                    Ok(r) => failures.lock().unwrap().push(format!("{method} {path}: {} {}", r.status, r.text)),
                    Err(e) => failures.lock().unwrap().push(format!("{method} {path}: no answer: {e}")),
                }
            }
        });
    }

    // Requests before, between and after the kills.
    let traffic = |more: u64| {
        let (sent, app) = (sent.clone(), app.clone());
        async move {
            let target = sent.load(Ordering::SeqCst) + more;
            eventually(app.deadline, async || (sent.load(Ordering::SeqCst) >= target).then_some(()))
                .await
                .unwrap_or_else(|t| panic!("{more} more requests: {t:?}"));
        }
    };
    traffic(40).await;
    for (service, slot) in
        [(ServiceName::Payment, 0), (ServiceName::Drink, 1), (ServiceName::Payment, 1), (ServiceName::Drink, 0)]
    {
        let killed = app.kill9_instance(service, slot).await;
        // Requests while it is down, then the cluster starts it again.
        traffic(20).await;
        let back = app.wait_instance_ready(service, slot, killed.pid).await;
        eprintln!("{service}#{slot}: pid {} killed, pid {} ready", killed.pid, back.pid);
        traffic(20).await;
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = clients.join_next().await {
        r.expect("a client");
    }

    let failures = failures.lock().unwrap().clone();
    let total = sent.load(Ordering::SeqCst);
    eprintln!("{total} requests through the gateway, {} failed", failures.len());
    let failed = failures.len();
    assert!(failures.is_empty(), "{failed} of {total} requests failed while replicas died:\n{}", failures.join("\n"));
    assert_every_order_paid_once(&app).await;
}

/// No placement was half-made by the kills: every order has one approved payment, and every
/// approved payment its order.
async fn assert_every_order_paid_once(app: &TestApp) {
    let orders = app.all("orders").await;
    let payments = app.all("payments").await;
    let approved: Vec<&Value> = payments.iter().filter(|p| p["status"] == "Approved").collect();
    for o in &orders {
        let of: Vec<&&Value> = approved.iter().filter(|p| p["orderId"] == o["id"]).collect();
        assert_eq!(of.len(), 1, "order {}: approved payments {of:?}", o["id"]);
    }
    assert_eq!(approved.len(), orders.len(), "an approved payment without its order: {payments:?}");
}
