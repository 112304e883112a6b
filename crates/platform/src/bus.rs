//! The event bus: what services see of the broker.
//!
//! Two implementations: [`crate::embedded::EmbeddedBus`], a durable log in a SQLite file for
//! the all-in-one cafe, and a NATS JetStream bus for the distributed mode. Both deliver
//! at least once, in publish order per publisher, to one consumer group per service; a batch
//! is acknowledged only after the consumer's transaction committed. The outbox relay above
//! and the inbox below make the effect exactly once.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::event::Envelope;
use crate::shutdown::sleep_or_cancel;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Called with a batch of events; `Ok` acknowledges all of them, `Err` redelivers them.
pub type Deliver = Arc<dyn Fn(Vec<Envelope>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What a consumer asks of the bus: as group `group`, the events whose type is in `types`,
/// handed to `deliver`, until `cancel`.
pub struct Subscription {
    pub group: String,
    pub types: Arc<[&'static str]>,
    pub deliver: Deliver,
    pub cancel: CancellationToken,
}

pub trait EventBus: Send + Sync + 'static {
    /// Publishes a batch durably; duplicates (same `event_id`) are dropped by the bus.
    fn publish<'a>(&'a self, batch: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>>;

    /// Consumes what `subscription` asks for, until it is cancelled.
    fn consume(&self, subscription: Subscription) -> BoxFuture<'static, ()>;

    /// Is the broker reachable? Used by readiness.
    fn healthy(&self) -> BoxFuture<'_, bool>;

    /// How many events are waiting for group `group` (published, not yet handled), if the
    /// broker can tell.
    fn lag<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Option<u64>>;

    /// Drops the events every one of `readers` has handled; returns how many went. An event
    /// a reader has not handled, or whose reader has not started consuming yet, stays.
    fn compact<'a>(&'a self, readers: &'a Readers) -> BoxFuture<'a, Result<u64, BusError>>;

    /// Every event published from now on, of every type, sent to `into` as it arrives, until
    /// `cancel` or until `into` is closed. An ephemeral reader: no group, no offset kept, nothing
    /// acknowledged, so every caller (each web replica) sees every event, and an event missed
    /// while it was not reading is not replayed. It never holds up compaction.
    fn tail(&self, into: mpsc::Sender<Envelope>, cancel: CancellationToken) -> BoxFuture<'static, ()>;
}

/// Every consumer group of a system, with the event types it reads.
pub type Readers = Vec<(String, Vec<&'static str>)>;

/// Compacts `bus` for `readers` every `every`, until `cancel`.
pub async fn compact_every(bus: Arc<dyn EventBus>, readers: Readers, every: Duration, cancel: CancellationToken) {
    while !sleep_or_cancel(every, &cancel).await {
        match bus.compact(&readers).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "event bus compacted"),
            Err(e) => tracing::warn!(error = %e, "event bus not compacted; trying at the next round"),
        }
    }
}

/// Hands `events` to `deliver` until it acknowledges them, the whole batch each time, backing
/// off from 50 ms to 2 s between attempts. `false` if cancelled first; an empty batch is done.
pub(crate) async fn deliver_until_done(
    deliver: &Deliver,
    events: Vec<Envelope>,
    group: &str,
    cancel: &CancellationToken,
) -> bool {
    if events.is_empty() {
        return true;
    }
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        match deliver(events.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(%group, error = %e, "handler failed; redelivering");
                if sleep_or_cancel(backoff.next_delay(), cancel).await {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A `Deliver` that fails its first `failures` calls, and counts every call.
    fn failing(failures: usize) -> (Deliver, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let deliver: Deliver = Arc::new(move |_| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < failures {
                    Err("down".to_string())
                } else {
                    Ok(())
                }
            })
        });
        (deliver, calls)
    }

    fn batch() -> Vec<Envelope> {
        vec![Envelope {
            event_id: "1".into(),
            event_type: "Happened".into(),
            body: "{}".into(),
            headers: Default::default(),
        }]
    }

    #[tokio::test]
    async fn a_failed_batch_is_redelivered_until_acknowledged() {
        let (deliver, calls) = failing(2);
        assert!(deliver_until_done(&deliver, batch(), "g", &CancellationToken::new()).await);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn cancelling_stops_the_redelivery() {
        let (deliver, calls) = failing(usize::MAX);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(!deliver_until_done(&deliver, batch(), "g", &cancel).await);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_batch_is_done_without_a_call() {
        let (deliver, calls) = failing(usize::MAX);
        assert!(deliver_until_done(&deliver, vec![], "g", &CancellationToken::new()).await);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
