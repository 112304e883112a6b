//! Transactional outbox and idempotent inbox.
//!
//! A service writes its state change and the events it raises in one local transaction
//! ([`enqueue`]); after the commit it wakes the relay ([`Outbox::wake`]), which publishes the
//! pending rows in order and deletes them. A crash between publish and delete republishes;
//! the bus drops the duplicate by event id and the consumer's inbox drops what slips through.
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
use crate::bus::EventBus;
use crate::db::{placeholders, values_list, Conn, Db, Migration, Tx, ROWS_PER_STATEMENT};
use crate::event::{Envelope, Event, Payload, Undecodable};
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

    /// Publishes whatever is pending, then sleeps until woken, until `cancel`.
    ///
    /// A pass costs two statements whatever it carries. When the bell rang during a pass,
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

/// Publishes every pending row.
async fn relay_pending(db: &Db, bus: &dyn EventBus, metrics: &Metrics) -> Result<(), String> {
    loop {
        let rows = sqlx::query("SELECT seq, event_id, event_type, body, headers FROM outbox ORDER BY seq LIMIT $1")
            .bind(BATCH)
            .fetch_all(db.pool())
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(());
        }
        let seqs =
            rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
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
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| e.to_string())?;
        bus.publish(&batch).await.map_err(|e| e.to_string())?;
        for e in &batch {
            metrics.count(EventCounter::Published, &e.event_type, 1);
        }
        // Exactly the rows published, not `seq <= last`: PostgreSQL hands out `seq` at insert,
        // not at commit, so a row below `last` whose transaction commits after the SELECT was
        // not in this batch and must stay for the next pass (its commit wakes the relay).
        for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!("DELETE FROM outbox WHERE seq IN ({})", placeholders(chunk.len()));
            let mut q = sqlx::query(&sql);
            for seq in chunk {
                q = q.bind(*seq);
            }
            q.execute(db.pool()).await.map_err(|e| e.to_string())?;
        }
        if (rows.len() as i64) < BATCH {
            return Ok(());
        }
    }
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

/// The events of `batch` a handler of `P` can read, in order. The others are an explicit
/// outcome: logged with their id, counted in `cafe_events_rejected_total`, and
/// acknowledged with the batch, since no redelivery makes them readable.
pub fn decode_all<P: Payload>(batch: &[Envelope], metrics: &Metrics) -> Vec<Event<P>> {
    batch
        .iter()
        .filter_map(|envelope| match envelope.decode::<P>() {
            Ok(event) => Some(event),
            Err(why) => {
                tracing::error!(event_id = %envelope.event_id, event_type = %envelope.event_type, error = %why, "event rejected");
                // An unknown type is not a label: the bus may carry anything.
                let label = match why {
                    Undecodable::UnknownType(_) => "unknown",
                    Undecodable::Unreadable { .. } => envelope.event_type.as_str(),
                };
                metrics.count(EventCounter::Rejected, label, 1);
                None
            }
        })
        .collect()
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
