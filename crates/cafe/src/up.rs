//! `cafe up`: the whole cafe in one process.
//!
//! Every listener is bound first (so `--port 0` works and a taken port fails before anything
//! runs), then each service gets its own SQLite file, its own context (outbox relay,
//! consumers) and its own server, all on the embedded event log. Services still call each
//! other over real HTTP. Each service can be stopped and started again while the rest keep
//! running (`POST /admin/services/{name}/stop|start` on the gateway), which is how one
//! takes delivery down to watch the cafe cope.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use platform::access_log::AccessLog;
use platform::embedded::EmbeddedBus;
use platform::health::Health;
use platform::{server, Db, EventBus, Problem};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::UpArgs;
use crate::services::{self, Wiring, SERVICES};

/// One service of the all-in-one cafe, startable and stoppable.
struct Slot {
    name: &'static str,
    addr: SocketAddr,
    db: Db,
    access: AccessLog,
    running: Mutex<Option<(CancellationToken, TaskTracker)>>,
}

struct Cafe {
    slots: HashMap<&'static str, Slot>,
    bus: Arc<dyn EventBus>,
    wiring: Wiring,
    root: CancellationToken,
    stop: server::Stop,
}

impl Cafe {
    async fn start(&self, slot: &Slot, listener: Option<TcpListener>) -> anyhow::Result<bool> {
        let mut running = slot.running.lock().await;
        if running.is_some() {
            return Ok(false);
        }
        let cancel = self.root.child_token();
        let tracker = TaskTracker::new();
        services::launch(services::Launch {
            name: slot.name,
            group: slot.name.to_string(),
            db: slot.db.clone(),
            bus: self.bus.clone(),
            wiring: &self.wiring,
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            access: Some(slot.access.clone()),
            listener: match listener {
                Some(l) => l,
                None => server::bind(slot.addr).await?,
            },
            stop: self.stop,
        })
        .await?;
        tracker.close();
        *running = Some((cancel, tracker));
        tracing::info!(service = slot.name, addr = %slot.addr, "service started");
        Ok(true)
    }

    async fn stop(&self, slot: &Slot) -> bool {
        let mut running = slot.running.lock().await;
        let Some((cancel, tracker)) = running.take() else { return false };
        cancel.cancel();
        tracker.wait().await;
        tracing::info!(service = slot.name, "service stopped");
        true
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    platform::failpoint::arm(args.resilience.failpoint.clone());
    if let Some(endpoint) = &args.common.otlp_endpoint {
        platform::trace::export_to(endpoint);
    }
    let mut names = vec!["gateway"];
    names.extend(SERVICES);
    let _log_guards = platform::logging::init(&args.common.log_dir, "cafe", &names)
        .with_context(|| format!("cannot write logs under {}", args.common.log_dir.display()))?;

    // Bind everything first: a taken port fails here, before anything runs.
    let port_of = |i: u16| if args.port == 0 { 0 } else { args.port.saturating_add(i) };
    let gateway_listener = server::bind(SocketAddr::new(args.host, port_of(0))).await?;
    let mut listeners = Vec::new();
    for (i, name) in SERVICES.iter().enumerate() {
        listeners.push((*name, server::bind(SocketAddr::new(args.host, port_of(i as u16 + 1))).await?));
    }
    let local = |addr: SocketAddr| {
        let ip = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let ip = if ip.contains(':') { format!("[{ip}]") } else { ip };
        format!("http://{ip}:{}", addr.port())
    };
    let urls: HashMap<&str, String> =
        listeners.iter().map(|(n, l)| (*n, local(l.local_addr().expect("bound")))).collect();

    let bus: Arc<dyn EventBus> = Arc::new(
        EmbeddedBus::open(&args.data_dir)
            .await
            .with_context(|| format!("cannot open the event log under {}", args.data_dir.display()))?,
    );
    let wiring = args.resilience.wiring(&urls["payment"], &urls["delivery"]);
    let root = CancellationToken::new();
    let mut slots = HashMap::new();
    let mut guards = Vec::new();
    for (name, listener) in &listeners {
        let db = Db::sqlite_file(&args.data_dir, name)
            .await
            .with_context(|| format!("cannot open {name}'s database under {}", args.data_dir.display()))?;
        let (access, guard) = AccessLog::open(&args.common.log_dir, name)?;
        guards.push(guard);
        slots.insert(*name, Slot { name, addr: listener.local_addr()?, db, access, running: Mutex::new(None) });
    }
    let cafe = Arc::new(Cafe { slots, bus, wiring, root: root.clone(), stop: args.common.stop() });
    for (name, listener) in listeners {
        cafe.start(&cafe.slots[name], Some(listener)).await?;
    }

    // The gateway, with the admin switch of the all-in-one mode.
    let gateway_addr = gateway_listener.local_addr()?;
    let gw = Arc::new(gateway::Gateway::new(
        gateway::default_routes(|svc| vec![urls[svc].clone()]),
        Duration::from_secs(30),
    ));
    let (gw_access, guard) = AccessLog::open(&args.common.log_dir, "gateway")?;
    guards.push(guard);
    let gw_health = Health::default();
    let gw_app = gateway::router(gw, gateway_addr.port()).merge(admin(cafe.clone()));
    let gw_app = server::app(gw_app, &gw_health, &platform::metrics::Metrics::new("gateway"), Some(gw_access));
    let gw_tracker = TaskTracker::new();
    let gw_stop = CancellationToken::new();
    gw_tracker.spawn(server::serve(gateway_listener, gw_app, gw_health, gw_stop.clone(), cafe.stop));
    gw_tracker.close();

    let mut line = format!("cafe up: gateway={}", local(gateway_addr));
    for name in SERVICES {
        line.push_str(&format!(" {name}={}", urls[name]));
    }
    println!("{line}");
    tracing::info!("cafe is up in {:?}: gateway on {}", started.elapsed(), local(gateway_addr));

    wait_for_stop_signal().await;
    tracing::info!("stopping: draining in-flight requests");
    // Front door first: what the gateway already took in finishes while the services it
    // needs still run; then the services, whose relays publish what those requests committed.
    gw_stop.cancel();
    gw_tracker.wait().await;
    root.cancel();
    for slot in cafe.slots.values() {
        cafe.stop(slot).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `POST /admin/services/{name}/stop|start` (204; 404 for an unknown service).
fn admin(cafe: Arc<Cafe>) -> Router {
    Router::new().route("/admin/services/{name}/{action}", post(switch)).with_state(cafe)
}

async fn switch(
    State(cafe): State<Arc<Cafe>>,
    Path((name, action)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let slot = cafe.slots.get(name.as_str()).ok_or_else(|| Problem::not_found(format!("no service '{name}'")))?;
    match action.as_str() {
        "stop" => {
            cafe.stop(slot).await;
        }
        "start" => {
            cafe.start(slot, None).await.map_err(|e| {
                tracing::error!("{e:#}");
                Problem::unavailable(format!("{name} could not start: {e}"), 1)
            })?;
        }
        _ => return Err(Problem::not_found(format!("no action '{action}': use stop or start"))),
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
