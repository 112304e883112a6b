//! Exactly-once under chaos (SPEC §5, §6): a few hundred orders from a dozen clients while a
//! barista makes drinks, with random service processes killed (`kill -9`) and the NATS server
//! restarted once. Once settled, every order has exactly one approved payment, one drink and
//! one delivery, both views agree with the services' data, and every approved payment has
//! its order. Client errors while a process is down are expected; a 201 that is later lost
//! is not.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::ServiceName;

use crate::common::{check_settled, eventually, make_queued_drinks, spawn_with, Load, Mode, Rng, NATS_ADDR, POLL};

const ORDERS: u64 = 300;
/// Every service that a kill may hit (the gateway is the front door, not under test here).
const TARGETS: [ServiceName; 8] = ServiceName::BEHIND_GATEWAY;
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

    let load = Load {
        clients: 12,
        orders: ORDERS,
        give_up: Duration::from_secs(240),
        retry: POLL * 5,
        barista_pause: Duration::from_millis(100),
        think_ms: 400,
        cancel_one_in: 0,
    }
    .start(&app, &mut rng);

    let started = Instant::now();
    for (at, blow) in &plan {
        load.until_placed(*at, Duration::from_secs(120), format!("{blow:?}")).await;
        match blow {
            Blow::Kill { service, slot } => {
                let killed = app.kill9_instance(*service, *slot).await;
                let (pid, orders) = (killed.pid, load.placed());
                eprintln!("{:>5.1}s: kill -9 {service}#{slot} (pid {pid}) after {orders} orders", secs(started));
            }
            Blow::RestartNats => {
                eprintln!("{:>5.1}s: restarting NATS after {} orders", secs(started), load.placed());
                restart_nats().await;
                eprintln!("{:>5.1}s: NATS is back", secs(started));
            }
        }
    }

    let placed = load.finish().await;
    eprintln!("{:>5.1}s: {placed}", secs(started));

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
    let lost = placed.lost(&orders);
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
