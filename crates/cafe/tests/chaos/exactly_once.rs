//! Exactly-once under chaos (SPEC §5, §6): a few hundred orders from a dozen clients while a
//! barista makes drinks, with random service processes killed (`kill -9`) and the NATS server
//! restarted once. Once settled, every order has exactly one approved payment, one drink and
//! one delivery, both views agree with the services' data, and every approved payment has
//! its order. Client errors while a process is down are expected; a 201 that is later lost
//! is not.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::ServiceName;
use reqwest::{Method, StatusCode};

use crate::common::{
    check_settled, eventually, id, make_queued_drinks, order_body, spawn_with, Mode, Rng, NATS_ADDR, POLL,
};

const ORDERS: u64 = 300;
const CLIENTS: u64 = 12;
/// Every service that a kill may hit (the gateway is the front door, not under test here).
const TARGETS: [ServiceName; 7] = ServiceName::BEHIND_GATEWAY;
/// After the last client is done, how long everything may take to agree: an event a killed
/// consumer had taken but not acknowledged comes back only after JetStream's ack wait (30 s).
const SETTLE: Duration = Duration::from_secs(90);

#[derive(Debug)]
enum Blow {
    Kill { service: ServiceName, slot: u16 },
    RestartNats,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_is_paid_made_and_shown_once_while_processes_die_and_nats_restarts() {
    let _alone = crate::one_at_a_time().await;
    // The reconciler settles placements a kill left pending after a second; payment is a little
    // slow so kills land mid-saga.
    let env = [("CAFE_SETTLE_AFTER_MS", "1000")];
    let Some(app) = spawn_with(Mode::Distributed, &["--payment-delay-ms", "5-40"], &env).await else { return };
    let app = Arc::new(app);
    let _nats_comes_back = NatsComesBack;

    // The plan: 4–6 kills and one NATS restart, each after a random number of orders.
    let mut rng = Rng::seeded(0xc4a0_5eed);
    let kills = rng.between(4, 6);
    let mut plan: Vec<(u64, Blow)> = (0..kills)
        .map(|_| {
            let service = TARGETS[rng.between(0, TARGETS.len() as u64 - 1) as usize];
            let slot =
                if matches!(service, ServiceName::Payment | ServiceName::Drink) { rng.between(0, 1) as u16 } else { 0 };
            (rng.between(10, ORDERS * 4 / 5), Blow::Kill { service, slot })
        })
        .collect();
    plan.push((rng.between(ORDERS / 3, ORDERS * 2 / 3), Blow::RestartNats));
    plan.sort_by_key(|(at, _)| *at);
    eprintln!("plan: {plan:?}");

    let placed = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Every order a client was told was created (201): none may be lost.
    let created = Arc::new(Mutex::new(Vec::<i64>::new()));
    // Nothing may run forever, whatever the binary does.
    let give_up = Instant::now() + Duration::from_secs(240);

    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (app, placed, attempts, created) = (app.clone(), placed.clone(), attempts.clone(), created.clone());
        let mut think = Rng::quiet(rng.next());
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
                        // A customer's pause between orders spreads the run over some seconds,
                        // so the kills land among steady traffic rather than all at once.
                        tokio::time::sleep(Duration::from_millis(think.between(0, 400))).await;
                    }
                    // A process down or restarting, NATS away, a fast 503: expected; again soon.
                    _ => tokio::time::sleep(POLL * 5).await,
                }
            }
        });
    }

    // The baristas: make every drink in the queue, ignoring errors while drink is down.
    let barista = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut made = 0u64;
            while !done.load(Ordering::SeqCst) && Instant::now() < give_up {
                made += make_queued_drinks(&app).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            made
        })
    };

    let started = Instant::now();
    for (at, blow) in &plan {
        eventually(Duration::from_secs(120), async || (placed.load(Ordering::SeqCst) >= *at).then_some(()))
            .await
            .unwrap_or_else(|t| panic!("{at} orders placed before {blow:?}: {t:?}"));
        match blow {
            Blow::Kill { service, slot } => {
                let killed = app.kill9_instance(*service, *slot).await;
                let (pid, orders) = (killed.pid, placed.load(Ordering::SeqCst));
                eprintln!("{:>5.1}s: kill -9 {service}#{slot} (pid {pid}) after {orders} orders", secs(started));
            }
            Blow::RestartNats => {
                eprintln!("{:>5.1}s: restarting NATS after {} orders", secs(started), placed.load(Ordering::SeqCst));
                restart_nats().await;
                eprintln!("{:>5.1}s: NATS is back", secs(started));
            }
        }
    }

    while clients.join_next().await.is_some() {}
    done.store(true, Ordering::SeqCst);
    let made = barista.await.unwrap();
    eprintln!(
        "{:>5.1}s: {} orders placed in {} attempts; baristas made {made} drinks while it ran",
        secs(started),
        placed.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst)
    );
    assert!(placed.load(Ordering::SeqCst) >= ORDERS, "the clients could not place {ORDERS} orders in time");

    // Settle: make whatever is still queued, until everything agrees.
    let settling = Instant::now();
    let mut reported = Instant::now();
    eventually(SETTLE, async || {
        make_queued_drinks(&app).await;
        let settled = check_settled(&app).await;
        // What it is waiting for, now and then: a slow settle shows why in the output.
        if let Err(why) = &settled {
            if reported.elapsed() > Duration::from_secs(10) {
                eprintln!("{:>5.1}s: settling: {why}", secs(started));
                reported = Instant::now();
            }
        }
        settled
    })
    .await
    .unwrap_or_else(|t| panic!("not settled {SETTLE:?} after the last order: {t:?}"));
    eprintln!("{:>5.1}s: settled {:.1}s after the last order", secs(started), secs(settling));

    let orders = app.all("orders").await;
    let payments = app.all("payments").await;
    let voided = payments.iter().filter(|p| p["status"] == "Canceled").count();
    eprintln!("{} orders, {} payments of which {voided} voided placements", orders.len(), payments.len());
    let listed: HashSet<i64> = orders.iter().map(id).collect();
    let lost: Vec<i64> = created.lock().unwrap().iter().copied().filter(|o| !listed.contains(o)).collect();
    assert!(lost.is_empty(), "orders answered 201 but gone after the chaos: {lost:?}");
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

