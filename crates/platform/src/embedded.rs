//! The embedded, durable event log of the all-in-one cafe.
//!
//! Events are appended to a SQLite file (`events.db`), de-duplicated by event id. Each
//! consumer group keeps its offset in the same file and advances it only after its handler
//! committed, so a crash redelivers (and the consumer's inbox drops the repeat) but never
//! loses. Consumers are woken by the append itself through a watch channel: no polling.
//! Compaction ([`EventBus::compact`]) deletes what every consumer group is past.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::Row;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bus::{deliver_until_done, BusError, EventBus, Readers, Subscription};
use crate::db::{values_list, Db, Migration, ROWS_PER_STATEMENT};
use crate::event::Envelope;
use crate::shutdown::sleep_or_cancel;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 100,
        sql: "CREATE TABLE event_log (seq {{ID}}, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, body TEXT NOT NULL);
          CREATE TABLE consumer_offsets (consumer TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
    },
    Migration {
        // Headers (the trace context) travel beside the event's JSON.
        version: 101,
        sql: "ALTER TABLE event_log ADD COLUMN headers TEXT NOT NULL DEFAULT ''",
    },
];

const BATCH: i64 = 512;

#[derive(Clone)]
pub struct EmbeddedBus {
    db: Db,
    head: Arc<watch::Sender<i64>>,
}

impl EmbeddedBus {
    pub async fn open(dir: &Path) -> Result<EmbeddedBus, sqlx::Error> {
        let db = Db::sqlite_file(dir, "events").await?;
        db.migrate(MIGRATIONS).await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM event_log").fetch_one(db.pool()).await?;
        Ok(EmbeddedBus { db, head: Arc::new(watch::channel(head).0) })
    }

    async fn append(&self, batch: &[Envelope]) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO event_log (event_id, event_type, body, headers) VALUES {} ON CONFLICT (event_id) DO NOTHING",
                values_list(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q.bind(&e.event_id).bind(&e.event_type).bind(&e.body).bind(e.headers_json());
            }
            q.execute(&mut *tx).await?;
        }
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM event_log").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        self.head.send_replace(head);
        Ok(())
    }

    async fn offset(&self, group: &str) -> Result<i64, sqlx::Error> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM consumer_offsets WHERE consumer = $1")
            .bind(group)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// The next events after `seq`, with their sequence numbers.
    async fn read_after(&self, seq: i64) -> Result<Vec<(i64, Envelope)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, event_id, event_type, body, headers FROM event_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let envelope = Envelope {
                    event_id: r.try_get(1)?,
                    event_type: r.try_get(2)?,
                    body: r.try_get(3)?,
                    headers: Envelope::headers_from_json(r.try_get(4)?),
                };
                Ok((r.try_get(0)?, envelope))
            })
            .collect()
    }

    async fn commit_offset(&self, group: &str, seq: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO consumer_offsets (consumer, seq) VALUES ($1, $2) ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq")
            .bind(group)
            .bind(seq)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Deletes the events every reader's offset is past, keeping the last of them so the
    /// log's head never goes back; a reader with no offset yet keeps everything.
    async fn compact_log(&self, readers: &Readers) -> Result<u64, sqlx::Error> {
        let mut floor = i64::MAX;
        for (group, _) in readers {
            let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM consumer_offsets WHERE consumer = $1")
                .bind(group)
                .fetch_optional(self.db.pool())
                .await?;
            match seq {
                Some(seq) => floor = floor.min(seq),
                None => return Ok(0),
            }
        }
        if readers.is_empty() {
            return Ok(0);
        }
        // In slices, so the one write lock is never held for long.
        let mut removed = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM event_log WHERE seq IN (SELECT seq FROM event_log WHERE seq < $1 ORDER BY seq LIMIT 5000)",
            )
            .bind(floor)
            .execute(self.db.pool())
            .await?
            .rows_affected();
            removed += n;
            if n < 5000 {
                return Ok(removed);
            }
        }
    }

    async fn run_consumer(self, subscription: Subscription) {
        let Subscription { group, types, deliver, cancel } = subscription;
        let mut head = self.head.subscribe();
        let mut offset = loop {
            match self.offset(&group).await {
                Ok(o) => break o,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "cannot read consumer offset; retrying");
                    if sleep_or_cancel(Duration::from_millis(200), &cancel).await {
                        return;
                    }
                }
            }
        };
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let rows = match self.read_after(offset).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "cannot read the event log; retrying");
                    if sleep_or_cancel(Duration::from_millis(200), &cancel).await {
                        return;
                    }
                    continue;
                }
            };
            let Some(last) = rows.last().map(|r| r.0) else {
                // Caught up: sleep until something is appended beyond what we have seen.
                let seen = offset;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = head.wait_for(|h| *h > seen) => if r.is_err() { return },
                }
                continue;
            };
            let events: Vec<Envelope> =
                rows.into_iter().map(|(_, e)| e).filter(|e| types.contains(&e.event_type.as_str())).collect();
            if !deliver_until_done(&deliver, events, &group, &cancel).await {
                return;
            }
            while let Err(e) = self.commit_offset(&group, last).await {
                tracing::warn!(%group, error = %e, "cannot store consumer offset; retrying");
                if sleep_or_cancel(Duration::from_millis(200), &cancel).await {
                    return;
                }
            }
            offset = last;
        }
    }
}

