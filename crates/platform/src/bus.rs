//! The event bus: what services see of the broker.
//!
//! Two implementations: [`crate::embedded::EmbeddedBus`], a durable log in a SQLite file for
//! the all-in-one cafe, and a NATS JetStream bus for the distributed mode. Both deliver
//! at least once, in publish order per publisher, to one consumer group per service; a batch
//! is acknowledged only after the consumer's transaction committed. The outbox relay above
//! and the inbox below make the effect exactly once.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::event::{Envelope, Event};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Called with a batch of events; `Ok` acknowledges all of them, `Err` redelivers them.
pub type Deliver = Arc<dyn Fn(Vec<Event>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub trait EventBus: Send + Sync + 'static {
    /// Publishes a batch durably; duplicates (same `event_id`) are dropped by the bus.
    fn publish<'a>(&'a self, batch: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>>;

    /// Consumes as group `group` the events whose type is in `types`, until `cancel`.
    fn consume(
        &self,
        group: String,
        types: &'static [&'static str],
        deliver: Deliver,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, ()>;

    /// Is the broker reachable? Used by readiness.
    fn healthy(&self) -> BoxFuture<'_, bool>;
}
