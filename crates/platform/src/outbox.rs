//! Transactional outbox and idempotent inbox.
//!
//! A service writes its state change and the events it raises in one local transaction
//! ([`enqueue`]); after the commit it wakes the relay ([`Outbox::wake`]), which publishes the
//! pending rows in order and deletes them. A crash between publish and delete republishes;
//! the bus drops the duplicate by event id and the consumer's inbox drops what slips through.
//!
//! Replicas of a service share its PostgreSQL database, and each runs a relay: a row is
//! published by the relay that claims it. A pass reads its batch with `FOR UPDATE SKIP
//! LOCKED` inside the transaction that publishes the batch and then deletes it, so another
//! relay's read passes over the rows this one holds and takes the next ones; a failure
//! rolls back, which frees the rows for whichever relay reads next. Rows a relay claimed
//! and gave back (its publish failed, its process died) go with the next pass of any
//! relay, and an idle relay on PostgreSQL looks every [`SWEEP`], so they wait at most that
//! long when nothing else is committed. SQLite has one process and one relay, which reads
//! and deletes outside a transaction: a transaction there would hold the only connection
//! for the whole publish.
//!
//! Why claims rather than one relay per service elected with an advisory lock: latency
//! and throughput. A relay is rung by its own process's commits; an elected relay would not
//! hear the other replicas' commits, whose events would wait for a poll or for the next
//! commit of the leader's process. With claims the replica that committed publishes at
//! once, and a backlog drains in parallel, each relay taking the next unclaimed batch of
//! [`BATCH`], where a leader drains it alone. The price: a transaction per pass (two more
//! round trips, BEGIN and COMMIT) and a pooled connection held during the publish. Across
//! relays, batches may reach the bus out of `seq` order, as concurrent commits already
//! could; consumers accept one order's events in any order.
//!
//! A consumer handles a batch of events in one transaction: for each event it first claims
//! the event id in `inbox` (a repeat is skipped), then applies its effect and enqueues the
//! events it raises. Commit, then acknowledge: at-least-once delivery, exactly-once effect.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::Row;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::backoff::Backoff;
use crate::bus::{BusError, EventBus};
use crate::db::{placeholders, values_list, Backend, Conn, Db, Migration, Tx, ROWS_PER_STATEMENT};
use crate::event::{Envelope, Event, Payload};
use crate::metrics::{EventCounter, Metrics};
use crate::shutdown::sleep_or_cancel;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "CREATE TABLE outbox (seq {{ID}}, event_id TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL);
          CREATE TABLE inbox (event_id TEXT PRIMARY KEY, handled_at TEXT NOT NULL)",
    },
    Migration { version: 2, sql: "CREATE TABLE guards (key BIGINT PRIMARY KEY)" },
    Migration {
        // The per-order guard is an advisory lock now (`db::guard`): nothing to store.
        version: 3,
        sql: "DROP TABLE guards",
    },
    Migration {
        // Headers (the trace context) travel beside the event's JSON, not inside it.
        version: 4,
        sql: "ALTER TABLE outbox ADD COLUMN headers TEXT NOT NULL DEFAULT ''",
    },
    Migration {
        // Events a consumer could not handle, parked (`crate::dead_letter`).
        version: 5,
        sql: "CREATE TABLE dead_letters (event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, body TEXT NOT NULL,
            headers TEXT NOT NULL, error TEXT NOT NULL, attempts BIGINT NOT NULL, parked_at TEXT NOT NULL)",
    },
    Migration {
        // The inbox is pruned by age (`prune_inbox`).
        version: 6,
        sql: "CREATE INDEX inbox_by_age ON inbox (handled_at)",
    },
];

const BATCH: i64 = 512;

