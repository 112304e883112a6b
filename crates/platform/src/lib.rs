//! Shared mechanics of every cafe service, and no domain words.
//!
//! - [`problem`], [`json`], [`hal`]: the REST conventions (RFC 9457 errors, validated JSON
//!   bodies, HAL items and pages with links that point where the client called).
//! - [`db`]: one storage API over SQLite and PostgreSQL, with migrations.
//! - [`outbox`]: transactional outbox, relay, idempotent inbox, batch consumer.
//! - [`dead_letter`]: events a consumer cannot handle, parked, listed and retried.
//! - [`bus`], [`embedded`], [`nats`]: the event bus and its two implementations.
//! - [`client`]: calls to another service, with a timeout and a circuit breaker.
//! - [`health`], [`server`], [`access_log`], [`logging`], [`metrics`], [`trace`]: running,
//!   observing, stopping.
//! - [`backoff`], [`shutdown`]: retrying after a failure, and pausing without holding up a stop.

pub mod access_log;
pub mod auth;
pub mod backoff;
pub mod breaker;
pub mod bus;
pub mod client;
pub mod ctx;
pub mod db;
pub mod dead_letter;
pub mod embedded;
pub mod event;
pub mod failpoint;
pub mod hal;
pub mod health;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod outbox;
pub mod problem;
pub mod server;
pub mod shutdown;
pub mod spelling;
pub mod testing;
pub mod time;
pub mod trace;
pub mod view;

pub use bus::EventBus;
pub use ctx::Ctx;
pub use db::{Conn, Db, Migration, Tx};
pub use event::{Envelope, Event, Payload};
pub use hal::{BaseUrl, PageRequest, Resource};
pub use json::{Fields, JsonBody};
pub use problem::Problem;

/// `url` with any password in it replaced by `***`, for errors and logs:
/// `postgres://cafe:secret@db/x` → `postgres://cafe:***@db/x`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_string() };
            format!("{scheme}://{hidden}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
#[test]
fn passwords_never_show_in_a_redacted_url() {
    assert_eq!(redacted("postgres://cafe:s3cret@db:5432/x"), "postgres://cafe:***@db:5432/x");
    assert_eq!(redacted("nats://tok3n@nats:4222"), "nats://***@nats:4222");
    assert_eq!(redacted("sqlite://data/order.db?mode=rwc"), "sqlite://data/order.db?mode=rwc");
    assert_eq!(redacted("postgres://p@ss:w@rd@db/x"), "postgres://p@ss:***@db/x");
}

pub(crate) const PLATFORM_MIGRATIONS: &[Migration] = outbox::MIGRATIONS;
