//! The NATS JetStream event bus of the distributed mode.
//!
//! One stream per namespace (`<NS>_EVENTS`, subjects `<ns>.events.<EventType>`, file
//! storage) and, per service, one durable pull consumer for each event type it handles
//! (`<ns>-<service>-<EventType>`, filtered on that type's subject): the replicas of a service
//! pull from the same consumers, so each event goes to one of them, and no service is sent
//! (and acknowledges) events it does not handle. Publishing sets
//! `Nats-Msg-Id` to the event id, so the relay's republish after a crash is dropped by the
//! stream's duplicate window; whatever still slips through is dropped by the inbox.
//! Messages are acknowledged only after the consumer's transaction committed; an unacked
//! message comes back after `ack_wait`. The stream is bounded ([`Limits`]) and compacted:
//! each event type is purged up to the lowest ack floor of the groups that read it.
//!
//! One consumer per type rather than one multi-subject consumer per service: multi-subject
//! filters need NATS 2.10, and this works on 2.9. It gives up the order between two types,
//! which nothing relies on: the replicas of a service already handle events concurrently,
//! so every handler accepts events about one order in any order. The pulls of a service's
//! types feed one batcher, so a batch (one transaction) still spans types.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage, stream, Message};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::bus::{deliver_until_done, BusError, EventBus, Readers, Subscription};
use crate::event::{Envelope, Headers};
use crate::shutdown::sleep_or_cancel;

const BATCH: usize = 256;

/// What the stream keeps at most. Past `max_bytes` it refuses new events (`DiscardPolicy::New`):
/// they wait in the publishers' outboxes, and nothing a consumer has not handled is dropped.
/// `max_age` (zero: none) drops events by age, handled or not. Events every consumer group
/// has handled leave sooner, by [`EventBus::compact`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: i64,
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bytes: 4 << 30, max_age: Duration::ZERO }
    }
}

/// The event types each consumer group of this process subscribed to.
type Subscriptions = HashMap<String, Arc<[&'static str]>>;

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    namespace: String,
    limits: Limits,
    /// The types each group of this process consumes, for [`EventBus::lag`].
    consumed: Arc<Mutex<Subscriptions>>,
}

/// Names NATS accepts for streams and consumers: letters, digits, `-` and `_`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