impl EmbeddedBus {
    /// Reads on from `seen` (the head when the tail was asked for), keeping its place in
    /// memory only.
    async fn run_tail(
        self,
        mut head: watch::Receiver<i64>,
        mut seen: i64,
        into: mpsc::Sender<Envelope>,
        cancel: CancellationToken,
    ) {
        loop {
            let rows = match self.read_after(seen).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event log for a tail; retrying");
                    if sleep_or_cancel(Duration::from_millis(200), &cancel).await {
                        return;
                    }
                    continue;
                }
            };
            if rows.is_empty() {
                let at = seen;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = into.closed() => return,
                    r = head.wait_for(|h| *h > at) => if r.is_err() { return },
                }
                continue;
            }
            for (seq, envelope) in rows {
                seen = seq;
                if into.send(envelope).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl EventBus for EmbeddedBus {
    fn publish<'a>(&'a self, batch: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
        async move { self.append(batch).await.map_err(|e| BusError::Unavailable(e.to_string())) }.boxed()
    }

    fn consume(&self, subscription: Subscription) -> BoxFuture<'static, ()> {
        self.clone().run_consumer(subscription).boxed()
    }

    fn healthy(&self) -> BoxFuture<'_, bool> {
        async move { self.db.ping().await }.boxed()
    }

    fn lag<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Option<u64>> {
        async move {
            let offset = self.offset(group).await.ok()?;
            Some((*self.head.borrow() - offset).max(0) as u64)
        }
        .boxed()
    }

    fn compact<'a>(&'a self, readers: &'a Readers) -> BoxFuture<'a, Result<u64, BusError>> {
        async move { self.compact_log(readers).await.map_err(|e| BusError::Unavailable(e.to_string())) }.boxed()
    }

    fn tail(&self, into: mpsc::Sender<Envelope>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        // The head as it is now, not when the future first runs: "from now on" is this call.
        let mut head = self.head.subscribe();
        let seen = *head.borrow_and_update();
        self.clone().run_tail(head, seen, into, cancel).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::EmbeddedBus;
    use crate::bus::{EventBus, Readers};
    use crate::event::Envelope;

    fn events(from: usize, n: usize) -> Vec<Envelope> {
        (from..from + n)
            .map(|i| Envelope {
                event_id: format!("e{i}"),
                event_type: "Happened".into(),
                body: "{}".into(),
                headers: Default::default(),
            })
            .collect()
    }

    async fn rows(bus: &EmbeddedBus) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM event_log ORDER BY seq").fetch_all(bus.db.pool()).await.unwrap()
    }

    #[tokio::test]
    async fn compaction_drops_only_what_every_reader_is_past_and_the_head_never_goes_back() {
        let dir = crate::testing::fresh_dir("compaction");
        let bus = EmbeddedBus::open(&dir).await.unwrap();
        bus.publish(&events(1, 10)).await.unwrap();
        let readers: Readers = vec![("a".into(), vec!["Happened"]), ("b".into(), vec!["Happened"])];

        bus.commit_offset("a", 10).await.unwrap();
        assert_eq!(bus.compact(&readers).await.unwrap(), 0, "b has not read anything yet: all of it stays");
        bus.commit_offset("b", 4).await.unwrap();
        assert_eq!(bus.compact(&readers).await.unwrap(), 3, "before b's position");
        assert_eq!(rows(&bus).await, (4..=10).collect::<Vec<_>>());

        bus.commit_offset("b", 10).await.unwrap();
        assert_eq!(bus.compact(&readers).await.unwrap(), 6);
        assert_eq!(rows(&bus).await, [10], "the last event read stays: it holds the head");

        // Reopened (a restart), the log goes on after its head, and a reader at the head gets
        // what comes next.
        drop(bus);
        let bus = EmbeddedBus::open(&dir).await.unwrap();
        assert_eq!(*bus.head.borrow(), 10);
        bus.publish(&events(11, 1)).await.unwrap();
        let next = bus.read_after(10).await.unwrap();
        assert_eq!(next.iter().map(|(seq, e)| (*seq, e.event_id.as_str())).collect::<Vec<_>>(), [(11, "e11")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_tail_starts_at_the_head_and_sees_every_event_after_it_whoever_consumes() {
        let dir = crate::testing::fresh_dir("tail");
        let bus = EmbeddedBus::open(&dir).await.unwrap();
        bus.publish(&events(1, 3)).await.unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let (mut tails, mut tasks) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            tasks.push(tokio::spawn(bus.tail(tx, cancel.clone())));
            tails.push(rx);
        }
        bus.publish(&events(4, 2)).await.unwrap();
        for rx in &mut tails {
            let mut got = Vec::new();
            while got.len() < 2 {
                got.push(rx.recv().await.expect("an event").event_id);
            }
            assert_eq!(got, ["e4", "e5"], "each tail gets every new event and none from before");
        }
        cancel.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(bus.offset("tail").await.unwrap(), 0, "a tail keeps no offset");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
