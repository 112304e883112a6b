//! The table of services: each service crate's schema and how it is built from a running
//! context, by [`ServiceName`]. `cafe up` and `cafe serve` both wire services through here.

use std::sync::Arc;
use std::time::Duration;

use platform::breaker::Breaker;

use anyhow::Context;
use axum::Router;
use contracts::events::EventType;
use contracts::ServiceName;
use platform::access_log::AccessLog;
use platform::client::ServiceClient;
use platform::health::Health;
use platform::{server, Ctx, Db, EventBus, Migration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::trust::Trust;

/// What a service needs to know about the others and about resilience.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Whether tokens are checked, and the keys this process signs with.
    pub trust: Trust,
    /// Order's prices.
    pub menu: order::Menu,
    pub payment_url: String,
    pub delivery_url: String,
    pub call_timeout: Duration,
    pub settle_after: Duration,
    pub payment_delay_ms: Option<(u64, u64)>,
    pub retry_after_secs: u64,
    pub payment_retries: u32,
    pub breaker: platform::breaker::Settings,
    pub retention: Retention,
    /// Where the web's pages find the API and each service's health.
    pub web: WebWiring,
}

/// What the web service calls: the public API through the gateway (as any client), and each
/// service's own instances for the manager's health table.
#[derive(Debug, Clone, Default)]
pub struct WebWiring {
    pub gateway_url: String,
    pub services: Vec<(&'static str, Vec<String>)>,
}

/// How long a service's inbox remembers a handled event, and how often it forgets older ones.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub inbox: Duration,
    pub every: Duration,
}

/// A started service: its routes and the breakers of its outgoing calls (for health).
pub struct Started {
    pub router: Router,
    pub breakers: Vec<(&'static str, Arc<Breaker>)>,
}

impl Started {
    /// A service that calls no other.
    fn alone(router: Router) -> Started {
        Started { router, breakers: Vec::new() }
    }
}

/// A service crate as `cafe` runs it: the schema its database is migrated to, and how it
/// starts its background work (consumers, reconciler) and gives its routes.
pub struct Service {
    pub migrations: &'static [Migration],
    pub start: Start,
}

/// Starts a service from its running context.
pub type Start = fn(Ctx, &Wiring) -> Started;

/// The service crate behind `name`; none for the gateway, which has no database or events
/// and is served by `gateway::router`, and none for the web, which owns no data and reads
/// the bus without a group ([`launch`] starts it apart).
pub fn of(name: ServiceName) -> Option<Service> {
    let (migrations, start): (&'static [Migration], Start) = match name {
        ServiceName::Gateway | ServiceName::Web => return None,
        ServiceName::Order => (order::MIGRATIONS, start_order),
        ServiceName::Payment => (payment::MIGRATIONS, |ctx, w| {
            Started::alone(payment::start(ctx, payment::Config { delay_ms: w.payment_delay_ms }))
        }),
        ServiceName::Drink => (drink::MIGRATIONS, |ctx, _| Started::alone(drink::start(ctx))),
        ServiceName::Customercenter => {
            (customercenter::MIGRATIONS, |ctx, _| Started::alone(customercenter::start(ctx)))
        }
        ServiceName::Delivery => (delivery::MIGRATIONS, |ctx, _| Started::alone(delivery::start(ctx))),
        ServiceName::Deliverycenter => {
            (deliverycenter::MIGRATIONS, |ctx, _| Started::alone(deliverycenter::start(ctx)))
        }
        ServiceName::Identity => (identity::MIGRATIONS, start_identity),
    };
    Some(Service { migrations, start })
}

/// Order calls payment and delivery, each behind its own circuit breaker.
fn start_order(ctx: Ctx, w: &Wiring) -> Started {
    let payment = Arc::new(Breaker::new(w.breaker));
    let delivery = Arc::new(Breaker::new(w.breaker));
    let breakers = vec![("paymentCircuit", payment.clone()), ("deliveryCircuit", delivery.clone())];
    let router = order::start(
        ctx,
        order::Config {
            payment: ServiceClient::new(ServiceName::Payment.as_str(), &w.payment_url, w.call_timeout, payment)
                .with_credential(w.trust.credential(ServiceName::Order)),
            delivery: ServiceClient::new(ServiceName::Delivery.as_str(), &w.delivery_url, w.call_timeout, delivery)
                .with_credential(w.trust.credential(ServiceName::Order)),
            menu: w.menu.clone(),
            settle_after: w.settle_after,
            retry_after_secs: w.retry_after_secs,
            payment_retries: w.payment_retries,
        },
    );
    Started { router, breakers }
}

/// Identity signs people's tokens with the people key; without it (auth off) it signs with
/// a key of its own that nobody verifies, so its tokens open nothing.
fn start_identity(ctx: Ctx, w: &Wiring) -> Started {
    let issuer = w.trust.issuer().unwrap_or_else(|| {
        Arc::new(platform::auth::Issuer::new(&platform::auth::KeyPair::generate(), "auth-off", crate::trust::TOKEN_TTL))
    });
    Started::alone(identity::start(ctx, identity::Config { issuer }))
}

/// Everything one running service instance is made of.
pub struct Launch<'a> {
    pub name: ServiceName,
    pub group: String,
    /// None for the web, which has no database.
    pub db: Option<Db>,
    pub bus: Arc<dyn EventBus>,
    pub wiring: &'a Wiring,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub access: Option<AccessLog>,
    pub listener: TcpListener,
    pub stop: server::Stop,
}

