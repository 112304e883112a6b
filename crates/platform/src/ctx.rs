//! What one running service holds: its database, the bus, its outbox doorbell, and the
//! shutdown signal shared by its server, relay and consumers.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::EventBus;
use crate::db::{Db, Migration, Tx};
use crate::event::Event;
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
        let ctx = Ctx { service, group, db, bus, outbox: Outbox::default(), cancel, tracker };
        ctx.tracker.spawn(ctx.outbox.clone().run_relay(ctx.db.clone(), ctx.bus.clone(), service, ctx.cancel.clone()));
        Ok(ctx)
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
            Box::pin(async move { handle_batch(&db, &outbox, handler.as_ref(), &events).await.map_err(|e| e.to_string()) })
        });
        self.tracker.spawn(self.bus.consume(self.group.clone(), types, deliver, self.cancel.clone()));
    }
}
