//! The distributed mode under failure (`cafe cluster` on PostgreSQL and NATS JetStream):
//! exactly-once effects while service processes are killed with `kill -9` and the NATS
//! server restarts, replicas sharing a consumer's work, and a gateway that loses no request
//! to a dead instance.
//!
//! A binary of its own because one test restarts the machine's NATS server, which every
//! cluster of the `api` binary would feel; cargo runs test binaries one after another. Inside
//! it the tests run one at a time ([`one_at_a_time`]): each loads both cores, and the NATS
//! restart must not land in another's run.
//!
//! Without PostgreSQL or NATS these tests skip, except under CI where they fail
//! ([`common::require_infra`]).

#[macro_use]
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod exactly_once;
mod gateway;
mod replicas;

/// Held for the whole of each test of this binary.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
