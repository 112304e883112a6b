//! The order service: customers place and cancel orders here.
//!
//! Placing an order asks payment synchronously. So that no money is left without an order
//! and no order without its money, placement is a small saga:
//! 1. the order is inserted `Pending` (invisible to clients) and committed;
//! 2. payment is asked (`POST /payments`, idempotent per order id) under a timeout and a
//!    circuit breaker, and asked once more if the first attempt timed out (safe: the repeat
//!    returns the first attempt's payment);
//! 3. approved: the order becomes `Ordered` and `Ordered` is raised, in one transaction,
//!    if it is still `Pending`; refused or unreachable: the order is claimed for voiding
//!    (`Voiding`), payment is asked to void whatever it holds for the order
//!    (`POST /payments/voids`, which also bars a late charge), and the order is dropped.
//!
//! A crash or a failed void leaves a `Pending` or `Voiding` order behind; the reconciler
//! claims, voids and drops such orders once they are older than `settle_after`, so once
//! settled every order has its approved payment and every approved payment its order.
//! Claim before void: a placement slower than `settle_after` whose payment is approved
//! after the reconciler claimed its order cannot confirm it (it answers 503, as if payment
//! had failed), and an order confirmed first is not claimed, so its payment is not voided.
//!
//! Cancelling records the cancellation in delivery's ledger first (`POST /cancellations`,
//! idempotent per order id); only once it is recorded is the order deleted, raising
//! `OrderCanceled`. The intent is recorded before delivery is asked: the order is marked
//! `Cancelling` (still `Ordered` to clients), so an answer lost in either direction is
//! settled by the reconciler, which asks delivery again once the mark is older than
//! `settle_after`: recorded, the order is deleted; refused (delivered), it is `Ordered`
//! again; unreachable, it asks later. A mark is never undone but on delivery's refusal, and
//! delivery never records the cancellation of a delivered order, so an order is deleted only
//! if delivery recorded its cancellation and a recorded cancellation always deletes its order.
//!
//! With auth on, an order's price comes from the [`Menu`] (`GET /menu`), never from the
//! client, and a customer places, sees and cancels only orders under their own phone number.

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod menu;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use contracts::calls::{self, CancellationAnswer, Charge, PaymentAnswer, RecordCancellation, VoidPayment};
use contracts::PaymentStatus;
use platform::auth::Caller;
use platform::client::{CallError, ServiceClient};
use platform::Ctx;

use crate::domain::{NewOrder, Order};
pub use crate::error::Error;
pub use crate::menu::Menu;

pub const NAME: &str = "order";
pub use store::MIGRATIONS;

pub struct Config {
    pub payment: ServiceClient,
    pub delivery: ServiceClient,
    /// How old a `Pending` order must be before the reconciler settles it.
    pub settle_after: Duration,
    pub retry_after_secs: u64,
    /// Extra attempts at a payment call that timed out or broke after it was sent.
    pub payment_retries: u32,
    /// What is sold and at what price; with auth on, orders are priced from it.
    pub menu: Menu,
}

pub struct Service {
    pub ctx: Ctx,
    /// As given, but for `settle_after`, which is never shorter than the longest placement.
    pub config: Config,
    /// Rings when a placement left a pending order behind for the reconciler.
    unsettled: tokio::sync::Notify,
}

/// Starts the reconciler and returns the service's routes.
pub fn start(ctx: Ctx, config: Config) -> Router {
    let svc = Service::new(ctx, config);
    svc.ctx.tracker().spawn(svc.clone().reconcile_forever());
    api::router(svc)
}

impl Service {
    /// The service, its reconciler not started: [`start`] starts it; tests drive
    /// [`Service::reconcile_once`] by hand.
    pub fn new(ctx: Ctx, config: Config) -> Arc<Service> {
        // A placement or cancellation still in flight must never look abandoned: settle only
        // orders older than the longest either can take (every payment attempt timing out, or
        // the call to delivery), plus a margin.
        let placing = config.payment.timeout() * (config.payment_retries + 1);
        let longest = placing.max(config.delivery.timeout()) + Duration::from_secs(1);
        if config.settle_after < longest {
            tracing::info!(?longest, "settling pending orders only after the longest placement");
        }
        let config = Config { settle_after: config.settle_after.max(longest), ..config };
        Arc::new(Service { ctx, config, unsettled: tokio::sync::Notify::new() })
    }