impl NatsBus {
    /// Connects (retrying in the background if the server is not up yet) and makes sure
    /// the namespace's stream exists.
    /// Credentials in the URL (`nats://user:password@host`, or `nats://token@host`) are
    /// sent to the server: the client would otherwise drop them.
    pub async fn connect(url: &str, namespace: &str, limits: Limits) -> Result<NatsBus, BusError> {
        let addr: async_nats::ServerAddr =
            url.parse().map_err(|e| BusError::Unavailable(format!("not a NATS URL: {}: {e}", crate::redacted(url))))?;
        let mut options =
            async_nats::ConnectOptions::new().retry_on_initial_connect().connection_timeout(Duration::from_secs(5));
        match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => options = options.user_and_password(user.into(), password.into()),
            (Some(token), None) => options = options.token(token.into()),
            (None, _) => {}
        }
        let client = options
            .connect(addr)
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot connect to NATS at {}: {e}", crate::redacted(url))))?;
        let bus = NatsBus {
            js: jetstream::new(client.clone()),
            client,
            namespace: sanitize(namespace),
            limits,
            consumed: Arc::default(),
        };
        let mut tries = 0;
        loop {
            match bus.ensure_stream().await {
                Ok(()) => return Ok(bus),
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::warn!(error = %e, "JetStream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stream_name(&self) -> String {
        format!("{}_EVENTS", self.namespace.to_uppercase())
    }

    fn subject(&self, event_type: &str) -> String {
        format!("{}.events.{}", self.namespace, sanitize(event_type))
    }

    /// Creates the stream, or brings an existing one's limits to this process's.
    async fn ensure_stream(&self) -> Result<(), BusError> {
        self.js
            .create_or_update_stream(stream::Config {
                name: self.stream_name(),
                subjects: vec![format!("{}.events.>", self.namespace)],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                max_bytes: self.limits.max_bytes,
                max_age: self.limits.max_age,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| BusError::Unavailable(format!("cannot create stream {}: {e}", self.stream_name())))
    }

    fn consumer_name(&self, group: &str, event_type: &str) -> String {
        format!("{}-{}-{}", self.namespace, sanitize(group), sanitize(event_type))
    }

    /// Purges, type by type, the events below every reading group's ack floor (all handled
    /// by each); a type with a reader whose consumer does not exist yet is kept whole.
    async fn compact_stream(&self, readers: &Readers) -> Result<u64, BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(e.to_string());
        let stream = self.js.get_stream(self.stream_name()).await.map_err(|e| unavailable(&e))?;
        let mut groups_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (group, types) in readers {
            for t in types {
                groups_of.entry(t).or_default().push(group);
            }
        }
        let mut purged = 0;
        'types: for (event_type, groups) in groups_of {
            let mut floor = u64::MAX;
            for group in groups {
                let Ok(mut consumer) =
                    stream.get_consumer::<pull::Config>(&self.consumer_name(group, event_type)).await
                else {
                    continue 'types;
                };
                let info = consumer.info().await.map_err(|e| unavailable(&e))?;
                floor = floor.min(info.ack_floor.stream_sequence);
            }
            if floor == 0 || floor == u64::MAX {
                continue;
            }
            // Everything of this type before `floor + 1`: up to and including the floor.
            let done = stream
                .purge()
                .filter(self.subject(event_type))
                .sequence(floor + 1)
                .await
                .map_err(|e| unavailable(&e))?;
            purged += done.purged;
        }
        Ok(purged)
    }

    /// The durable consumer of `group` for `event_type`, created if missing.
    async fn consumer(
        &self,
        group: &str,
        event_type: &str,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
        let name = self.consumer_name(group, event_type);
        let stream = self
            .js
            .get_stream(self.stream_name())
            .await
            .map_err(|e| BusError::Unavailable(format!("no stream {}: {e}", self.stream_name())))?;
        stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subject(event_type),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot create consumer {name}: {e}")))
    }

    /// Pulls `event_type` for `group` into `into`, resuming after errors, until `cancel`.
    async fn pull(
        self,
        group: String,
        event_type: &'static str,
        into: mpsc::Sender<Message>,
        cancel: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        while !cancel.is_cancelled() {
            match self.pull_until_error(&group, event_type, &into, &cancel).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(%group, event_type, error = %e, "consumer interrupted; resuming");
                    if sleep_or_cancel(backoff.next_delay(), &cancel).await {
                        return;
                    }
                }
            }
        }
    }

    async fn pull_until_error(
        &self,
        group: &str,
        event_type: &str,
        into: &mpsc::Sender<Message>,
        cancel: &CancellationToken,
    ) -> Result<(), BusError> {
        let consumer = self.consumer(group, event_type).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                m = messages.next() => m,
            };
            let Some(m) = next else { return Err(BusError::Unavailable("message stream ended".into())) };
            let m = match m {
                Ok(m) => m,
                Err(e) if goes_on_after(&e) => {
                    tracing::warn!(%group, event_type, error = %e, "no word from NATS; still waiting on the same pull");
                    continue;
                }
                Err(e) => return Err(BusError::Unavailable(e.to_string())),
            };
            if into.send(m).await.is_err() {
                return Ok(()); // the batcher stopped
            }
        }
    }

    /// Hands what the pulls of every type bring to `deliver`, in batches of whatever has
    /// arrived (one transaction for several types), acknowledging each batch once handled.
    async fn run_consumer(self, subscription: Subscription) {
        let Subscription { group, types, deliver, cancel } = subscription;
        let (tx, mut rx) = mpsc::channel::<Message>(BATCH * 2);
        for t in types.iter().copied() {
            tokio::spawn(self.clone().pull(group.clone(), t, tx.clone(), cancel.clone()));
        }
        drop(tx);
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                m = rx.recv() => m,
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            // Take whatever else is already here, without waiting.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let events: Vec<Envelope> =
                batch.iter().map(envelope_of).filter(|e| types.contains(&e.event_type.as_str())).collect();
            if !deliver_until_done(&deliver, events, &group, &cancel).await {
                return;
            }
            for m in &batch {
                // A lost ack only means a redelivery, which the inbox absorbs.
                if let Err(e) = m.ack().await {
                    tracing::debug!(%group, error = %e, "ack failed; the event will be redelivered");
                }
            }
        }
    }
}