/// The event types `name` consumes (none for the gateway, order and identity).
pub fn consumes(name: ServiceName) -> &'static [EventType] {
    match name {
        ServiceName::Payment => payment::events::CONSUMES,
        ServiceName::Drink => drink::events::CONSUMES,
        ServiceName::Delivery => delivery::events::CONSUMES,
        ServiceName::Customercenter => customercenter::events::CONSUMES,
        ServiceName::Deliverycenter => deliverycenter::events::CONSUMES,
        ServiceName::Gateway | ServiceName::Order | ServiceName::Identity | ServiceName::Web => &[],
    }
}

/// Every consumer group of the cafe and what it reads: an event may leave the bus only once
/// all of them have handled it.
pub fn readers() -> platform::bus::Readers {
    ServiceName::BEHIND_GATEWAY
        .into_iter()
        .filter(|s| !consumes(*s).is_empty())
        .map(|s| (s.as_str().to_string(), contracts::events::names(consumes(s))))
        .collect()
}

/// Migrates, starts the relay and consumers, and serves until `cancel`. The relay and
/// consumers stop only after the server has drained, so what the last requests commit is
/// still published. Returns once everything is spawned on `tracker`.
pub async fn launch(l: Launch<'_>) -> anyhow::Result<()> {
    if l.name == ServiceName::Web {
        return launch_web(l);
    }
    let service = of(l.name).with_context(|| format!("{} is not a service with a database and events", l.name))?;
    let db = l.db.clone().with_context(|| format!("{} needs a database", l.name))?;
    let background = CancellationToken::new();
    let ctx = Ctx::start(
        l.name.as_str(),
        l.group,
        db.clone(),
        service.migrations,
        l.bus.clone(),
        background.clone(),
        l.tracker.clone(),
    )
    .await
    .with_context(|| format!("cannot start {}", l.name))?;
    let metrics = ctx.metrics().clone();
    let dead_letters = ctx.dead_letters();
    ctx.prune_inbox_every(l.wiring.retention.every, l.wiring.retention.inbox);
    let started = (service.start)(ctx, l.wiring);
    let mut health = health_of(&db, &l.bus);
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
    let router = started.router.merge(platform::dead_letter::router(dead_letters));
    let app = server::app(router, &health, &metrics, l.access, &l.wiring.trust.auth);
    serve_then_stop(l.listener, app, health, (l.cancel, l.stop, &l.tracker), background);
    Ok(())
}