    pub async fn place_order(&self, new: &NewOrder) -> Result<Order, Error> {
        let pending = store::insert_pending(&self.ctx, new).await?;
        // Until this placement settles, the reconciler watches (it sleeps again once no
        // pending order is left): whatever path leaves this order pending, it is settled.
        self.unsettled.notify_one();
        let charge = Charge { order_id: pending.id, phone_number: pending.phone_number.clone(), amt: pending.amt };
        let refused = match self.pay(&charge).await {
            Ok(payment) if payment.status == PaymentStatus::Approved => {
                platform::failpoint::hit("order-after-payment");
                match store::confirm(&self.ctx, pending.id).await {
                    Ok(Some(order)) => return Ok(order),
                    // The reconciler claimed it while we waited (a very late answer): it is
                    // settled as a failed payment, voided (again, harmlessly) below.
                    Ok(None) => None,
                    // Paid but not confirmed: the reconciler voids it.
                    Err(e) => {
                        self.unsettled.notify_one();
                        return Err(e.into());
                    }
                }
            }
            Ok(_) => None,
            Err(e) => Some(e),
        };
        let sent = !matches!(refused, Some(CallError::Unavailable { sent: false, .. } | CallError::CircuitOpen { .. }));
        if let Some(e) = &refused {
            tracing::warn!(order_id = pending.id, error = %e, "payment failed; order not placed");
        }
        if sent {
            self.void(pending.id).await;
        } else if let Err(e) = store::drop_pending(&self.ctx, pending.id).await {
            self.unsettled.notify_one();
            return Err(e.into());
        }
        let retry_after_secs = match refused {
            Some(CallError::CircuitOpen { retry_after, .. }) => retry_after.as_secs_f64().ceil() as u64,
            _ => self.config.retry_after_secs,
        };
        Err(Error::PaymentUnavailable { retry_after_secs })
    }

    /// Marks the order `Cancelling`, asks delivery to record the cancellation, then deletes
    /// the order, raising `OrderCanceled`. If delivery refuses, the order is `Ordered` again;
    /// if its answer does not come, the order stays `Cancelling` for the reconciler (or the
    /// customer's retry) to settle. An order already `Cancelling` is asked for again: the call
    /// is idempotent. An order the caller may not see (a customer's, to another customer) is
    /// not there for them: delivery is not asked, and the answer is `NotFound`.
    pub async fn cancel_order(&self, id: i64, caller: &Caller) -> Result<(), Error> {
        store::find(&self.ctx, id).await?.filter(|o| caller.may_see(&o.phone_number)).ok_or(Error::NotFound(id))?;
        if !store::mark_cancelling(&self.ctx, id).await? {
            return Err(Error::NotFound(id));
        }
        match self.settle_cancellation(id).await {
            Ok(Cancellation::Recorded) => Ok(()),
            Ok(Cancellation::Refused(why)) => Err(Error::CancellationRefused { order_id: id, why }),
            Ok(Cancellation::Unsettled) => {
                self.unsettled.notify_one();
                Err(Error::CancellationPending { retry_after_secs: self.config.retry_after_secs })
            }
            Err(e) => {
                self.unsettled.notify_one();
                Err(e.into())
            }
        }
    }

    /// Asks delivery to record the cancellation of a `Cancelling` order and settles the order
    /// by its answer: recorded, the order is deleted with `OrderCanceled` (unless someone
    /// else settled it first); refused, it is `Ordered` again; no answer, it stays.
    async fn settle_cancellation(&self, order_id: i64) -> Result<Cancellation, sqlx::Error> {
        let recorded = self
            .config
            .delivery
            .post::<_, CancellationAnswer>(calls::RECORD_CANCELLATION, &RecordCancellation { order_id })
            .await;
        match recorded {
            Ok(_) => {
                store::delete(&self.ctx, order_id).await?;
                Ok(Cancellation::Recorded)
            }
            Err(CallError::Refused { status, detail, .. }) if status == StatusCode::CONFLICT => {
                store::unmark_cancelling(&self.ctx, order_id).await?;
                Ok(Cancellation::Refused(detail.unwrap_or_else(|| "the delivery refused the cancellation".into())))
            }
            Err(e) => {
                tracing::warn!(order_id, error = %e, "cancellation not confirmed; the order stays cancelling");
                Ok(Cancellation::Unsettled)
            }
        }
    }