/// Writes `events` into the outbox inside the caller's transaction (one statement per
/// couple of hundred events).
pub(crate) async fn enqueue<P: Payload>(conn: &mut Conn, events: &[Event<P>]) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql =
            format!("INSERT INTO outbox (event_id, event_type, body, headers) VALUES {}", values_list(chunk.len(), 4));
        let mut q = sqlx::query(&sql);
        for e in chunk {
            let envelope = e.envelope().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            q = q
                .bind(envelope.event_id.clone())
                .bind(envelope.event_type.clone())
                .bind(envelope.body.clone())
                .bind(envelope.headers_json());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Claims the ids of `events` for this consumer in one statement per chunk; returns the ids
/// not handled before.
async fn claim<P: Payload>(conn: &mut Conn, events: &[Event<P>]) -> Result<HashSet<String>, sqlx::Error> {
    let now = crate::time::now();
    let mut fresh = HashSet::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO inbox (event_id, handled_at) VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            values_list(chunk.len(), 2)
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for e in chunk {
            q = q.bind(&e.event_id).bind(&now);
        }
        fresh.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(fresh)
}

/// A unit of work: one transaction, and the events it raises, written to the outbox in the
/// same transaction at [`Change::commit`]. The only way a service writes an event.
pub struct Change<P: Payload> {
    tx: Tx,
    raised: Vec<Event<P>>,
    outbox: Outbox,
}

impl<P: Payload> Change<P> {
    pub(crate) fn new(tx: Tx, outbox: Outbox) -> Self {
        Change { tx, raised: Vec::new(), outbox }
    }

    /// The transaction's connection, for the state change itself.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.tx
    }

    /// Raises `event` if and when the change commits.
    pub fn raise(&mut self, event: Event<P>) {
        self.raised.push(event);
    }

    /// Writes the raised events to the outbox, commits, and wakes the relay.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        enqueue(&mut self.tx, &self.raised).await?;
        self.tx.commit().await?;
        if !self.raised.is_empty() {
            self.outbox.wake();
        }
        Ok(())
    }
}

/// The relay's doorbell. Cloned into every handler that commits events. It also carries the
/// service's metrics, which the relay and the consumers count into.
#[derive(Clone, Default)]
pub struct Outbox {
    bell: Arc<Notify>,
    pub metrics: Metrics,
}

impl Outbox {
    pub fn new(metrics: Metrics) -> Outbox {
        Outbox { bell: Arc::default(), metrics }
    }

    /// Wakes the relay. A wake with nobody waiting is kept, so none is lost.
    pub fn wake(&self) {
        self.bell.notify_one();
    }

    /// Publishes whatever is pending, then sleeps until woken (on PostgreSQL at most a
    /// [`SWEEP`]), until `cancel`.
    ///
    /// A pass costs two statements whatever it carries (four on PostgreSQL, with the
    /// transaction that holds its claim). When the bell rang during a pass,
    /// commits are coming faster than passes finish: the relay then lingers a moment
    /// ([`LINGER`]) so the next pass carries several events. Otherwise (a quiet cafe, one
    /// order at a time) it answers the next ring at once.
    pub async fn run_relay(self, db: Db, bus: Arc<dyn EventBus>, service: &'static str, cancel: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            if let Err(e) = relay_pending(&db, bus.as_ref(), &self.metrics).await {
                tracing::warn!(service, error = %e, "outbox relay failed; retrying");
                if sleep_or_cancel(backoff.next_delay(), &cancel).await {
                    return;
                }
                continue;
            }
            backoff.reset();
            let rung_meanwhile = self.bell.notified().now_or_never().is_some();
            let stopped = if rung_meanwhile {
                sleep_or_cancel(LINGER, &cancel).await
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => true,
                    _ = self.bell.notified() => false,
                    _ = sweep(db.backend()) => false,
                }
            };
            if stopped {
                // Last drain so a clean stop leaves nothing behind (a crash leaves it for the next start).
                let _ = relay_pending(&db, bus.as_ref(), &self.metrics).await;
                return;
            }
        }
    }
}

/// How long a relay that is behind waits for more events before its next pass.
const LINGER: Duration = Duration::from_millis(5);

/// How often an idle relay on PostgreSQL looks for rows that another relay claimed and gave
/// back: nobody rings for those.
const SWEEP: Duration = Duration::from_secs(1);

