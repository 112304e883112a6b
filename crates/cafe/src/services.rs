//! The table of services: their names in port order, their schemas, and how each is built
//! from a running context. `cafe up` and `cafe serve` both wire services through here.

use std::sync::Arc;
use std::time::Duration;

use platform::breaker::Breaker;

use anyhow::Context;
use axum::Router;
use platform::access_log::AccessLog;
use platform::client::ServiceClient;
use platform::health::Health;
use platform::{server, Ctx, Db, EventBus, Migration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// In port order: base+1 .. base+6.
pub const SERVICES: [&str; 6] = ["order", "payment", "drink", "customercenter", "delivery", "deliverycenter"];

/// What a service needs to know about the others and about resilience.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub payment_url: String,
    pub delivery_url: String,
    pub call_timeout: Duration,
    pub settle_after: Duration,
    pub payment_delay_ms: Option<(u64, u64)>,
    pub retry_after_secs: u64,
    pub payment_retries: u32,
    pub breaker: platform::breaker::Settings,
}

/// A started service: its routes and the breakers of its outgoing calls (for health).
pub struct Started {
    pub router: Router,
    pub breakers: Vec<(&'static str, Arc<Breaker>)>,
}

pub fn migrations(service: &str) -> &'static [Migration] {
    match service {
        "order" => order::MIGRATIONS,
        "payment" => payment::MIGRATIONS,
        "drink" => drink::MIGRATIONS,
        "customercenter" => customercenter::MIGRATIONS,
        "delivery" => delivery::MIGRATIONS,
        "deliverycenter" => deliverycenter::MIGRATIONS,
        _ => &[],
    }
}

pub fn static_name(service: &str) -> Option<&'static str> {
    SERVICES.iter().copied().find(|s| *s == service)
}

/// Starts the service's background work (consumers, reconciler) and returns its routes.
pub fn start(ctx: Ctx, w: &Wiring) -> Started {
    let mut breakers = Vec::new();
    let router = match ctx.service() {
        "order" => {
            let payment = Arc::new(Breaker::new(w.breaker));
            let delivery = Arc::new(Breaker::new(w.breaker));
            breakers.push(("paymentCircuit", payment.clone()));
            breakers.push(("deliveryCircuit", delivery.clone()));
            order::start(
                ctx,
                order::Config {
                    payment: ServiceClient::new("payment", &w.payment_url, w.call_timeout, payment),
                    delivery: ServiceClient::new("delivery", &w.delivery_url, w.call_timeout, delivery),
                    settle_after: w.settle_after,
                    retry_after_secs: w.retry_after_secs,
                    payment_retries: w.payment_retries,
                },
            )
        }
        "payment" => payment::start(ctx, payment::Config { delay_ms: w.payment_delay_ms }),
        "drink" => drink::start(ctx),
        "customercenter" => customercenter::start(ctx),
        "delivery" => delivery::start(ctx),
        "deliverycenter" => deliverycenter::start(ctx),
        other => unreachable!("unknown service {other}"),
    };
    Started { router, breakers }
}

/// Everything one running service instance is made of.
pub struct Launch<'a> {
    pub name: &'static str,
    pub group: String,
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
    pub wiring: &'a Wiring,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub access: Option<AccessLog>,
    pub listener: TcpListener,
    pub stop: server::Stop,
}

/// Migrates, starts the relay and consumers, and serves until `cancel`. The relay and
/// consumers stop only after the server has drained, so what the last requests commit is
/// still published. Returns once everything is spawned on `tracker`.
pub async fn launch(l: Launch<'_>) -> anyhow::Result<()> {
    let background = CancellationToken::new();
    let ctx = Ctx::start(
        l.name,
        l.group,
        l.db.clone(),
        migrations(l.name),
        l.bus.clone(),
        background.clone(),
        l.tracker.clone(),
    )
    .await
    .with_context(|| format!("cannot start {}", l.name))?;
    let metrics = ctx.metrics().clone();
    let started = start(ctx, l.wiring);
    let mut health = health_of(&l.db, &l.bus);
    for (name, breaker) in started.breakers {
        metrics.gauge(
            "cafe_circuit_breaker_state",
            "0 closed, 1 open, 2 half-open; calls and failures in the window.",
            {
                let breaker = breaker.clone();
                let dependency = name.trim_end_matches("Circuit").to_string();
                Arc::new(move || {
                    let (b, d) = (breaker.clone(), dependency.clone());
                    Box::pin(async move { vec![(vec![("dependency", d)], b.phase() as i64)] })
                })
            },
        );
        health = health.with_detail(name, Arc::new(move || breaker.snapshot()));
    }
    let app = server::app(started.router, &health, &metrics, l.access);
    let serving = server::serve(l.listener, app, health, l.cancel, l.stop);
    l.tracker.spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "server failed");
        }
        background.cancel();
    });
    Ok(())
}

/// Readiness: the service's database and the broker answer.
pub fn health_of(db: &Db, bus: &Arc<dyn EventBus>) -> Health {
    let (db, bus) = (db.clone(), bus.clone());
    Health::default()
        .with_check(
            "db",
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move { db.ping().await })
            }),
        )
        .with_check(
            "broker",
            Arc::new(move || {
                let bus = bus.clone();
                Box::pin(async move { bus.healthy().await })
            }),
        )
}
