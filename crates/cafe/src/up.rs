//! `cafe up`: the whole cafe in one process.
//!
//! [`Cafe::build`] binds every listener first (so `--port 0` works and a taken port fails
//! before anything runs), then gives each service its own SQLite file, its own context
//! (outbox relay, consumers) and its own server, all on the embedded event log, and puts the
//! gateway in front of them. Services still call each other over real HTTP. The built cafe
//! says where it listens ([`Cafe::gateway_url`], [`Cafe::url_of`]) and serves until its
//! [`StopHandle`] is used ([`Cafe::run_until_stopped`]): `cafe up` uses it on SIGTERM or
//! Ctrl-C, a test when it is done. Tests build the cafe the way [`run`] does, in their own
//! process.
//!
//! Each service can be stopped and started again while the rest keep running
//! (`POST /admin/services/{name}/stop|start` on the admin listener, 127.0.0.1 only and with a
//! manager's token when auth is on), which is how one takes delivery down to watch the cafe
//! cope. The same listener shows and retries every service's dead letters ([`crate::admin`]).
//!
//! With auth on, the first start makes the account `manager` with a random password written
//! to `<data-dir>/manager-password` (mode 0600), and says so on its first line of output.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use contracts::ServiceName;
use platform::access_log::AccessLog;
use platform::embedded::EmbeddedBus;
use platform::health::Health;
use platform::{server, Db, EventBus, Problem};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::UpArgs;
use crate::services::{self, Wiring};
use crate::trust::Trust;

/// `cafe up`: what belongs to the process (failpoints, the log subscriber), then the cafe,
/// built and served until SIGTERM or Ctrl-C.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Before anything serves.
    let stop_signal = wait_for_stop_signal();
    platform::failpoint::arm(args.common.resilience.failpoint.clone());
    let names = ServiceName::ALL.map(ServiceName::as_str);
    let _log_guards =
        platform::logging::init(&args.common.log_dir, "cafe", &names, args.common.otlp_endpoint.as_deref())
            .with_context(|| format!("cannot write logs under {}", args.common.log_dir.display()))?;

    let cafe = Cafe::build(args).await?;
    if let Some(path) = &cafe.manager_created {
        println!("cafe: created the account 'manager'; its password is in {}", path.display());
    }
    let mut line = format!("cafe up: gateway={} admin={}", cafe.gateway_url(), local(cafe.admin));
    for service in ServiceName::BEHIND_GATEWAY {
        line.push_str(&format!(" {service}={}", cafe.url_of(service)));
    }
    println!("{line}");
    tracing::info!("cafe is up in {:?}: gateway on {}", started.elapsed(), cafe.gateway_url());

    let stop = cafe.stop_handle();
    tokio::spawn(async move {
        stop_signal.await;
        stop.stop();
    });
    cafe.run_until_stopped().await;
    platform::trace::shutdown().await;
    Ok(())
}

/// The whole cafe, built: every listener bound, every service and the gateway serving.
pub struct Cafe {
    gateway: SocketAddr,
    /// The admin listener, on 127.0.0.1.
    admin: SocketAddr,
    /// Where the first manager's password was written, if this start made the account.
    manager_created: Option<std::path::PathBuf>,
    services: Arc<Services>,
    gateway_stop: CancellationToken,
    gateway_tracker: TaskTracker,
    stop: StopHandle,
    /// The access logs' writers, which end once their logs are dropped.
    _access_writers: Vec<JoinHandle<()>>,
}

/// Stops a built [`Cafe`]: [`Cafe::run_until_stopped`] then drains and returns. Cloneable,
/// so a signal handler or a test can hold it while the cafe runs elsewhere.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(CancellationToken);

impl StopHandle {
    pub fn stop(&self) {
        self.0.cancel();
    }
}