impl EventBus for NatsBus {
    fn publish<'a>(&'a self, batch: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let mut acks = Vec::with_capacity(batch.len());
            for e in batch {
                let mut publish = PublishMessage::build().payload(e.body.clone().into()).message_id(&e.event_id);
                for (name, value) in &e.headers {
                    publish = publish.header(name.as_str(), value.as_str());
                }
                let ack = self
                    .js
                    .send_publish(self.subject(&e.event_type), publish)
                    .await
                    .map_err(|err| BusError::Unavailable(err.to_string()))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|err| BusError::Unavailable(err.to_string()))?;
            }
            Ok(())
        }
        .boxed()
    }

    fn consume(&self, subscription: Subscription) -> BoxFuture<'static, ()> {
        self.consumed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subscription.group.clone(), subscription.types.clone());
        self.clone().run_consumer(subscription).boxed()
    }

    fn lag<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Option<u64>> {
        async move {
            let types = self.consumed.lock().unwrap_or_else(|e| e.into_inner()).get(group).cloned()?;
            let mut lag = 0;
            for t in types.iter() {
                let info = self.consumer(group, t).await.ok()?.get_info().await.ok()?;
                lag += info.num_pending + info.num_ack_pending as u64;
            }
            Some(lag)
        }
        .boxed()
    }

    fn healthy(&self) -> BoxFuture<'_, bool> {
        async move { self.client.connection_state() == async_nats::connection::State::Connected }.boxed()
    }

    fn compact<'a>(&'a self, readers: &'a Readers) -> BoxFuture<'a, Result<u64, BusError>> {
        self.compact_stream(readers).boxed()
    }

    fn tail(&self, into: mpsc::Sender<Envelope>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        self.clone().run_tail(into, cancel).boxed()
    }
}

