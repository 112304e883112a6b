//! What one running service holds: its database, the bus, its outbox doorbell, and the
//! shutdown signal shared by its server, relay and consumers.
//!
//! The fields are private: a service reads and writes through [`Ctx::db`], and raises
//! events only through a [`Change`] ([`Ctx::begin`]), which writes them to the outbox in the
//! transaction of the state change that raised them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{Deliver, EventBus, Subscription};
use crate::db::{Db, Migration};
use crate::dead_letter::{DeadLetters, Guarded, Policy, RetryFn};
use crate::event::{Event, Payload};
use crate::metrics::Metrics;
use crate::outbox::{handle_batch, prune_inbox, vacuum_queues, Change, Handler, Outbox};
use crate::shutdown::sleep_or_cancel;

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
    /// How a failing event is tried before it is parked.
    policy: Policy,
    /// The retry of this service's consumer, once it consumes.
    retry: Arc<OnceLock<RetryFn>>,
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
        ctx.count_gauge("cafe_outbox_backlog", "Events committed and not yet published.", "outbox");
        ctx.count_gauge(
            "cafe_dead_letters",
            "Events this service could not handle, parked until a manager retries them.",
            "dead_letters",
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

    /// A gauge of how many rows `table` (one of the platform's own) holds, read at scrape time.
    fn count_gauge(&self, name: &'static str, help: &'static str, table: &'static str) {
        let db = self.db.clone();
        self.metrics().gauge(
            name,
            help,
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move {
                    match sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(db.pool()).await {
                        Ok(n) => vec![(vec![], n)],
                        Err(e) => {
                            tracing::debug!(table, error = %e, "not counted; left out of this scrape");
                            vec![]
                        }
                    }
                })
            }),
        );
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
        Ok(Ctx { service, group, db, bus, outbox, cancel, tracker, policy: Policy::default(), retry: Arc::default() })
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
    /// as a `P`, or whose handling keeps failing, is parked ([`crate::dead_letter`]), never
    /// handed on as a default, never dropped, and never holds up the others.
    pub fn consume<P: Payload>(&self, types: Vec<&'static str>, handler: impl Handler<P>) {
        let guarded = Arc::new(Guarded {
            db: self.db.clone(),
            outbox: self.outbox.clone(),
            handler: Arc::new(handler),
            policy: self.policy,
            cancel: self.cancel.clone(),
        });
        let retrying = guarded.clone();
        let retry: RetryFn = Arc::new(move |event_id| {
            let guarded = retrying.clone();
            Box::pin(async move { guarded.retry(&event_id).await })
        });
        if self.retry.set(retry).is_err() {
            tracing::warn!(service = self.service, "a second consumer: retries of parked events go to the first");
        }
        let deliver: Deliver = Arc::new(move |batch| {
            let guarded = guarded.clone();
            Box::pin(async move { guarded.deliver(batch).await })
        });
        let subscription =
            Subscription { group: self.group.clone(), types: types.into(), deliver, cancel: self.cancel.clone() };
        self.tracker.spawn(self.bus.consume(subscription));
    }

    /// Tries and parks as `policy` says, for the consumers started after.
    pub fn with_dead_letter_policy(mut self, policy: Policy) -> Ctx {
        self.policy = policy;
        self
    }

    /// The events this service parked, for the admin endpoints.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters { db: self.db.clone(), retry: self.retry.clone() }
    }

    /// Every `every`, forgets the inbox entries older than `keep` (see
    /// [`crate::outbox::prune_inbox`]) and lets the inbox and outbox reuse their deleted
    /// rows' space ([`crate::outbox::vacuum_queues`]), until the service stops.
    pub fn prune_inbox_every(&self, every: Duration, keep: Duration) {
        let (db, cancel, service) = (self.db.clone(), self.cancel.clone(), self.service);
        self.tracker.spawn(async move {
            while !sleep_or_cancel(every, &cancel).await {
                match prune_inbox(&db, keep).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(service, removed = n, "inbox pruned"),
                    Err(e) => tracing::warn!(service, error = %e, "inbox not pruned; trying at the next round"),
                }
                if let Err(e) = vacuum_queues(&db).await {
                    tracing::warn!(service, error = %e, "inbox and outbox not vacuumed; trying at the next round");
                }
            }
        });
    }

    /// Hands `events` to `handler` as one batch, as the bus would: inbox, effect, outbox, one
    /// commit.
    pub async fn handle<P: Payload>(&self, handler: &dyn Handler<P>, events: &[Event<P>]) -> Result<(), sqlx::Error> {
        handle_batch(&self.db, &self.outbox, handler, events).await
    }
}
