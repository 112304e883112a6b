//! `cafe serve <service>`: one service (or the gateway) as its own process, configured from
//! the environment: its database (SQLite or PostgreSQL, created if missing and migrated on
//! start), the NATS JetStream broker, its port, and the URLs of the services it calls.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use contracts::ServiceName;
use platform::access_log::AccessLog;
use platform::embedded::EmbeddedBus;
use platform::nats::NatsBus;
use platform::{server, Db, EventBus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::services;
use crate::trust::Trust;

/// What this process verifies and signs with: the keys from the environment (auth on), or
/// nothing (auth off).
fn trust_of(args: &ServeArgs) -> anyhow::Result<Trust> {
    if !args.common.auth.is_on() {
        return Ok(Trust::off());
    }
    let k = &args.keys;
    let (Some(people), Some(services)) = (&k.token_public_keys, &k.service_public_keys) else {
        anyhow::bail!(
            "auth is on, so {} and {} must hold the public keys (PEM); or run with --auth off",
            crate::trust::TOKEN_PUBLIC_KEYS,
            crate::trust::SERVICE_PUBLIC_KEYS
        );
    };
    Trust::from_pem(&args.namespace, people, services, k.token_private_key.as_deref(), k.service_private_key.as_deref())
}

/// identity makes the first manager from `CAFE_MANAGER_PASSWORD`, if no manager exists yet.
async fn first_manager(args: &ServeArgs, db: &Db) -> anyhow::Result<()> {
    match &args.keys.manager_password {
        Some(password) => {
            if identity::ensure_manager(db, password).await.context("cannot make the first manager")? {
                tracing::info!("created the account 'manager' from CAFE_MANAGER_PASSWORD");
            }
        }
        None => tracing::warn!("CAFE_MANAGER_PASSWORD is not set: no first manager is made"),
    }
    Ok(())
}

/// NATS when its URL is given, else the embedded log under the data directory.
async fn bus_of(args: &ServeArgs) -> anyhow::Result<Arc<dyn EventBus>> {
    Ok(match &args.nats_url {
        Some(url) => Arc::new(NatsBus::connect(url, &args.namespace, args.common.retention.stream()).await?),
        None => {
            std::fs::create_dir_all(&args.data_dir).ok();
            Arc::new(EmbeddedBus::open(&args.data_dir).await.context("cannot open the embedded event log")?)
        }
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything serves: a SIGTERM from then on drains instead of killing.
    let stop_signal = crate::up::wait_for_stop_signal();
    let name = args.service.as_str();
    let _log_guards = platform::logging::init(&args.common.log_dir, name, &[], args.common.otlp_endpoint.as_deref())
        .with_context(|| format!("cannot write logs under {}", args.common.log_dir.display()))?;
    platform::failpoint::arm(args.common.resilience.failpoint.clone());
    let trust = trust_of(&args)?;
    let listener = server::bind(SocketAddr::new(args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    let (access, _access_guard) = AccessLog::open(&args.common.log_dir, name)?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let stop = args.common.stop();

    match args.service {
        ServiceName::Gateway => {
            let routes = gateway::default_routes(|svc| args.upstreams.of(svc));
            let (gw, app, health) =
                services::gateway_app(routes, args.common.auth.limits(), addr.port(), access, &trust.auth);
            tracker.spawn(gw.watch_readiness(cancel.clone()));
            tracker.spawn(server::serve(listener, app, health, cancel.clone(), stop));
        }
        ServiceName::Web => {
            let bus = bus_of(&args).await?;
            let mut wiring =
                args.common.wiring(&args.upstreams.payment_url, &args.upstreams.delivery_url, trust.clone())?;
            wiring.web = services::WebWiring {
                gateway_url: args.upstreams.gateway_url.trim_end_matches('/').to_string(),
                services: ServiceName::BEHIND_GATEWAY
                    .into_iter()
                    .filter(|s| *s != ServiceName::Web)
                    .map(|s| (s.as_str(), args.upstreams.of(s)))
                    .collect(),
            };
            services::launch(services::Launch {
                name: ServiceName::Web,
                group: name.to_string(),
                db: None,
                bus,
                wiring: &wiring,
                cancel: cancel.clone(),
                tracker: tracker.clone(),
                access: Some(access),
                listener,
                stop,
            })
            .await?;
        }
        service => {
            let db_url = args.database_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}?mode=rwc", args.data_dir.join(format!("{service}.db")).display())
            });
            if db_url.starts_with("sqlite:") {
                std::fs::create_dir_all(&args.data_dir).ok();
            }
            let db = Db::connect_or_create(&db_url, args.db_pool)
                .await
                .with_context(|| format!("cannot open the database of {service}"))?;
            let bus = bus_of(&args).await?;
            let wiring =
                args.common.wiring(&args.upstreams.payment_url, &args.upstreams.delivery_url, trust.clone())?;
            // Before serving: a client told identity is ready can sign in as the first manager.
            if service == ServiceName::Identity && trust.is_on() {
                db.migrate(identity::MIGRATIONS).await.context("cannot migrate identity's database")?;
                first_manager(&args, &db).await?;
            }
            tracker.spawn(platform::bus::compact_every(
                bus.clone(),
                services::readers(),
                wiring.retention.every,
                cancel.clone(),
            ));
            services::launch(services::Launch {
                name: service,
                group: name.to_string(),
                db: Some(db.clone()),
                bus,
                wiring: &wiring,
                cancel: cancel.clone(),
                tracker: tracker.clone(),
                access: Some(access),
                listener,
                stop,
            })
            .await?;
        }
    }
    tracker.close();
    println!("cafe serve: {name}=http://{addr}");
    tracing::info!(service = name, %addr, "serving");

    stop_signal.await;
    tracing::info!(service = name, "stopping: readiness down, draining in-flight requests");
    cancel.cancel();
    tracker.wait().await;
    platform::trace::shutdown().await;
    tracing::info!(service = name, "stopped");
    Ok(())
}
