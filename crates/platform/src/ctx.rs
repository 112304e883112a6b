//! What one running service holds: its database, the bus, its outbox doorbell, and the
//! shutdown signal shared by its server, relay and consumers.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::EventBus;
use crate::db::{Db, Migration, Tx};
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
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(&db.pool).await.unwrap_or(-1);
                    vec![(String::new(), n as f64)]
                })
            }),
        );
        let (lag_bus, lag_group) = (bus.clone(), group.clone());
        metrics.gauge(
            "cafe_consumer_lag",
            "Events on the bus this service's consumer group has not handled yet.",
            Arc::new(move || {
                let (bus, group) = (lag_bus.clone(), lag_group.clone());
                Box::pin(async move { bus.lag(&group).await.map(|n| vec![(String::new(), n as f64)]).unwrap_or_default() })
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
