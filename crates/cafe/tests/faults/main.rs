//! Faults beyond `kill -9`: what the cafe's storage and network do to it, and that it comes
//! back by itself. Each test breaks something of its own under load (a file system, a
//! PostgreSQL server, the link to a NATS server), checks what clients are told meanwhile
//! (503 with `Retry-After`, problem+json, promptly: never a 500, never a hang), mends it, and
//! checks that the cafe serves again without a restart and that every order it acknowledged
//! settles exactly once. Each prints how long recovery took (`recovery: ...`).
//!
//! - [`disk`]: the all-in-one cafe's data directory fills up, then is freed.
//! - [`postgres`]: a cluster's PostgreSQL stops (immediate shutdown) and starts again.
//! - [`partition`]: the link between a cluster and its NATS server turns slow and lossy,
//!   then is cut, then healed.
//!
//! They need root (a tmpfs mount, a network namespace), `tc`, the PostgreSQL server
//! binaries and `nats-server`, and run their own servers; the cluster tests also use the
//! machine's PostgreSQL or NATS for the half they do not break. What is missing skips a test,
//! except under CI, where it fails ([`common::require`]). A binary of its own, its tests one
//! at a time ([`one_at_a_time`]): each loads both cores.

#[macro_use]
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod disk;
mod partition;
mod postgres;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{check_settled, eventually, make_queued_drinks, TestApp};

/// Held for the whole of each test of this binary.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Runs a command to its end; panics with its output unless it succeeds.
#[track_caller]
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{program} {args:?}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Runs a command for cleaning up: whatever fails is reported, never a panic (it runs from
/// `Drop`, maybe while a failed test unwinds).
pub fn run_quietly(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "cleaning up: {program} {args:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("cleaning up: {program} {args:?}: {e}");
            false
        }
    }
}

/// What of `needs` (root, and programs by path or name) this machine lacks.
pub fn missing(root: bool, programs: &[&str]) -> Vec<String> {
    let mut missing = Vec::new();
    if root && !is_root() {
        missing.push("root".to_string());
    }
    for program in programs {
        let found = if program.contains('/') {
            Path::new(program).exists()
        } else {
            Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
        };
        if !found {
            missing.push(format!("`{program}`"));
        }
    }
    missing
}

pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // `Uid:	real	effective	saved	fs`
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
}

/// Makes whatever drinks are queued until every service and both views agree (every order
/// paid, made and shown once, nothing without its order), at most `within`; panics with what
/// is still missing otherwise. How long it took.
pub async fn settle(app: &TestApp, within: Duration) -> Duration {
    let started = Instant::now();
    let mut reported = Instant::now();
    eventually(within, async || {
        make_queued_drinks(app).await;
        let settled = check_settled(app).await;
        if let Err(why) = &settled {
            if reported.elapsed() > Duration::from_secs(10) {
                eprintln!("{:>5.1}s settling: {why}", started.elapsed().as_secs_f64());
                reported = Instant::now();
            }
        }
        settled
    })
    .await
    .unwrap_or_else(|t| panic!("not settled within {within:?}: {t:?}\nstderr tail:\n{}", app.stderr_tail()));
    started.elapsed()
}

/// No order answered 201 is missing from `/orders` once everything settled.
pub async fn assert_none_lost(app: &TestApp, placed: &common::load::Placed) {
    let orders = app.all("orders").await;
    let lost = placed.lost(&orders);
    assert!(lost.is_empty(), "orders answered 201 but gone: {lost:?}");
    eprintln!("{placed}; {} orders in the cafe, none lost", orders.len());
}

/// Milliseconds, for the printed figures.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}
