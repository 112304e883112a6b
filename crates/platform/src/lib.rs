//! Shared mechanics of every cafe service, and no domain words.
//!
//! - [`problem`], [`json`], [`hal`]: the REST conventions (RFC 9457 errors, validated JSON
//!   bodies, HAL items and pages with links that point where the client called).
//! - [`db`]: one storage API over SQLite and PostgreSQL, with migrations.
//! - [`outbox`]: transactional outbox, relay, idempotent inbox, batch consumer.
//! - [`bus`], [`embedded`], [`nats`]: the event bus and its two implementations.
//! - [`client`]: calls to another service, with a timeout and a circuit breaker.
//! - [`health`], [`server`], [`access_log`], [`logging`], [`metrics`], [`trace`]: running,
//!   observing, stopping.
//! - [`backoff`], [`shutdown`]: retrying after a failure, and pausing without holding up a stop.

pub mod access_log;
pub mod backoff;
pub mod breaker;
pub mod bus;
pub mod client;
pub mod ctx;
pub mod db;
pub mod embedded;
pub mod event;
pub mod failpoint;
pub mod hal;
pub mod health;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod nats;
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

pub(crate) const PLATFORM_MIGRATIONS: &[Migration] = outbox::MIGRATIONS;
