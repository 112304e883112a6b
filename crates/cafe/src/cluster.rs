//! `cafe cluster`: a local distributed cafe for a machine that runs PostgreSQL and NATS.
//!
//! The gateway and every service run as separate `cafe serve` child processes, each service
//! with its own database (`<namespace>_<service>`, created on first start) and all on one
//! JetStream stream prefixed by the namespace. Payment, drink and web run two replicas. Every
//! service has two instance slots known to the gateway (ports `P+i` and `P+8+i`): replicas
//! use both, single-instance services use the second only to surge during a rolling restart.
//!
//! With auth on, the keys and the first manager's password live under `--data-dir` (made on
//! first start, mode 0600) and reach each child in its environment, as a Kubernetes Secret
//! would: public keys to every child, a private key only to the one that signs with it.
//!
//! Like Kubernetes, the cluster restarts a child that dies. `SIGHUP` rolls every service, one
//! instance at a time (start the surge instance or rely on the other replica, SIGTERM, wait
//! until the replacement is ready, next), with no request lost at the gateway. Ctrl-C or
//! SIGTERM stops everything cleanly. An admin listener on port `P+17` (127.0.0.1 only, a
//! manager's token when auth is on) takes a service down and back:
//! `POST /admin/services/{name}/stop|start`, and shows and retries every service's dead
//! letters (see [`crate::admin`]).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use contracts::ServiceName;
use platform::backoff::Backoff;
use platform::shutdown::sleep_or_cancel;
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{ClusterArgs, Upstreams};
use crate::trust::Trust;

/// The services that run two replicas; the others run one and surge to two while rolling.
const REPLICATED: [ServiceName; 3] = [ServiceName::Payment, ServiceName::Drink, ServiceName::Web];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Running,
    Stopped,
}