// ---- the NATS server -------------------------------------------------------------------

const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// As `.ci/run` starts it.
const NATS_ARGS: [&str; 8] = ["-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server", "-l"];
const NATS_LOG: &str = "/var/log/nats-server.log";

fn nats_is_up() -> bool {
    let addr: SocketAddr = NATS_ADDR.parse().expect("NATS address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn start_nats() -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("start-stop-daemon")
        .args(["--start", "--oknodo", "--background", "--exec", NATS_SERVER, "--"])
        .args(NATS_ARGS)
        .arg(NATS_LOG)
        .status()
}

/// Stops the NATS server (SIGTERM: it flushes JetStream and exits), waits until its port is
/// closed, starts it again and waits until the port is open.
async fn restart_nats() {
    // `--retry`: wait until the old server has exited, not just closed its port; a start
    // while it is still shutting down would find it "already running" and do nothing.
    let stopped = tokio::process::Command::new("start-stop-daemon")
        .args(["--stop", "--retry", "TERM/30/KILL/5", "--exec", NATS_SERVER])
        .status()
        .await;
    assert!(stopped.as_ref().is_ok_and(|s| s.success()), "start-stop-daemon --stop {NATS_SERVER}: {stopped:?}");
    eventually(Duration::from_secs(30), async || (!nats_answers().await).then_some(())).await.expect("NATS to stop");
    let started = tokio::task::spawn_blocking(start_nats).await.expect("start-stop-daemon");
    assert!(started.as_ref().is_ok_and(|s| s.success()), "start-stop-daemon --start {NATS_SERVER}: {started:?}");
    eventually(Duration::from_secs(30), async || nats_answers().await.then_some(())).await.expect("NATS to start");
}

async fn nats_answers() -> bool {
    let connect = tokio::net::TcpStream::connect(NATS_ADDR);
    matches!(tokio::time::timeout(Duration::from_millis(500), connect).await, Ok(Ok(_)))
}

/// Whatever happens to the test, NATS is running after it: the machine's other users need it.
struct NatsComesBack;

impl Drop for NatsComesBack {
    fn drop(&mut self) {
        if nats_is_up() {
            return;
        }
        eprintln!("NATS is down after the test: starting it again");
        let _ = start_nats();
        let until = Instant::now() + Duration::from_secs(15);
        while !nats_is_up() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