/// The web: its pages on the listener, its tail of the bus until the server has drained.
/// Ready when the broker is reachable.
fn launch_web(l: Launch<'_>) -> anyhow::Result<()> {
    let background = CancellationToken::new();
    let config = web::Config {
        gateway_url: l.wiring.web.gateway_url.clone(),
        services: l.wiring.web.services.clone(),
        readers: ServiceName::BEHIND_GATEWAY
            .into_iter()
            .filter(|s| !consumes(*s).is_empty())
            .map(|s| s.as_str())
            .collect(),
        auth: l.wiring.trust.auth.clone(),
    };
    let router = web::start(l.bus.clone(), config, background.clone(), &l.tracker);
    let bus = l.bus.clone();
    let health = Health::default().with_check(
        "broker",
        Arc::new(move || {
            let bus = bus.clone();
            Box::pin(async move { bus.healthy().await })
        }),
    );
    let metrics = platform::metrics::Metrics::new(ServiceName::Web.as_str());
    let app = server::app(router, &health, &metrics, l.access, &l.wiring.trust.auth);
    serve_then_stop(l.listener, app, health, (l.cancel, l.stop, &l.tracker), background);
    Ok(())
}

/// Serves `app` on `listener` until `cancel`, then ends the `background` work (relay,
/// consumers, the web's tail): they stop only after the server has drained, so what the last
/// requests commit is still published.
fn serve_then_stop(
    listener: TcpListener,
    app: Router,
    health: Health,
    (cancel, stop, tracker): (CancellationToken, server::Stop, &TaskTracker),
    background: CancellationToken,
) {
    let serving = server::serve(listener, app, health, cancel, stop);
    tracker.spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "server failed");
        }
        background.cancel();
    });
}

/// The gateway in front of `routes` (upstream calls bounded at 30 s, `limits` on clients),
/// as `cafe up` and `cafe serve gateway` both serve it on `port`: the app (health, metrics,
/// access log, `auth`) and the health it reports, and the gateway, whose readiness a lone
/// gateway process watches.
pub fn gateway_app(
    routes: Vec<gateway::Route>,
    limits: gateway::Limits,
    port: u16,
    access: AccessLog,
    auth: &platform::auth::Auth,
) -> (Arc<gateway::Gateway>, Router, Health) {
    let gw = Arc::new(gateway::Gateway::new(routes, Duration::from_secs(30), limits));
    let health = Health::default();
    let app = server::app(
        gateway::router(gw.clone(), port, public_api()),
        &health,
        &platform::metrics::Metrics::new(ServiceName::Gateway.as_str()),
        Some(access),
        auth,
    );
    (gw, app, health)
}

/// Each service's API as it describes it at its own `/openapi.json`.
pub fn descriptions() -> Vec<(ServiceName, serde_json::Value)> {
    use platform::openapi::document;
    vec![
        (ServiceName::Order, document(order::NAME, order::api::routes().into_openapi())),
        (ServiceName::Payment, document(payment::NAME, payment::api::routes().into_openapi())),
        (ServiceName::Drink, document(drink::NAME, drink::api::routes().into_openapi())),
        (ServiceName::Customercenter, document(customercenter::NAME, customercenter::api::routes().into_openapi())),
        (ServiceName::Delivery, document(delivery::NAME, delivery::api::routes().into_openapi())),
        (ServiceName::Deliverycenter, document(deliverycenter::NAME, deliverycenter::api::routes().into_openapi())),
        (ServiceName::Identity, document(identity::NAME, identity::api::routes().into_openapi())),
    ]
}

/// The public API through the gateway: every service's but the internal calls between them.
pub fn public_api() -> serde_json::Value {
    platform::openapi::public("cafe", descriptions().into_iter().map(|(_, doc)| doc))
}

/// `cafe openapi [SERVICE]`: the public API's description, or `service`'s own, on stdout.
pub fn print_description(service: Option<ServiceName>) -> anyhow::Result<()> {
    let doc = match service {
        None | Some(ServiceName::Gateway) => public_api(),
        Some(service) => descriptions()
            .into_iter()
            .find_map(|(s, doc)| (s == service).then_some(doc))
            .ok_or_else(|| anyhow::anyhow!("{service} serves pages, not an API: it has no description"))?,
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
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

#[cfg(test)]
mod tests {
    use contracts::ServiceName;

    #[test]
    fn every_service_behind_the_gateway_is_launchable_and_the_gateway_is_not() {
        for service in ServiceName::BEHIND_GATEWAY.into_iter().filter(|s| *s != ServiceName::Web) {
            let launchable = super::of(service).unwrap_or_else(|| panic!("{service} cannot be launched"));
            assert!(!launchable.migrations.is_empty(), "{service} has no schema");
        }
        assert!(super::of(ServiceName::Gateway).is_none());
    }
}
