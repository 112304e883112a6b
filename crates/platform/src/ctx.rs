//! What one running service holds: its database, the bus, its outbox doorbell, and the
//! shutdown signal shared by its server, relay and consumers.
//!
//! The fields are private: a service reads and writes through [`Ctx::db`], and raises
//! events only through a [`Change`] ([`Ctx::begin`]), which writes them to the outbox in the
//! transaction of the state change that raised them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{Deliver, EventBus, Subscription};
use crate::db::{Db, Migration};
use crate::event::{Event, Payload};
use crate::metrics::{EventCounter, Metrics};
use crate::outbox::{decode_all, handle_batch, Change, Handler, Outbox};

#[derive(Clone)]
pub struct Ctx {
    service: &'static str,
    /// This service's consumer group on the bus: `<namespace><service>`.
    group: String,
    db: Db,
    bus: Arc<dyn EventBus>,
    outbox: Outbox,
    cancel: CancellationToken,
    tracker: TaskTracker,
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
        let ctx = Ctx::without_relay(
            service,
            group,
            db,
            migrations,
            bus,
            Outbox::new(Metrics::new(service)),
            cancel,
            tracker,
        )
        .await?;
        let backlog_db = ctx.db.clone();
        ctx.metrics().gauge(
            "cafe_outbox_backlog",
            "Events committed and not yet published.",
            Arc::new(move || {
                let db = backlog_db.clone();
                Box::pin(async move {
                    match sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(db.pool()).await {
                        Ok(n) => vec![(vec![], n)],
                        Err(e) => {
                            tracing::debug!(error = %e, "outbox backlog not read; left out of this scrape");
                            vec![]
                        }
                    }
                })
            }),
        );
        let (lag_bus, lag_group) = (ctx.bus.clone(), ctx.group.clone());
        ctx.metrics().gauge(
            "cafe_consumer_lag",
            "Events on the bus this service's consumer group has not handled yet.",
            Arc::new(move || {
                let (bus, group) = (lag_bus.clone(), lag_group.clone());
                Box::pin(async move { bus.lag(&group).await.map(|n| vec![(vec![], n as i64)]).unwrap_or_default() })
            }),
        );
        ctx.tracker.spawn(ctx.outbox.clone().run_relay(ctx.db.clone(), ctx.bus.clone(), service, ctx.cancel.clone()));
        Ok(ctx)
    }

    /// A migrated context whose outbox nobody relays: for a service's own tests, which read
    /// what it raised straight from the outbox.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn without_relay(
        service: &'static str,
        group: String,
        db: Db,
        migrations: &[Migration],
        bus: Arc<dyn EventBus>,
        outbox: Outbox,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<Ctx, sqlx::Error> {
        db.migrate(migrations).await?;
        Ok(Ctx { service, group, db, bus, outbox, cancel, tracker })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The service's database, for reads and for writes that raise no event.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// Cancelled when the service stops: background work ends with it.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Where background work is spawned, so stopping waits for it.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn metrics(&self) -> &Metrics {
        &self.outbox.metrics
    }

    /// A new event from this service.
    pub fn event<P: Payload>(&self, payload: P) -> Event<P> {
        Event::new(self.service, payload)
    }

    /// Begins a state change whose events commit with it.
    pub async fn begin<P: Payload>(&self) -> Result<Change<P>, sqlx::Error> {
        Ok(Change::new(self.db.begin().await?, self.outbox.clone()))
    }

    /// Consumes `types` as this service's consumer group; each event of the batch goes
    /// through the inbox and `handler` inside one transaction. An event that cannot be read
    /// as a `P` is rejected (logged and counted), never handed on as a default.
    pub fn consume<P: Payload>(&self, types: Vec<&'static str>, handler: impl Handler<P>) {
        let handler = Arc::new(handler);
        let (db, outbox) = (self.db.clone(), self.outbox.clone());
        let deliver: Deliver = Arc::new(move |batch| {
            let (db, outbox, handler) = (db.clone(), outbox.clone(), handler.clone());
            Box::pin(async move {
                let events = decode_all::<P>(&batch, &outbox.metrics);
                handle_batch(&db, &outbox, handler.as_ref(), &events).await.map_err(|e| e.to_string())?;
                for e in &events {
                    outbox.metrics.count(EventCounter::Handled, e.event_type(), 1);
                }
                Ok(())
            })
        });
        let subscription =
            Subscription { group: self.group.clone(), types: types.into(), deliver, cancel: self.cancel.clone() };
        self.tracker.spawn(self.bus.consume(subscription));
    }

    /// Hands `events` to `handler` as one batch, as the bus would: inbox, effect, outbox, one
    /// commit.
    pub async fn handle<P: Payload>(&self, handler: &dyn Handler<P>, events: &[Event<P>]) -> Result<(), sqlx::Error> {
        handle_batch(&self.db, &self.outbox, handler, events).await
    }
}