    /// Asks payment, once more after a timeout or a broken answer: payment is idempotent per
    /// order id, so a repeat can only return the payment the first attempt made, never
    /// charge twice. A refusal or an open circuit is not retried. The breaker counts the
    /// attempts as one call. If a repeat is not even sent (payment refused the connection),
    /// the earlier attempt's error is what counts: that attempt may have charged, so the
    /// caller must void.
    async fn pay(&self, charge: &Charge) -> Result<PaymentAnswer, CallError> {
        self.config.payment.post_retrying(calls::CHARGE, charge, self.config.payment_retries).await
    }

    /// Claims a pending order for voiding, voids its payment and drops the order. False if
    /// any step failed: the order stays (`Pending` or `Voiding`) for the reconciler. An order
    /// confirmed first is not claimed, and its payment is left alone.
    async fn void(&self, order_id: i64) -> bool {
        match store::abandon(&self.ctx, order_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(order_id, "confirmed or settled meanwhile; nothing to void");
                return true;
            }
            Err(e) => {
                tracing::warn!(order_id, error = %e, "cannot claim pending order");
                self.unsettled.notify_one();
                return false;
            }
        }
        match self.config.payment.post::<_, PaymentAnswer>(calls::VOID_PAYMENT, &VoidPayment { order_id }).await {
            Ok(_) => match store::drop_voided(&self.ctx, order_id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(order_id, error = %e, "cannot drop voided order");
                    self.unsettled.notify_one();
                    false
                }
            },
            Err(e) => {
                tracing::warn!(order_id, error = %e, "cannot void payment yet; the reconciler will");
                self.unsettled.notify_one();
                false
            }
        }
    }

    /// Settles what a crash, a failed void or an unanswered cancellation left in between: once
    /// at start, and then only while such orders remain (woken by a failed void or an
    /// unanswered cancellation), so an idle cafe does no work.
    /// Only orders older than `settle_after` are touched, so in-flight placements are never
    /// raced.
    async fn reconcile_forever(self: Arc<Self>) {
        let every = self.config.settle_after.max(Duration::from_millis(200));
        loop {
            let remaining = match self.reconcile_once().await {
                Ok(remaining) => remaining,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler pass failed");
                    1
                }
            };
            let cancelled = if remaining > 0 {
                platform::shutdown::sleep_or_cancel(every, self.ctx.cancel()).await
            } else {
                tokio::select! {
                    _ = self.ctx.cancel().cancelled() => true,
                    _ = self.unsettled.notified() => false,
                }
            };
            if cancelled {
                return;
            }
        }
    }

    /// One pass: claims, voids and drops the stale pending orders and the claimed ones, and
    /// asks delivery again about the orders marked `Cancelling` before `settle_after`.
    /// Returns how many pending, claimed or cancelling orders (stale or not) are still there.
    pub async fn reconcile_once(&self) -> Result<usize, sqlx::Error> {
        let before = time_ago(self.config.settle_after);
        for order_id in store::unsettled(&self.ctx, &before).await? {
            if self.void(order_id).await {
                tracing::info!(order_id, "settled a pending order left behind");
            }
        }
        for order_id in store::cancelling(&self.ctx, &before).await? {
            match self.settle_cancellation(order_id).await {
                Ok(Cancellation::Recorded) => tracing::info!(order_id, "finished a cancellation left unanswered"),
                Ok(Cancellation::Refused(why)) => tracing::info!(order_id, %why, "cancellation refused; order kept"),
                Ok(Cancellation::Unsettled) => {}
                Err(e) => tracing::warn!(order_id, error = %e, "cannot settle the cancellation yet"),
            }
        }
        store::count_unsettled(&self.ctx).await
    }
}

/// How delivery answered a request to record a cancellation, and so where the order is now.
enum Cancellation {
    /// Recorded: the order is deleted.
    Recorded,
    /// Refused (the order was delivered), with delivery's reason: the order is `Ordered`.
    Refused(String),
    /// No answer, or not reachable: the order stays `Cancelling`.
    Unsettled,
}

fn time_ago(d: Duration) -> String {
    platform::time::format(platform::time::OffsetDateTime::now_utc() - d)
}

#[cfg(test)]
mod tests;
