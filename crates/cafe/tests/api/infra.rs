//! The distributed-mode tests need PostgreSQL and NATS on this machine. Where they are not
//! running, a developer's `cargo test` skips those tests; CI must not: there, a skip would
//! report success for tests that never ran.

use std::net::TcpListener;

use crate::common::{check_infra, require_infra, running_in_ci};

/// An address nothing listens on: a port the kernel just gave out, closed again.
fn closed_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local address").to_string();
    drop(listener);
    addr
}

#[test]
fn unreachable_infrastructure_fails_under_ci_and_skips_elsewhere() {
    let closed = closed_address();
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = open.local_addr().expect("local address").to_string();

    let under_ci = check_infra(&[&open, &closed], true);
    let why = under_ci.expect_err("under CI, an unreachable dependency must fail the test");
    assert!(why.contains(&closed), "the failure names what is unreachable: {why}");
    assert!(!why.contains(&open), "and only that: {why}");

    assert_eq!(check_infra(&[&open, &closed], false), Ok(false), "outside CI the tests are skipped");
    assert_eq!(check_infra(&[&open], true), Ok(true), "everything reachable: the tests run");
    assert_eq!(check_infra(&[&open], false), Ok(true));
}

/// Under CI this fails on its own, with the reason, when PostgreSQL or NATS is not there
/// (and so does every distributed test); elsewhere it says what is skipped.
#[test]
fn under_ci_postgres_and_nats_must_be_reachable() {
    let reachable = require_infra();
    assert!(reachable || !running_in_ci());
}