/// One supervised child process.
struct Instance {
    label: String,
    port: u16,
    want: watch::Sender<Want>,
    /// The pid of the running child, if any.
    pid: watch::Receiver<Option<u32>>,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    // Before anything starts: a SIGTERM from then on stops the cluster in order.
    let stop = crate::up::wait_for_stop_signal();
    let _log_guards = platform::logging::init(&args.log_dir, "cluster", &[], None)
        .with_context(|| format!("cannot write logs under {}", args.log_dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the cafe binary")?;
    let ns: String =
        args.namespace.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let p = args.port;
    let services = ServiceName::BEHIND_GATEWAY.len() as u16;
    let slot_port = |s: ServiceName, slot: usize| p + s.port_offset() + services * slot as u16;
    let trust = if args.auth.is_on() { Trust::from_dir(&args.data_dir.join("keys"), &ns)? } else { Trust::off() };
    let manager_password = match trust.is_on() {
        true => {
            let path = args.data_dir.join("manager-password");
            let (password, made) = crate::trust::manager_password(&path)?;
            if made {
                println!("cafe: the account 'manager' gets the password in {}", path.display());
            }
            Some(password)
        }
        false => None,
    };
    let urls = |s: ServiceName| format!("http://127.0.0.1:{},http://127.0.0.1:{}", slot_port(s, 0), slot_port(s, 1));
    let mut url_env: Vec<(String, String)> =
        ServiceName::BEHIND_GATEWAY.into_iter().map(|s| (Upstreams::variable(s), urls(s))).collect();
    url_env.push(("NATS_URL".into(), args.nats.clone()));
    // The web calls the public API as any client does: through the gateway.
    url_env.push(("GATEWAY_URL".into(), format!("http://127.0.0.1:{p}")));
    url_env.push(("CAFE_NAMESPACE".into(), ns.clone()));
    url_env.push(("CAFE_HOST".into(), "127.0.0.1".into()));
    url_env.push(("CAFE_DRAIN_MS".into(), args.drain_ms.to_string()));
    // Nine processes share the server's connections (100 by default) with everything else.
    url_env.push(("CAFE_DB_POOL".into(), args.db_pool.to_string()));
    if let Some(d) = &args.payment_delay_ms {
        url_env.push(("CAFE_PAYMENT_DELAY_MS".into(), d.clone()));
    }
    url_env.push(("CAFE_AUTH".into(), if trust.is_on() { "on" } else { "off" }.into()));
    url_env.push(("CAFE_RATE_LIMIT".into(), args.auth.rate_limit.to_string()));
    if let Some(menu) = &args.auth.menu {
        url_env.push(("CAFE_MENU".into(), std::path::absolute(menu)?.display().to_string()));
    }

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut instances: Vec<(ServiceName, usize, Instance)> = Vec::new();
    let postgres = args.postgres.trim_end_matches('/');
    for svc in ServiceName::BEHIND_GATEWAY {
        for slot in 0..2 {
            let mut env = url_env.clone();
            env.extend(trust.env_for(svc));
            if let (ServiceName::Identity, Some(password)) = (svc, &manager_password) {
                env.push(("CAFE_MANAGER_PASSWORD".into(), password.clone()));
            }
            env.push(("CAFE_PORT".into(), slot_port(svc, slot).to_string()));
            env.push(("DATABASE_URL".into(), format!("{postgres}/{ns}_{svc}")));
            let log_dir = if slot == 0 { args.log_dir.clone() } else { args.log_dir.join(format!("replica-{slot}")) };
            env.push(("CAFE_LOG_DIR".into(), log_dir.display().to_string()));
            let initially = if slot == 0 || REPLICATED.contains(&svc) { Want::Running } else { Want::Stopped };
            let inst = supervise(&tracker, &exe, svc, slot, slot_port(svc, slot), env, initially, cancel.clone());
            instances.push((svc, slot, inst));
        }
    }
    let mut gw_env = url_env.clone();
    gw_env.extend(trust.env_for(ServiceName::Gateway));
    gw_env.push(("CAFE_PORT".into(), p.to_string()));
    gw_env.push(("CAFE_LOG_DIR".into(), args.log_dir.display().to_string()));
    let gateway = supervise(&tracker, &exe, ServiceName::Gateway, 0, p, gw_env, Want::Running, cancel.clone());

    let http = reqwest::Client::new();
    for (_, _, inst) in instances.iter().filter(|(_, _, i)| *i.want.borrow() == Want::Running) {
        wait_ready(&http, inst, &cancel).await?;
    }
    wait_ready(&http, &gateway, &cancel).await?;
    let instances = std::sync::Arc::new(instances);
    let admin_port = p + 2 * services + 1;
    let admin_listener = platform::server::bind(std::net::SocketAddr::from(([127, 0, 0, 1], admin_port))).await?;
    tracker.spawn(platform::server::serve(
        admin_listener,
        platform::server::app(
            admin(instances.clone(), cancel.clone()).merge(crate::admin::dead_letters(locate(&instances))),
            &platform::health::Health::default(),
            &platform::metrics::Metrics::new("admin"),
            None,
            &trust.auth,
        ),
        platform::health::Health::default(),
        cancel.clone(),
        platform::server::Stop { drain: Duration::ZERO, grace: Duration::from_secs(5) },
    ));
    println!("cafe cluster: gateway=http://127.0.0.1:{p} admin=http://127.0.0.1:{admin_port} namespace={ns}");
    tracing::info!("cluster is up: gateway on http://127.0.0.1:{p}, namespace {ns}");

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => {
                tracing::info!("rolling restart of every service");
                if let Err(e) = roll(&http, &instances, &cancel).await {
                    tracing::error!("rolling restart failed: {e:#}");
                } else {
                    tracing::info!("rolling restart done");
                }
            }
        }
    }
    tracing::info!("stopping the cluster");
    for (_, _, inst) in instances.iter() {
        inst.want.send_replace(Want::Stopped);
    }
    gateway.want.send_replace(Want::Stopped);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

type Instances = std::sync::Arc<Vec<(ServiceName, usize, Instance)>>;

/// `POST /admin/services/{name}/stop|start` on 127.0.0.1 only: takes every instance of a
/// service down, or brings its usual instances back (and waits until they are ready). An
/// unknown name, or the gateway's, is a 404.
fn admin(instances: Instances, cancel: CancellationToken) -> axum::Router {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use platform::Problem;
    async fn switch(
        State((instances, cancel)): State<(Instances, CancellationToken)>,
        Path((name, action)): Path<(String, String)>,
    ) -> Result<StatusCode, Problem> {
        let service: Option<ServiceName> = name.parse().ok();
        let of: Vec<&(ServiceName, usize, Instance)> =
            instances.iter().filter(|(s, _, _)| Some(*s) == service).collect();
        if of.is_empty() {
            return Err(Problem::not_found(format!("no service '{name}'")));
        }
        match action.as_str() {
            "stop" => {
                for (_, _, inst) in &of {
                    stop_instance(inst).await;
                }
            }
            "start" => {
                let http = reqwest::Client::new();
                for (svc, slot, inst) in &of {
                    if *slot == 0 || REPLICATED.contains(svc) {
                        inst.want.send_replace(Want::Running);
                        wait_ready(&http, inst, &cancel)
                            .await
                            .map_err(|e| Problem::unavailable(format!("{e:#}"), 1))?;
                    }
                }
            }
            _ => return Err(Problem::not_found(format!("no action '{action}': use stop or start"))),
        }
        Ok(StatusCode::NO_CONTENT)
    }
    axum::Router::new()
        .route(
            "/admin/services/{name}/{action}",
            axum::routing::post(switch).route_layer(platform::auth::allow(&[platform::auth::Role::Manager])),
        )
        .with_state((instances, cancel))
}

/// Where each service's running instances listen, for the admin listener's dead letters.
fn locate(instances: &Instances) -> crate::admin::Locate {
    let instances = instances.clone();
    std::sync::Arc::new(move |service| {
        instances
            .iter()
            .filter(|(s, _, inst)| *s == service && inst.pid.borrow().is_some())
            .map(|(_, _, inst)| format!("http://127.0.0.1:{}", inst.port))
            .collect()
    })
}

/// Restarts every service one instance at a time, never leaving a service without a ready one.
async fn roll(
    http: &reqwest::Client,
    instances: &[(ServiceName, usize, Instance)],
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    for svc in ServiceName::BEHIND_GATEWAY {
        let of: Vec<&Instance> = instances.iter().filter(|(s, _, _)| *s == svc).map(|(_, _, i)| i).collect();
        let (first, second) = (of[0], of[1]);
        if REPLICATED.contains(&svc) {
            for inst in [first, second] {
                restart(http, inst, cancel).await?;
            }
        } else {
            second.want.send_replace(Want::Running);
            wait_ready(http, second, cancel).await?;
            restart(http, first, cancel).await?;
            stop_instance(second).await;
        }
    }
    Ok(())
}

async fn restart(http: &reqwest::Client, inst: &Instance, cancel: &CancellationToken) -> anyhow::Result<()> {
    stop_instance(inst).await;
    inst.want.send_replace(Want::Running);
    wait_ready(http, inst, cancel).await
}

async fn stop_instance(inst: &Instance) {
    inst.want.send_replace(Want::Stopped);
    let mut pid = inst.pid.clone();
    let _ = pid.wait_for(|p| p.is_none()).await;
}

async fn wait_ready(http: &reqwest::Client, inst: &Instance, cancel: &CancellationToken) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{}/actuator/health/readiness", inst.port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ok = http
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok && inst.pid.borrow().is_some() {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} did not become ready within 60 s", inst.label);
        if sleep_or_cancel(Duration::from_millis(100), cancel).await {
            anyhow::bail!("stopped");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn supervise(
    tracker: &TaskTracker,
    exe: &std::path::Path,
    service: ServiceName,
    slot: usize,
    port: u16,
    env: Vec<(String, String)>,
    initially: Want,
    cancel: CancellationToken,
) -> Instance {
    let label = format!("{service}#{slot}");
    let (want_tx, mut want) = watch::channel(initially);
    let (pid_tx, pid_rx) = watch::channel(None);
    let (exe, task_label) = (exe.to_path_buf(), label.clone());
    tracker.spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            // A stopped instance waits for `Running`, or for the cluster to stop.
            let running = tokio::select! {
                _ = cancel.cancelled() => false,
                w = want.wait_for(|w| *w == Want::Running) => w.is_ok(),
            };
            if !running || cancel.is_cancelled() {
                return;
            }
            let spawned = Command::new(&exe)
                .arg("serve")
                .arg(service.as_str())
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(instance = %task_label, error = %e, "cannot start");
                    if sleep_or_cancel(backoff.next_delay(), &cancel).await {
                        return;
                    }
                    continue;
                }
            };
            let pid = child.id();
            pid_tx.send_replace(pid);
            tracing::info!(instance = %task_label, pid, "started");
            let started = tokio::time::Instant::now();
            tokio::select! {
                status = child.wait() => {
                    pid_tx.send_replace(None);
                    tracing::warn!(instance = %task_label, ?status, "exited; restarting");
                    // One that ran a while crashed afresh: restart it soon.
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff.reset();
                    }
                    if sleep_or_cancel(backoff.next_delay(), &cancel).await {
                        return;
                    }
                }
                _ = async { want.wait_for(|w| *w == Want::Stopped).await.map(|_| ()) } => {
                    terminate(&mut child, &task_label).await;
                    pid_tx.send_replace(None);
                }
            }
        }
    });
    Instance { label, port, want: want_tx, pid: pid_rx }
}

/// SIGTERM, then SIGKILL if it has not exited within 40 s.
async fn terminate(child: &mut tokio::process::Child, label: &str) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    match tokio::time::timeout(Duration::from_secs(40), child.wait()).await {
        Ok(status) => tracing::info!(instance = %label, ?status, "stopped"),
        Err(_) => {
            tracing::warn!(instance = %label, "did not stop in time; killing");
            let _ = child.kill().await;
        }
    }
}