impl NatsBus {
    /// An ephemeral ordered consumer on every subject of the namespace, delivering only what
    /// is published after it is made (`DeliverPolicy::New`): nothing is acknowledged, the
    /// server forgets it when it goes. After an error a new one is made, from the new head.
    async fn run_tail(self, into: mpsc::Sender<Envelope>, cancel: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        while !cancel.is_cancelled() && !into.is_closed() {
            match self.tail_until_error(&into, &cancel).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "tail interrupted; resuming from the head");
                    if sleep_or_cancel(backoff.next_delay(), &cancel).await {
                        return;
                    }
                }
            }
        }
    }

    async fn tail_until_error(
        &self,
        into: &mpsc::Sender<Envelope>,
        cancel: &CancellationToken,
    ) -> Result<(), BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(e.to_string());
        let stream = self.js.get_stream(self.stream_name()).await.map_err(|e| unavailable(&e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.events.>", self.namespace),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = into.closed() => return Ok(()),
                m = messages.next() => m,
            };
            let Some(m) = next else { return Err(BusError::Unavailable("the tail's message stream ended".into())) };
            let m = m.map_err(|e| unavailable(&e))?;
            if into.send(envelope_of(&m)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Does the pull go on after `e`? A missed heartbeat (the link to the server slow or cut) is
/// reported, but the pull stays open and asks again by itself (on reconnecting, or when the
/// request expires). Dropping it for a new one would strand whatever the server has sent, or
/// sends once the link is back, to the old pull: those events would come back only after the
/// consumer's `ack_wait` (30 s).
fn goes_on_after(e: &pull::MessagesError) -> bool {
    matches!(e.kind(), pull::MessagesErrorKind::MissingHeartbeat)
}

/// The envelope of a message: the event id from the de-duplication header, the type from
/// the subject's last token, and the headers that travel beside the JSON.
fn envelope_of(m: &Message) -> Envelope {
    let headers = m.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    // Every header but NATS's own is the event's, as published.
    let carried: Headers = headers
        .into_iter()
        .flat_map(|h| h.iter())
        .filter(|(name, _)| !AsRef::<str>::as_ref(name).starts_with("Nats-"))
        .filter_map(|(name, values)| Some((name.to_string(), values.first()?.as_str().to_string())))
        .collect();
    Envelope {
        event_id: header("Nats-Msg-Id").unwrap_or_default(),
        event_type: m.subject.rsplit('.').next().unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&m.payload).into_owned(),
        headers: carried,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{Limits, NatsBus};
    use crate::bus::{Deliver, EventBus, Readers, Subscription};
    use crate::event::Envelope;
    use crate::testing::{eventually, server_at};

    const NATS: &str = "127.0.0.1:4222";

    fn event(n: usize, event_type: &str, bytes: usize) -> Envelope {
        Envelope {
            event_id: format!("{event_type}-{n}"),
            event_type: event_type.into(),
            body: "x".repeat(bytes),
            headers: Default::default(),
        }
    }

    /// Consumes `types` as `group`, counting what it handles.
    fn consume(bus: &NatsBus, group: &str, types: &[&'static str], cancel: &CancellationToken) -> Arc<AtomicUsize> {
        let handled = Arc::new(AtomicUsize::new(0));
        let count = handled.clone();
        let deliver: Deliver = Arc::new(move |batch| {
            count.fetch_add(batch.len(), Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        });
        let subscription =
            Subscription { group: group.into(), types: types.to_vec().into(), deliver, cancel: cancel.clone() };
        tokio::spawn(bus.consume(subscription));
        handled
    }

    async fn messages(bus: &NatsBus) -> u64 {
        bus.js.get_stream(bus.stream_name()).await.unwrap().info().await.unwrap().state.messages
    }

    #[tokio::test]
    async fn the_stream_keeps_what_a_reader_has_not_handled_and_refuses_rather_than_drops_when_full() {
        if !server_at(NATS, "NATS") {
            return;
        }
        let namespace = format!("compact{}x{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let limits = Limits { max_bytes: 64 << 10, max_age: Duration::ZERO };
        let bus = NatsBus::connect(&format!("nats://{NATS}"), &namespace, limits).await.unwrap();
        let cancel = CancellationToken::new();
        let a = consume(&bus, "a", &["Alpha"], &cancel);
        let b = consume(&bus, "b", &["Alpha", "Beta"], &cancel);
        let batch: Vec<Envelope> =
            (0..5).map(|n| event(n, "Alpha", 10)).chain((0..3).map(|n| event(n, "Beta", 10))).collect();
        bus.publish(&batch).await.unwrap();
        eventually(Duration::from_secs(20), async || {
            (a.load(Ordering::SeqCst) == 5 && b.load(Ordering::SeqCst) == 8).then_some(())
        })
        .await
        .expect("both groups handled what they read");

        // A reader of Beta that has not started yet: Beta stays whole, Alpha goes.
        let late: Readers =
            vec![("a".into(), vec!["Alpha"]), ("b".into(), vec!["Alpha", "Beta"]), ("late".into(), vec!["Beta"])];
        eventually(Duration::from_secs(20), async || (bus.compact(&late).await.ok()? == 5).then_some(()))
            .await
            .expect("Alpha compacted once both readers acknowledged it");
        assert_eq!(messages(&bus).await, 3, "Beta kept for its reader to come");
        let readers: Readers = vec![("a".into(), vec!["Alpha"]), ("b".into(), vec!["Alpha", "Beta"])];
        assert_eq!(bus.compact(&readers).await.unwrap(), 3);
        assert_eq!(messages(&bus).await, 0);

        // Full: new events are refused, nothing already in is dropped.
        cancel.cancel();
        let mut accepted = 0;
        let refused = loop {
            match bus.publish(&[event(100 + accepted, "Beta", 4 << 10)]).await {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 100, "a 64 KiB stream took 400 KiB");
        };
        assert!(refused.to_string().contains("maximum bytes"), "{refused}");
        assert_eq!(messages(&bus).await, accepted as u64, "every event accepted before is still there");

        bus.js.delete_stream(bus.stream_name()).await.unwrap();
    }
}