impl Cafe {
    /// Binds every listener, opens the event log and each service's database, and starts
    /// every service and the gateway, as `config` says. Everything serves once this returns.
    ///
    /// `config`'s failpoints are not armed here: they crash the whole process, so [`run`]
    /// arms them for the binary. The trace exporter (`--otlp-endpoint`) is one per process:
    /// [`run`] installs it with the log subscriber; a process without one (a test's) gets it
    /// from the first cafe built with an endpoint.
    pub async fn build(config: UpArgs) -> anyhow::Result<Cafe> {
        if let Some(endpoint) = &config.common.otlp_endpoint {
            platform::trace::export_to(endpoint, "cafe")?;
        }
        let trust = if config.common.auth.is_on() {
            Trust::from_dir(&config.data_dir.join("keys"), "cafe")?
        } else {
            Trust::off()
        };
        // Bind everything first: a taken port fails here, before anything runs.
        let port_of = |s: ServiceName| if config.port == 0 { 0 } else { config.port.saturating_add(s.port_offset()) };
        let gateway_listener = server::bind(SocketAddr::new(config.host, port_of(ServiceName::Gateway))).await?;
        let admin_port = if config.port == 0 { 0 } else { config.port.saturating_add(ADMIN_PORT_OFFSET) };
        let admin_listener = server::bind(SocketAddr::from(([127, 0, 0, 1], admin_port))).await?;
        let mut listeners = Vec::new();
        for service in ServiceName::BEHIND_GATEWAY {
            listeners.push((service, server::bind(SocketAddr::new(config.host, port_of(service))).await?));
        }
        let addrs: BTreeMap<ServiceName, SocketAddr> =
            listeners.iter().map(|(s, l)| Ok((*s, l.local_addr()?))).collect::<std::io::Result<_>>()?;

        let bus: Arc<dyn EventBus> = Arc::new(
            EmbeddedBus::open(&config.data_dir)
                .await
                .with_context(|| format!("cannot open the event log under {}", config.data_dir.display()))?,
        );
        let mut wiring = config.common.wiring(
            &local(addrs[&ServiceName::Payment]),
            &local(addrs[&ServiceName::Delivery]),
            trust.clone(),
        )?;
        wiring.web = services::WebWiring {
            gateway_url: local(gateway_listener.local_addr()?),
            services: addrs
                .iter()
                .filter(|(s, _)| **s != ServiceName::Web)
                .map(|(s, a)| (s.as_str(), vec![local(*a)]))
                .collect(),
        };
        let mut slots = BTreeMap::new();
        let mut access_writers = Vec::new();
        for (&name, &addr) in &addrs {
            let db =
                match name {
                    ServiceName::Web => None,
                    _ => Some(Db::sqlite_file(&config.data_dir, name.as_str()).await.with_context(|| {
                        format!("cannot open {name}'s database under {}", config.data_dir.display())
                    })?),
                };
            let (access, writer) = AccessLog::open(&config.common.log_dir, name.as_str())?;
            access_writers.push(writer);
            slots.insert(name, Slot { name, addr, db, access, running: Mutex::new(None) });
        }
        let services =
            Arc::new(Services { slots, bus, wiring, root: CancellationToken::new(), stop: config.common.stop() });
        for (name, listener) in listeners {
            services.start(&services.slots[&name], Some(listener)).await?;
        }

        let manager_created = match trust.is_on() {
            true => {
                let identity = services.slots[&ServiceName::Identity].db.as_ref().context("identity's database")?;
                first_manager(&config.data_dir, identity).await?
            }
            false => None,
        };

        // The gateway, and beside it (never on its port) the admin switch.
        let gateway = gateway_listener.local_addr()?;
        let admin = admin_listener.local_addr()?;
        let (gw_access, writer) = AccessLog::open(&config.common.log_dir, ServiceName::Gateway.as_str())?;
        access_writers.push(writer);
        let (_, gw_app, gw_health) = services::gateway_app(
            gateway::default_routes(|service| vec![local(addrs[&service])]),
            config.common.auth.limits(),
            gateway.port(),
            gw_access,
            &trust.auth,
        );
        let urls = services.clone();
        // A stopped service's listener is closed: it shows as unreachable.
        let locate: crate::admin::Locate =
            Arc::new(move |service| urls.slots.get(&service).map(|slot| local(slot.addr)).into_iter().collect());
        let admin_app = server::app(
            admin_switch(services.clone()).merge(crate::admin::dead_letters(locate)),
            &Health::default(),
            &platform::metrics::Metrics::new("admin"),
            None,
            &trust.auth,
        );
        let gateway_tracker = TaskTracker::new();
        let gateway_stop = CancellationToken::new();
        // One compaction of the one event log, for every service's group.
        gateway_tracker.spawn(platform::bus::compact_every(
            services.bus.clone(),
            services::readers(),
            services.wiring.retention.every,
            gateway_stop.clone(),
        ));
        gateway_tracker.spawn(server::serve(gateway_listener, gw_app, gw_health, gateway_stop.clone(), services.stop));
        gateway_tracker.spawn(server::serve(
            admin_listener,
            admin_app,
            Health::default(),
            gateway_stop.clone(),
            services.stop,
        ));
        gateway_tracker.close();

        Ok(Cafe {
            gateway,
            admin,
            manager_created,
            services,
            gateway_stop,
            gateway_tracker,
            stop: StopHandle::default(),
            _access_writers: access_writers,
        })
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub fn gateway_url(&self) -> String {
        local(self.gateway)
    }

    /// `http://127.0.0.1:PORT` of the admin switch.
    pub fn admin_url(&self) -> String {
        local(self.admin)
    }

    /// `http://127.0.0.1:PORT` of `service`'s own listener (the gateway's, for the gateway).
    pub fn url_of(&self, service: ServiceName) -> String {
        match service {
            ServiceName::Gateway => self.gateway_url(),
            service => local(self.services.slots[&service].addr),
        }
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Serves until the [`StopHandle`] is used, then stops: the front door first, so what the
    /// gateway already took in finishes while the services it needs still run; then the
    /// services, whose relays publish what those requests committed.
    pub async fn run_until_stopped(self) {
        self.stop.0.cancelled().await;
        tracing::info!("stopping: draining in-flight requests");
        self.gateway_stop.cancel();
        self.gateway_tracker.wait().await;
        self.services.root.cancel();
        for slot in self.services.slots.values() {
            self.services.stop(slot).await;
        }
        tracing::info!("stopped");
    }
}

/// `http://IP:PORT` for a bound address, with 127.0.0.1 for an unspecified one.
fn local(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let ip = if ip.contains(':') { format!("[{ip}]") } else { ip };
    format!("http://{ip}:{}", addr.port())
}

/// One service of the all-in-one cafe, startable and stoppable.
struct Slot {
    name: ServiceName,
    addr: SocketAddr,
    /// None for the web, which has no database.
    db: Option<Db>,
    access: AccessLog,
    running: Mutex<Option<(CancellationToken, TaskTracker)>>,
}

/// The services behind the gateway, and what each needs to start again.
struct Services {
    slots: BTreeMap<ServiceName, Slot>,
    bus: Arc<dyn EventBus>,
    wiring: Wiring,
    root: CancellationToken,
    stop: server::Stop,
}

impl Services {
    async fn start(&self, slot: &Slot, listener: Option<TcpListener>) -> anyhow::Result<bool> {
        let mut running = slot.running.lock().await;
        if running.is_some() {
            return Ok(false);
        }
        let cancel = self.root.child_token();
        let tracker = TaskTracker::new();
        services::launch(services::Launch {
            name: slot.name,
            group: slot.name.as_str().to_string(),
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
        tracing::info!(service = %slot.name, addr = %slot.addr, "service started");
        Ok(true)
    }

    async fn stop(&self, slot: &Slot) -> bool {
        let mut running = slot.running.lock().await;
        let Some((cancel, tracker)) = running.take() else { return false };
        cancel.cancel();
        tracker.wait().await;
        tracing::info!(service = %slot.name, "service stopped");
        true
    }
}

/// The admin listener's port, from the base port (after the services').
const ADMIN_PORT_OFFSET: u16 = 9;

/// The first manager, made on the first start with auth on: its password in
/// `<data-dir>/manager-password`. The path, if the account was made now.
async fn first_manager(data_dir: &std::path::Path, identity: &Db) -> anyhow::Result<Option<std::path::PathBuf>> {
    let path = data_dir.join("manager-password");
    let (password, _) = crate::trust::manager_password(&path)?;
    let made = identity::ensure_manager(identity, &password).await.context("cannot make the first manager")?;
    Ok(made.then_some(path))
}

/// `POST /admin/services/{name}/stop|start` (204; 404 for a name that is no service behind
/// the gateway, or an action that is neither). A manager's, when auth is on.
fn admin_switch(services: Arc<Services>) -> Router {
    Router::new()
        .route(
            "/admin/services/{name}/{action}",
            post(switch).route_layer(platform::auth::allow(&[platform::auth::Role::Manager])),
        )
        .with_state(services)
}

async fn switch(
    State(services): State<Arc<Services>>,
    Path((name, action)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let slot = name
        .parse::<ServiceName>()
        .ok()
        .and_then(|service| services.slots.get(&service))
        .ok_or_else(|| Problem::not_found(format!("no service '{name}'")))?;
    match action.as_str() {
        "stop" => {
            services.stop(slot).await;
        }
        "start" => {
            services.start(slot, None).await.map_err(|e| {
                tracing::error!("{e:#}");
                Problem::unavailable(format!("{name} could not start: {e}"), 1)
            })?;
        }
        _ => return Err(Problem::not_found(format!("no action '{action}': use stop or start"))),
    }
    Ok(StatusCode::NO_CONTENT)
}

/// SIGTERM or SIGINT (Ctrl-C): the handlers are installed when this is called; the future it
/// returns waits for the first of them.
pub fn wait_for_stop_signal() -> impl std::future::Future<Output = ()> {
    // Installed now, not at the first poll: a SIGTERM that comes while the servers are already
    // answering but before the wait begins is kept for it, instead of killing the process
    // undrained (the default action of an unhandled SIGTERM).
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).expect("a SIGTERM handler"),
            signal(SignalKind::interrupt()).expect("a SIGINT handler"),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = signals;
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
