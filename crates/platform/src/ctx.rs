//! What one running service holds: its database, the bus, its outbox doorbell, and the
//! shutdown signal shared by its server, relay and consumers.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::EventBus;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::{Any, FromRow};

use crate::db::{Backend, Db, Migration, Tx};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::outbox::{handle_batch, Handler, Outbox};

#[derive(Clone)]
pub struct Ctx {
    pub service: &'static str,
    /// This service's consumer group on the bus: `<namespace><service>`.
    pub group: String,
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
    pub outbox: Outbox,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

impl Ctx {
    /// Migrates the service's database and starts its outbox relay.
    pub async fn start(
        service: &'static str,
        group: String,
        db: Db,
        migrations: &[Migration],
        bus: Arc<dyn EventBus>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<Ctx, sqlx::Error> {
        db.migrate(migrations).await?;
        let metrics = Metrics::new(service);
        let backlog_db = db.clone();
        metrics.gauge(
            "cafe_outbox_backlog",
            "Events committed and not yet published.",
            Arc::new(move || {
                let db = backlog_db.clone();
                Box::pin(async move {
                    match sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(&db.pool).await {
                        Ok(n) => vec![(vec![], n)],
                        Err(e) => {
                            tracing::debug!(error = %e, "outbox backlog not read; left out of this scrape");
                            vec![]
                        }
                    }
                })
            }),
        );
        let (lag_bus, lag_group) = (bus.clone(), group.clone());
        metrics.gauge(
            "cafe_consumer_lag",
            "Events on the bus this service's consumer group has not handled yet.",
            Arc::new(move || {
                let (bus, group) = (lag_bus.clone(), lag_group.clone());
                Box::pin(async move { bus.lag(&group).await.map(|n| vec![(vec![], n as i64)]).unwrap_or_default() })
            }),
        );
        let ctx = Ctx { service, group, db, bus, outbox: Outbox::new(metrics), cancel, tracker };
        ctx.tracker.spawn(ctx.outbox.clone().run_relay(ctx.db.clone(), ctx.bus.clone(), service, ctx.cancel.clone()));
        Ok(ctx)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.outbox.metrics
    }

    /// A new event from this service.
    pub fn event(&self, event_type: &str, payload: &impl serde::Serialize) -> Event {
        Event::new(self.service, event_type, payload)
    }

    /// One state change and the events it raises, committed together. `sql` is a single
    /// `INSERT`, `UPDATE` or `DELETE ... RETURNING` of at most one row, `$1`.. bound by
    /// `bind` (owned values); `raise` gives the events of the row it returned (none when it
    /// returned none). Returns that row.
    ///
    /// On PostgreSQL this is one statement, so one round trip and one commit: the change
    /// runs in a `WITH` and the outbox insert beside it, which needs the events before the
    /// row exists. So `raise` is given `expected`, the row as the change will return it, and
    /// the statement sets each event's `id` field (where it has one) to the returned row's
    /// `id`, which the database may only now have generated. On SQLite, whose round trips
    /// are in-process, a transaction: the change, then `raise` on the row it returned.
    pub async fn change<T>(
        &self,
        sql: &str,
        bind: impl for<'a> FnOnce(QueryAs<'a, Any, T, AnyArguments<'a>>) -> QueryAs<'a, Any, T, AnyArguments<'a>>,
        expected: T,
        raise: impl Fn(&T) -> Vec<Event>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        if self.db.backend == Backend::Sqlite {
            let mut tx = self.db.begin().await?;
            let Some(row) = bind(sqlx::query_as::<_, T>(sql)).fetch_optional(&mut *tx).await? else {
                return Ok(None);
            };
            let events = raise(&row);
            crate::outbox::enqueue(&mut tx, &events).await?;
            self.commit(tx).await?;
            return Ok(Some(row));
        }
        let events = raise(&expected);
        let first = highest_placeholder(sql) + 1;
        let values: Vec<String> = (0..events.len())
            .map(|i| {
                let n = first + 3 * i;
                format!("(${n}, ${}, ${})", n + 1, n + 2)
            })
            .collect();
        let wrapped = if events.is_empty() {
            sql.to_string()
        } else {
            format!(
                "WITH changed AS ({sql}),
                 raised AS (INSERT INTO outbox (event_id, event_type, body)
                   SELECT v.event_id, v.event_type, jsonb_set(v.body::jsonb, '{{id}}', to_jsonb(changed.id), false)::text
                   FROM changed, (VALUES {}) AS v (event_id, event_type, body))
                 SELECT * FROM changed",
                values.join(", ")
            )
        };
        let mut query = bind(sqlx::query_as::<_, T>(&wrapped));
        for e in &events {
            query = query.bind(e.event_id.clone()).bind(e.event_type.clone()).bind(e.to_json());
        }
        let row = query.fetch_optional(&self.db.pool).await?;
        if row.is_some() && !events.is_empty() {
            self.outbox.wake();
        }
        Ok(row)
    }

    /// Commits a transaction that may hold outbox rows, then wakes the relay.
    pub async fn commit(&self, tx: Tx) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Consumes `types` as this service's consumer group; each event of the batch goes
    /// through the inbox and `handler` inside one transaction.
    pub fn consume(&self, types: &'static [&'static str], handler: impl Handler) {
        let handler = Arc::new(handler);
        let (db, outbox) = (self.db.clone(), self.outbox.clone());
        let deliver: crate::bus::Deliver = Arc::new(move |events| {
            let (db, outbox, handler) = (db.clone(), outbox.clone(), handler.clone());
            Box::pin(async move {
                handle_batch(&db, &outbox, handler.as_ref(), &events).await.map_err(|e| e.to_string())?;
                for e in &events {
                    outbox.metrics.count("cafe_events_handled_total", &e.event_type, 1);
                }
                Ok(())
            })
        });
        self.tracker.spawn(self.bus.consume(self.group.clone(), types, deliver, self.cancel.clone()));
    }
}

/// The highest `$n` placeholder in `sql` (0 if none).
fn highest_placeholder(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_highest_placeholder() {
        assert_eq!(super::highest_placeholder("UPDATE t SET a = $1 WHERE id = $12 AND b = $3"), 12);
        assert_eq!(super::highest_placeholder("SELECT 1"), 0);
    }
}