/// Ends after [`SWEEP`] on PostgreSQL; never on SQLite, whose one relay gives back nothing
/// it does not retry itself.
async fn sweep(backend: Backend) {
    match backend {
        Backend::Postgres => tokio::time::sleep(SWEEP).await,
        Backend::Sqlite => std::future::pending().await,
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Publishes every pending row this relay can claim.
async fn relay_pending(db: &Db, bus: &dyn EventBus, metrics: &Metrics) -> Result<(), RelayError> {
    loop {
        let relayed = match db.backend() {
            Backend::Postgres => relay_claimed_batch(db, bus, metrics).await?,
            Backend::Sqlite => relay_batch(db, bus, metrics).await?,
        };
        if (relayed as i64) < BATCH {
            return Ok(());
        }
    }
}

/// One batch on PostgreSQL: claimed, published and deleted in one transaction; returns its
/// size. Another relay's read skips the claimed rows until the commit deletes them, or a
/// rollback gives them back.
async fn relay_claimed_batch(db: &Db, bus: &dyn EventBus, metrics: &Metrics) -> Result<usize, RelayError> {
    let mut tx = db.begin().await?;
    let relayed = async {
        let (seqs, batch) = read_batch(&mut tx, " FOR UPDATE SKIP LOCKED").await?;
        if !batch.is_empty() {
            publish(bus, &batch, metrics).await?;
            delete(&mut tx, &seqs).await?;
        }
        Ok::<_, RelayError>(batch.len())
    }
    .await;
    match relayed {
        Ok(n) => {
            tx.commit().await?;
            Ok(n)
        }
        Err(e) => {
            // At once, not when the pool next uses the connection: another relay may take
            // the rows while this one backs off.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// One batch on SQLite: read, published, deleted, each statement on its own, so the one
/// connection is free for the service while the bus takes the batch; returns its size.
async fn relay_batch(db: &Db, bus: &dyn EventBus, metrics: &Metrics) -> Result<usize, RelayError> {
    let (seqs, batch) = read_batch(&mut *db.pool().acquire().await?, "").await?;
    if !batch.is_empty() {
        publish(bus, &batch, metrics).await?;
        delete(&mut *db.pool().acquire().await?, &seqs).await?;
    }
    Ok(batch.len())
}

/// The oldest [`BATCH`] rows (read with `lock`), as their `seq`s and their envelopes.
async fn read_batch(conn: &mut Conn, lock: &str) -> Result<(Vec<i64>, Vec<Envelope>), sqlx::Error> {
    let sql = format!("SELECT seq, event_id, event_type, body, headers FROM outbox ORDER BY seq LIMIT $1{lock}");
    let rows = sqlx::query(&sql).bind(BATCH).fetch_all(&mut *conn).await?;
    let seqs = rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<Vec<_>, _>>()?;
    let batch = rows
        .iter()
        .map(|r| {
            Ok(Envelope {
                event_id: r.try_get(1)?,
                event_type: r.try_get(2)?,
                body: r.try_get(3)?,
                headers: Envelope::headers_from_json(r.try_get(4)?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((seqs, batch))
}

async fn publish(bus: &dyn EventBus, batch: &[Envelope], metrics: &Metrics) -> Result<(), BusError> {
    bus.publish(batch).await?;
    for e in batch {
        metrics.count(EventCounter::Published, &e.event_type, 1);
    }
    Ok(())
}

/// Deletes exactly the rows published, not `seq <= last`: PostgreSQL hands out `seq` at
/// insert, not at commit, so a row below `last` whose transaction commits after the read
/// was not in the batch and must stay for the next pass (its commit wakes a relay).
async fn delete(conn: &mut Conn, seqs: &[i64]) -> Result<(), sqlx::Error> {
    for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("DELETE FROM outbox WHERE seq IN ({})", placeholders(chunk.len()));
        let mut q = sqlx::query(&sql);
        for seq in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// What a consumer does with the events of a batch, inside the batch's transaction. Returns
/// the events it raises. An `Err` rolls the whole batch back for redelivery.
pub trait Handler<P: Payload>: Send + Sync + 'static {
    /// One event.
    fn handle<'a>(
        &'a self,
        conn: &'a mut Conn,
        event: &'a Event<P>,
    ) -> BoxFuture<'a, Result<Vec<Event<P>>, sqlx::Error>>;

    /// Every fresh event of a batch, in delivery order. By default one [`Handler::handle`]
    /// after another, each in its consumer span; a handler that can do a batch in fewer
    /// statements (a view, say) overrides it and still reports one span per event.
    fn handle_all<'a>(
        &'a self,
        conn: &'a mut Conn,
        events: &'a [&'a Event<P>],
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Event<P>>, sqlx::Error>> {
        Box::pin(async move {
            let mut raised = Vec::new();
            for event in events {
                raised.extend(consumer_span(service, event, self.handle(&mut *conn, event)).await?);
            }
            Ok(raised)
        })
    }
}

/// Runs `fut`, the handling of `event`, in a consumer span that continues the event's trace.
pub async fn consumer_span<P: Payload, T, E>(
    service: &str,
    event: &Event<P>,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let (event_type, order_id) = (event.event_type(), event.order_id());
    if !crate::trace::enabled() {
        return fut.instrument(tracing::debug_span!("event", event_id = %event.event_id, event_type, order_id)).await;
    }
    let span = tracing::info_span!(
        target: crate::trace::SPANS,
        "event",
        otel.name = format!("{event_type} consume"),
        otel.kind = "consumer",
        service.name = service,
        event_id = %event.event_id,
        event_type,
        order_id,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(crate::trace::extract(&event.headers));
    let out = fut.instrument(span.clone()).await;
    if out.is_err() {
        span.record("otel.status_code", "error");
    }
    out
}

/// `read()` in `event`'s consumer span: for a handler that reads each event of a batch on
/// its own and then stores them all at once, so each event still has its span.
pub async fn read_in_span<P: Payload, T>(service: &str, event: &Event<P>, read: impl FnOnce() -> T) -> T {
    let Ok(value) = consumer_span::<P, T, std::convert::Infallible>(service, event, async { Ok(read()) }).await;
    value
}

/// Forgets the inbox entries handled more than `keep` ago (a few thousand per statement);
/// returns how many. `keep` must outlast every way the same event can arrive again: see
/// `docs/OPERATIONS.md`, "Retention".
pub async fn prune_inbox(db: &Db, keep: Duration) -> Result<u64, sqlx::Error> {
    const CHUNK: u64 = 5000;
    let cutoff = crate::time::format(crate::time::OffsetDateTime::now_utc() - keep);
    let mut removed = 0;
    loop {
        let n = sqlx::query(&format!(
            "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox WHERE handled_at < $1 LIMIT {CHUNK})"
        ))
        .bind(&cutoff)
        .execute(db.pool())
        .await?
        .rows_affected();
        removed += n;
        if n < CHUNK {
            return Ok(removed);
        }
    }
}

/// On PostgreSQL, lets the inbox and the outbox reuse the space of their deleted rows: both
/// are queues, each row deleted soon after it was written (pruned, or published), so their
/// size must follow their rows, not every row ever written. Left to autovacuum, they grow
/// for as long as it lags behind them or is off (as on CI's server): a soak measured the
/// inbox's bytes doubling in three minutes at a constant number of rows. A plain `VACUUM`
/// blocks no reader or writer; `SKIP_LOCKED` passes over a table another replica or
/// autovacuum is vacuuming right now. SQLite reuses a freed page without being asked.
pub async fn vacuum_queues(db: &Db) -> Result<(), sqlx::Error> {
    if db.backend() == Backend::Postgres {
        // Not a prepared statement: VACUUM cannot run inside a transaction block.
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) inbox, outbox").execute(db.pool()).await?;
    }
    Ok(())
}

/// Applies a batch: inbox claim, effect, raised events, one commit.
pub async fn handle_batch<P: Payload>(
    db: &Db,
    outbox: &Outbox,
    handler: &dyn Handler<P>,
    events: &[Event<P>],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut fresh_ids = claim(&mut tx, events).await?;
    let mut fresh = Vec::with_capacity(fresh_ids.len());
    for event in events {
        // `remove`: an event twice in one batch is handled once.
        if fresh_ids.remove(&event.event_id) {
            fresh.push(event);
        } else {
            tracing::debug!(event_id = %event.event_id, event_type = event.event_type(), "duplicate event skipped");
        }
    }
    let service = outbox.metrics.service();
    let raised = handler.handle_all(&mut tx, &fresh, &service).await?;
    enqueue(&mut tx, &raised).await?;
    tx.commit().await?;
    if !raised.is_empty() {
        outbox.wake();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::future::BoxFuture;
    use futures::FutureExt;
    use tokio::sync::Semaphore;
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use super::{Change, Outbox};
    use crate::bus::{BusError, EventBus, Subscription};
    use crate::db::Db;
    use crate::event::{Envelope, Event};
    use crate::testing::{eventually, Counted};

    const POSTGRES_ADDR: &str = "127.0.0.1:5432";
    const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";

    /// A bus for the relay to publish to. An up bus keeps every event published to it,
    /// repeats included; a down one refuses every batch, the first only once the test lets
    /// it ([`TestBus::answer_the_first`]), so the relay holds that batch's rows until then.
    struct TestBus {
        up: bool,
        published: Mutex<Vec<Envelope>>,
        attempts: AtomicUsize,
        first_answer: Semaphore,
    }

    impl TestBus {
        fn up() -> TestBus {
            TestBus {
                up: true,
                published: Mutex::default(),
                attempts: AtomicUsize::new(0),
                first_answer: Semaphore::new(0),
            }
        }

        fn down() -> TestBus {
            TestBus { up: false, ..TestBus::up() }
        }

        /// How many times each event id was published.
        fn times_published(&self) -> HashMap<String, usize> {
            let mut times = HashMap::new();
            for e in self.published.lock().unwrap().iter() {
                *times.entry(e.event_id.clone()).or_default() += 1;
            }
            times
        }

        fn answer_the_first(&self) {
            self.first_answer.add_permits(1);
        }
    }

    impl EventBus for TestBus {
        fn publish<'a>(&'a self, batch: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
            async move {
                if !self.up {
                    if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                        self.first_answer.acquire().await.expect("open").forget();
                    }
                    return Err(BusError::Unavailable("down".into()));
                }
                // A broker answers after a round trip: the other relay runs meanwhile.
                tokio::task::yield_now().await;
                self.published.lock().unwrap().extend(batch.iter().cloned());
                Ok(())
            }
            .boxed()
        }

        fn consume(&self, _: Subscription) -> BoxFuture<'static, ()> {
            async {}.boxed()
        }

        fn healthy(&self) -> BoxFuture<'_, bool> {
            let up = self.up;
            async move { up }.boxed()
        }

        fn lag<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Option<u64>> {
            async { None }.boxed()
        }

        fn compact<'a>(&'a self, _: &'a crate::bus::Readers) -> BoxFuture<'a, Result<u64, BusError>> {
            async { Ok(0) }.boxed()
        }

        fn tail(
            &self,
            _: tokio::sync::mpsc::Sender<Envelope>,
            cancel: tokio_util::sync::CancellationToken,
        ) -> BoxFuture<'static, ()> {
            async move { cancel.cancelled().await }.boxed()
        }
    }

    /// A database of its own on the local PostgreSQL server, dropped by [`Fresh::drop_now`].
    struct Fresh {
        name: String,
    }

    impl Fresh {
        /// A new, migrated database; `None` (the test is skipped) when no server answers,
        /// unless under CI, where a skip would report a test that never ran: there it fails.
        async fn postgres() -> Option<Fresh> {
            if !crate::testing::server_at(POSTGRES_ADDR, "PostgreSQL") {
                return None;
            }
            static N: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let name = format!("outbox_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
            let db = Db::connect_or_create(&format!("{POSTGRES_URL}/{name}"), 1).await.expect("a fresh database");
            db.migrate(&[]).await.expect("migrations");
            db.pool().close().await;
            Some(Fresh { name })
        }

        /// A pool of its own, as each replica of a service has.
        async fn replica(&self) -> Db {
            Db::connect_pooled(&format!("{POSTGRES_URL}/{}", self.name), 4).await.expect("a connection")
        }

        async fn drop_now(self) {
            let admin = Db::connect_pooled(&format!("{POSTGRES_URL}/postgres"), 1).await.expect("the server");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(admin.pool())
                .await
                .expect("database dropped");
            admin.pool().close().await;
        }
    }

    /// Replicas of one service: each with its database handle, its relay's doorbell, and its
    /// relay, running until `cancel`.
    struct Replicas {
        dbs: Vec<Db>,
        outboxes: Vec<Outbox>,
        relays: Vec<JoinHandle<()>>,
        cancel: CancellationToken,
    }

    impl Replicas {
        /// Starts a relay per database, the `i`th publishing to `buses[i]`.
        fn start(dbs: Vec<Db>, buses: &[Arc<dyn EventBus>]) -> Replicas {
            let cancel = CancellationToken::new();
            let outboxes: Vec<Outbox> = dbs.iter().map(|_| Outbox::default()).collect();
            let relays = dbs
                .iter()
                .zip(&outboxes)
                .zip(buses)
                .map(|((db, outbox), bus)| {
                    tokio::spawn(outbox.clone().run_relay(db.clone(), bus.clone(), "test", cancel.clone()))
                })
                .collect();
            Replicas { dbs, outboxes, relays, cancel }
        }

        async fn raise(&self, events: usize, per_commit: usize) -> Vec<String> {
            commit_events(&self.dbs, &self.outboxes, events, per_commit).await
        }

        async fn outbox_rows(&self) -> i64 {
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(self.dbs[0].pool()).await.expect("the outbox")
        }

        /// Cancels the relays and waits until each has stopped (after its last drain), so no
        /// publish is still on its way.
        async fn stop(self) {
            self.cancel.cancel();
            for relay in self.relays {
                relay.await.expect("the relay stopped");
            }
            for db in self.dbs {
                db.pool().close().await;
            }
        }
    }

    /// Commits `events` new events, `per_commit` to a transaction, taking turns among the
    /// replicas `dbs` (each commit rings its own replica's relay, `outboxes[i]`, only);
    /// returns their ids.
    async fn commit_events(dbs: &[Db], outboxes: &[Outbox], events: usize, per_commit: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(events);
        let numbers: Vec<i64> = (0..events as i64).collect();
        for (turn, chunk) in numbers.chunks(per_commit).enumerate() {
            let replica = turn % dbs.len();
            let tx = dbs[replica].begin().await.expect("a transaction");
            let mut change = Change::new(tx, outboxes[replica].clone());
            for &n in chunk {
                let event = Event::new("test", Counted::Happened { n });
                ids.push(event.event_id.clone());
                change.raise(event);
            }
            change.commit().await.expect("committed");
        }
        ids
    }

    async fn wait_until_published(bus: &TestBus, ids: &[String]) {
        eventually(Duration::from_secs(5), async || {
            let published = bus.times_published();
            ids.iter().all(|id| published.contains_key(id)).then_some(())
        })
        .await
        .expect("the events published");
    }

    /// Waits until `bus` has every one of `ids` and the outbox is empty.
    async fn wait_until_relayed(replicas: &Replicas, bus: &TestBus, ids: &[String]) {
        eventually(Duration::from_secs(20), async || {
            let published = bus.times_published();
            let missing = ids.iter().filter(|id| !published.contains_key(*id)).count();
            let left = replicas.outbox_rows().await;
            if missing == 0 && left == 0 {
                Ok(())
            } else {
                Err(format!("{missing} events not published, {left} rows in the outbox"))
            }
        })
        .await
        .expect("every event published");
    }

    /// Fails if any event of `times` was published more than once, naming a few.
    fn assert_no_repeats(times: &HashMap<String, usize>) {
        let repeated: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        let some = &repeated[..repeated.len().min(3)];
        assert!(repeated.is_empty(), "{} events published more than once, such as {some:?}", repeated.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_relays_on_one_postgres_database_publish_each_event_once() {
        let Some(fresh) = Fresh::postgres().await else { return };
        let bus = Arc::new(TestBus::up());
        let buses: [Arc<dyn EventBus>; 2] = [bus.clone(), bus.clone()];
        // A backlog both relays find on start, then commits while they run.
        let first = fresh.replica().await;
        let mut ids = commit_events(std::slice::from_ref(&first), &[Outbox::default()], 1_000, 50).await;
        let replicas = Replicas::start(vec![first, fresh.replica().await], &buses);
        ids.extend(replicas.raise(1_000, 10).await);

        wait_until_relayed(&replicas, &bus, &ids).await;
        replicas.stop().await;
        let times = bus.times_published();
        assert_eq!(times.len(), 2_000, "every event, nothing else");
        assert_no_repeats(&times);
        fresh.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_a_relay_failed_to_publish_are_published_by_another_unrung() {
        let Some(fresh) = Fresh::postgres().await else { return };
        let (down, up) = (Arc::new(TestBus::down()), Arc::new(TestBus::up()));
        let (first, second) = (fresh.replica().await, fresh.replica().await);
        // Commits that ring no relay: only a relay's start and its sweeps find them.
        let unrung = || [Outbox::default()];
        let ids = commit_events(std::slice::from_ref(&first), &unrung(), 20, 20).await;
        let failing = Replicas::start(vec![first], &[down.clone() as Arc<dyn EventBus>]);
        eventually(Duration::from_secs(5), async || (down.attempts.load(Ordering::SeqCst) > 0).then_some(()))
            .await
            .expect("the failing relay holding the rows");
        // The other relay starts while the rows are held: its first pass skips them and
        // takes only a row committed since; once that is published it is idle, unrung.
        let marker = commit_events(std::slice::from_ref(&second), &unrung(), 1, 1).await;
        let working = Replicas::start(vec![second], &[up.clone() as Arc<dyn EventBus>]);
        wait_until_published(&up, &marker).await;
        assert_eq!(up.times_published().len(), 1, "the held rows were skipped");

        down.answer_the_first();
        wait_until_relayed(&working, &up, &ids).await;
        failing.stop().await;
        working.stop().await;
        let times = up.times_published();
        assert_eq!(times.len(), 21);
        assert_no_repeats(&times);
        fresh.drop_now().await;
    }

    #[tokio::test]
    async fn a_relay_on_sqlite_publishes_each_event_once() {
        let dir = crate::testing::fresh_dir("outbox");
        let db = Db::sqlite_file(&dir, "outbox").await.expect("a database");
        db.migrate(&[]).await.expect("migrations");
        let bus = Arc::new(TestBus::up());
        let buses: [Arc<dyn EventBus>; 1] = [bus.clone()];
        let replicas = Replicas::start(vec![db], &buses);
        let ids = replicas.raise(1_500, 10).await;

        wait_until_relayed(&replicas, &bus, &ids).await;
        replicas.stop().await;
        let times = bus.times_published();
        assert_eq!(times.len(), 1_500);
        assert_no_repeats(&times);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_inbox_forgets_only_what_is_older_than_it_keeps() {
        let dir = crate::testing::fresh_dir("inbox");
        let db = Db::sqlite_file(&dir, "inbox").await.expect("a database");
        db.migrate(&[]).await.expect("migrations");
        let handled = |age: Duration| crate::time::format(crate::time::OffsetDateTime::now_utc() - age);
        for (id, age) in [("old-1", 7200), ("old-2", 3700), ("recent", 3500), ("now", 0)] {
            sqlx::query("INSERT INTO inbox (event_id, handled_at) VALUES ($1, $2)")
                .bind(id)
                .bind(handled(Duration::from_secs(age)))
                .execute(db.pool())
                .await
                .unwrap();
        }
        assert_eq!(super::prune_inbox(&db, Duration::from_secs(3600)).await.unwrap(), 2);
        let left: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM inbox ORDER BY event_id").fetch_all(db.pool()).await.unwrap();
        assert_eq!(left, ["now", "recent"]);
        assert_eq!(super::prune_inbox(&db, Duration::from_secs(3600)).await.unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
