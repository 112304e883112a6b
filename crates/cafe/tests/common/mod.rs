//! The one harness of every test binary of `crates/cafe` (each includes it with
//! `#[path = "../common/mod.rs"] mod common;` and uses a part of it): a fresh cafe per test,
//! on free ports in a fresh directory, driven over HTTP through its gateway with typed
//! helpers.
//!
//! - [`spawn_app`], [`spawn_app_with`]: the all-in-one cafe built in this process by
//!   [`Cafe::build`], the code path of `cafe up`; its addresses come from the built cafe.
//! - [`spawn_process_with`]: `cafe up` as a child process, for what needs the process
//!   itself: `kill -9`, SIGTERM, its CPU time, its stdout and log files, a failpoint that
//!   aborts it, how long the binary takes to start.
//! - [`spawn`], [`spawn_with`] in [`Mode::Distributed`]: `cafe cluster`, the gateway and
//!   every service a child process on PostgreSQL and NATS JetStream, in a fresh namespace so
//!   databases and streams never collide ([`cluster`]).
//! - [`spawn_process_on`], [`spawn_cluster_on`]: the same on storage or servers of the
//!   test's own, for a test that breaks them (fills the disk, stops the database, cuts the
//!   link to the broker).
//!
//! Nothing here sleeps for a fixed time: every wait is [`eventually`], a poll with a
//! deadline, so a fast machine is fast and a slow one only waits longer.

// Each test binary uses a part of the harness.
#![allow(unused_macros, unused_imports)]

pub mod cluster;
pub mod load;
pub mod settle;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cafe::cli::UpArgs;
use cafe::{Cafe, StopHandle};
use contracts::ServiceName;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

pub use cluster::{
    check_infra, require, require_infra, running_in_ci, Infra, Instance, NATS_ADDR, NATS_URL, POSTGRES_ADDR,
};
pub use load::Load;
pub use platform::testing::{eventually, POLL};
pub use settle::{check_settled, check_settled_with_cancelled, make_queued_drinks};

/// How long any single eventual-consistency wait may take in the all-in-one mode.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The same in the distributed mode: thirteen processes share two cores there.
pub const DISTRIBUTED_DEADLINE: Duration = Duration::from_secs(30);

/// Which way the cafe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cafe up`: one process (this one, or a child), embedded storage and event log.
    AllInOne,
    /// `cafe cluster`: the gateway and every service a child process (two replicas of
    /// payment, drink and web), on PostgreSQL and NATS JetStream.
    Distributed,
}

/// A cluster is thirteen processes; more than two at once only makes every test slower and
/// its deadlines tighter. Shared by every test thread of a binary.
static CLUSTERS: Semaphore = Semaphore::const_new(2);

/// One running cafe. In this process: stopped on drop. `cafe up` as a child: killed
/// (SIGKILL) on drop. A cluster: stopped with SIGTERM (it stops its children), then its
/// databases and stream are dropped. The data and log directory is removed after.
pub struct TestApp {
    pub mode: Mode,
    runner: Mutex<Option<Runner>>,
    in_process: bool,
    /// Every service's and the gateway's `http://127.0.0.1:PORT` (a cluster: first instances).
    urls: RwLock<HashMap<ServiceName, String>>,
    /// A cluster's admin listener.
    admin_url: RwLock<Option<String>>,
    /// The flags `cafe up` / `cafe cluster` runs with, beyond ports and directories.
    flags: Mutex<Vec<String>>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
    /// How long an eventual-consistency wait may take in this mode.
    pub deadline: Duration,
    /// Incremented by every restart; lets concurrent clients notice one.
    generation: AtomicU64,
    /// From starting the cafe to its being ready, the last time it started.
    started_in: Mutex<Duration>,
    /// Distributed only: the namespace and the gateway's port.
    cluster: Option<(String, u16)>,
    /// Distributed only: the PostgreSQL and NATS the cluster runs on.
    infra: Infra,
    /// Where the data goes when not in `dir` ([`spawn_process_on`]).
    data_in: Option<PathBuf>,
    _permit: Option<SemaphorePermit<'static>>,
    // Last, so it is removed after the cafe is gone.
    dir: tempfile::TempDir,
}

/// How the cafe of a [`TestApp`] runs.
enum Runner {
    /// Built in this process; its tasks run on the test's runtime.
    InProcess(StopHandle),
    /// `cafe up` or `cafe cluster` as a child process.
    Process(Child),
}

/// A response, read whole: status, headers, and the body as JSON (Null when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Panics with the whole reply unless the status is `want`.
    #[track_caller]
    pub fn expect(&self, want: u16, what: &str) -> &Value {
        assert_eq!(self.status.as_u16(), want, "{what}: expected {want}, got {} {}", self.status, self.text);
        &self.json
    }

    /// Asserts an RFC 9457 problem: problem+json, `type`/`title`/`status`/`detail`, the status
    /// in the body equal to the HTTP status, and never a 500.
    #[track_caller]
    pub fn expect_problem(&self, want: u16, what: &str) -> &Value {
        assert_ne!(self.status.as_u16(), 500, "{what}: a 500 for bad input: {}", self.text);
        self.expect(want, what);
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "{what}: content type {:?}, body {}",
            self.content_type(),
            self.text
        );
        for field in ["type", "title", "detail"] {
            assert!(
                self.json.get(field).map(|v| v.is_string()).unwrap_or(false),
                "{what}: no '{field}' in {}",
                self.text
            );
        }
        assert_eq!(self.json["status"].as_u64(), Some(want as u64), "{what}: status in body: {}", self.text);
        &self.json
    }
}

/// Generates, from `async fn name(app: TestApp)` bodies in the calling module, one test per
/// mode: `all_in_one::name` and `distributed::name`. A distributed test without PostgreSQL or
/// NATS is skipped, or fails under CI ([`require_infra`]).
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        in_both_modes!(@flags []; $($name),*);
    };
    // Each test's cafe takes these `cafe up` / `cafe cluster` flags.
    (@flags $flags:tt; $($name:ident),*) => {
        in_both_modes!(@mode all_in_one AllInOne $flags; $($name),*);
        in_both_modes!(@mode distributed Distributed $flags; $($name),*);
    };
    (@mode $module:ident $mode:ident $flags:tt; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    let mode = crate::common::Mode::$mode;
                    if let Some(app) = crate::common::spawn_with(mode, &$flags, &[]).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// Like `in_both_modes!`, with auth on (SPEC §9): each test gets a cafe that checks tokens.
macro_rules! in_both_modes_with_auth {
    ($($name:ident),* $(,)?) => {
        in_both_modes!(@flags ["--auth", "on"]; $($name),*);
    };
}

/// The all-in-one cafe, built in this process with `cafe up --port 0` and a fresh data dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with `extra` flags of `cafe up`, read as the binary reads them.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_with(Mode::AllInOne, extra, &[]).await.expect("the all-in-one mode needs nothing installed")
}

/// `cafe up --port 0` as a child process, with `extra` flags and environment, for a test
/// about the process itself.
pub async fn spawn_process_with(extra: &[&str], env: &[(&str, &str)]) -> TestApp {
    let app = TestApp::new(Mode::AllInOne, false, extra, env, None);
    app.start().await.unwrap_or_else(|e| panic!("{e}"));
    app
}

/// [`spawn_process_with`] with the data in `data_dir` (on a small file system the test
/// fills, say) instead of the fresh directory, which keeps the logs. `data_dir` is left in
/// place after the cafe is gone.
pub async fn spawn_process_on(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> TestApp {
    let mut app = TestApp::new(Mode::AllInOne, false, extra, env, None);
    app.data_in = Some(data_dir.to_path_buf());
    app.start().await.unwrap_or_else(|e| panic!("{e}"));
    app
}

/// `cafe cluster` on `infra`, servers of the test's own that it stops, slows or cuts off,
/// rather than the machine's: the caller checks that what it needs is there. The cluster's
/// databases and stream are dropped after it, on `infra`.
pub async fn spawn_cluster_on(infra: Infra, extra: &[&str], env: &[(&str, &str)]) -> TestApp {
    start_cluster(infra, extra, env).await
}

/// A fresh cafe in `mode` (all-in-one: in this process); `None` when the distributed mode's
/// PostgreSQL or NATS is not running and this is not CI (the test then passes without
/// running).
pub async fn spawn(mode: Mode) -> Option<TestApp> {
    spawn_with(mode, &[], &[]).await
}

/// Like [`spawn`], with extra flags for `cafe up` / `cafe cluster` and, for a cluster, extra
/// environment (its children inherit it). A cafe in this process reads its flags only.
pub async fn spawn_with(mode: Mode, extra: &[&str], env: &[(&str, &str)]) -> Option<TestApp> {
    match mode {
        Mode::AllInOne => {
            assert!(env.is_empty(), "a cafe built in this process takes flags, not environment: {env:?}");
            let app = TestApp::new(mode, true, extra, env, None);
            app.start().await.unwrap_or_else(|e| panic!("{e}"));
            Some(app)
        }
        Mode::Distributed => {
            if !require_infra() {
                return None;
            }
            Some(start_cluster(Infra::shared(), extra, env).await)
        }
    }
}

/// `cafe cluster` on `infra` in a fresh namespace, on free ports.
async fn start_cluster(infra: Infra, extra: &[&str], env: &[(&str, &str)]) -> TestApp {
    let permit = CLUSTERS.acquire().await.expect("the cluster semaphore is never closed");
    let mut app = TestApp::new(Mode::Distributed, false, extra, env, Some(permit));
    app.infra = infra;
    // The base port is checked free just before use; another process may still take one of
    // its eighteen ports first, so a failed start tries another base.
    let mut attempt = 0;
    loop {
        attempt += 1;
        app.cluster = Some((cluster::fresh_namespace(), cluster::free_port_range(18)));
        match app.start().await {
            Ok(()) => return app,
            Err(e) if attempt < 3 => {
                eprintln!("cafe cluster did not start (attempt {attempt}), trying other ports: {e}");
                app.generation.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("{e}"),
        }
    }
}

impl TestApp {
    fn new(
        mode: Mode,
        in_process: bool,
        extra: &[&str],
        env: &[(&str, &str)],
        permit: Option<SemaphorePermit<'static>>,
    ) -> TestApp {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        TestApp {
            mode,
            runner: Mutex::new(None),
            in_process,
            urls: RwLock::new(HashMap::new()),
            admin_url: RwLock::new(None),
            flags: Mutex::new(extra.iter().map(|s| s.to_string()).collect()),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            client,
            deadline: if mode == Mode::Distributed { DISTRIBUTED_DEADLINE } else { DEADLINE },
            generation: Default::default(),
            started_in: Mutex::new(Duration::ZERO),
            cluster: None,
            infra: Infra::shared(),
            data_in: None,
            _permit: permit,
            dir: tempfile::Builder::new().prefix("cafe-test-").tempdir().expect("temp dir"),
        }
    }

    /// The flags the cafe runs with: the test's own, and `--auth off` unless they say
    /// otherwise, since most tests exercise the original's open API (SPEC §9's open mode).
    fn flags(&self) -> Vec<String> {
        let mut flags = self.flags.lock().unwrap().clone();
        if !flags.iter().any(|f| f == "--auth") && !self.env.iter().any(|(k, _)| k == "CAFE_AUTH") {
            flags.extend(["--auth".to_string(), "off".to_string()]);
        }
        flags
    }

    /// The admin switch's base URL (127.0.0.1 only), once the cafe runs.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_url.read().unwrap().clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_in.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// Where the logs go: `<service>/` for the first instance of each, `replica-1/<service>/`
    /// for a cluster's second.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn stderr_path(&self, generation: u64) -> PathBuf {
        self.dir.path().join(format!("stderr-{generation}.log"))
    }

    /// The cluster's namespace (distributed mode).
    pub fn namespace(&self) -> &str {
        &self.cluster.as_ref().expect("a namespace only in the distributed mode").0
    }

    /// From starting the cafe to its being ready, the last time it started: for a child
    /// process, from spawning it to its ready line.
    pub fn started_in(&self) -> Duration {
        *self.started_in.lock().unwrap()
    }

    async fn start(&self) -> Result<(), String> {
        if self.in_process {
            self.build_in_process().await
        } else {
            self.start_process().await
        }
    }

    /// Builds the cafe as `cafe up` does and serves it on this runtime until dropped.
    async fn build_in_process(&self) -> Result<(), String> {
        let mut flags: Vec<std::ffi::OsString> = vec!["--port".into(), "0".into()];
        flags.extend(["--data-dir".into(), self.data_dir().into(), "--log-dir".into(), self.log_dir().into()]);
        flags.extend(self.flags().into_iter().map(Into::into));
        let config = UpArgs::from_flags(flags).map_err(|e| format!("the flags of cafe up: {e}"))?;
        let started = Instant::now();
        let cafe = Cafe::build(config).await.map_err(|e| format!("the cafe could not be built: {e:#}"))?;
        *self.started_in.lock().unwrap() = started.elapsed();
        *self.urls.write().unwrap() = ServiceName::ALL.into_iter().map(|s| (s, cafe.url_of(s))).collect();
        *self.admin_url.write().unwrap() = Some(cafe.admin_url());
        *self.runner.lock().unwrap() = Some(Runner::InProcess(cafe.stop_handle()));
        tokio::spawn(cafe.run_until_stopped());
        Ok(())
    }

    /// Runs the binary and waits for its ready line (`cafe up:` / `cafe cluster:`).
    async fn start_process(&self) -> Result<(), String> {
        let generation = self.generation.load(Ordering::SeqCst);
        let stderr_path = self.stderr_path(generation);
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cafe"));
        let ready_prefix = match &self.cluster {
            None => {
                cmd.arg("up").arg("--port").arg("0").arg("--data-dir").arg(self.data_dir());
                "cafe up:"
            }
            Some((namespace, port)) => {
                cmd.arg("cluster")
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--namespace")
                    .arg(namespace)
                    .arg("--postgres")
                    .arg(&self.infra.postgres_url)
                    .arg("--nats")
                    .arg(&self.infra.nats_url)
                    .arg("--data-dir")
                    .arg(self.data_dir())
                    // Stops (admin stop, Drop) need not wait long for a gateway to notice.
                    .arg("--drain-ms")
                    .arg("300");
                "cafe cluster:"
            }
        };
        let flags = self.flags();
        cmd.arg("--log-dir")
            .arg(self.log_dir())
            .args(&flags)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("cannot run the cafe binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match lines.next_line().await {
                    Ok(Some(l)) if l.starts_with(ready_prefix) => return Some(l),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await;
        let line = match line {
            Ok(Some(l)) => l,
            other => {
                if self.cluster.is_some() {
                    cluster::terminate(&mut child, Duration::from_secs(10));
                } else {
                    let _ = child.start_kill();
                }
                let status = child.wait().await;
                return Err(format!(
                    "{ready_prefix} no ready line ({}; exit {:?}); stderr:\n{}",
                    if other.is_err() { "timed out" } else { "stdout closed" },
                    status,
                    tail(&stderr_path, 4000)
                ));
            }
        };
        *self.started_in.lock().unwrap() = started.elapsed();
        // Keep draining stdout so the child never blocks or dies on a full or broken pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ready = parse_ready_line(&line);
        let mut urls = HashMap::new();
        let gateway = ready.get("gateway").unwrap_or_else(|| panic!("ready line lacks the gateway: {line}"));
        urls.insert(ServiceName::Gateway, gateway.clone());
        let admin = ready.get("admin").unwrap_or_else(|| panic!("ready line lacks admin: {line}"));
        *self.admin_url.write().unwrap() = Some(admin.clone());
        match &self.cluster {
            None => {
                for service in ServiceName::BEHIND_GATEWAY {
                    let url =
                        ready.get(service.as_str()).unwrap_or_else(|| panic!("ready line lacks {service}: {line}"));
                    urls.insert(service, url.clone());
                }
            }
            Some((_, port)) => {
                for service in ServiceName::BEHIND_GATEWAY {
                    urls.insert(service, format!("http://127.0.0.1:{}", port + service.port_offset()));
                }
            }
        }
        *self.urls.write().unwrap() = urls;
        *self.runner.lock().unwrap() = Some(Runner::Process(child));
        Ok(())
    }

    /// The child process of `cafe up` or `cafe cluster`.
    fn take_child(&self) -> Option<Child> {
        match self.runner.lock().unwrap().take() {
            Some(Runner::Process(child)) => Some(child),
            Some(Runner::InProcess(_)) => {
                panic!("the cafe runs in this process: a test of the process needs spawn_process_with")
            }
            None => None,
        }
    }

    /// The pid of `cafe up` or `cafe cluster`.
    pub fn pid(&self) -> u32 {
        match &*self.runner.lock().unwrap() {
            Some(Runner::Process(child)) => child.id().expect("the process is running"),
            Some(Runner::InProcess(_)) => {
                panic!("the cafe runs in this process: a test of the process needs spawn_process_with")
            }
            None => panic!("the cafe is not running"),
        }
    }

    /// `kill -9` the whole all-in-one process, wait for it to be gone, and start again on the
    /// same data dir.
    pub async fn crash_and_restart(&self) {
        self.kill9().await;
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.start_process().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// `kill -9` the all-in-one process and reap it.
    pub async fn kill9(&self) {
        assert_eq!(self.mode, Mode::AllInOne, "a cluster is killed one child at a time: kill9_instance");
        if let Some(mut child) = self.take_child() {
            child.kill().await.expect("kill -9");
        }
    }

    /// Waits, at most `within`, for the process to exit on its own (a signal, a failpoint),
    /// and reaps it.
    pub async fn wait_for_exit(&self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.take_child().expect("the process was started");
        let status = tokio::time::timeout(within, child.wait()).await;
        status.unwrap_or_else(|_| panic!("the process did not exit within {within:?}")).expect("wait for the process")
    }

    /// Starts `cafe up` again on the same data, with `flags` instead of the ones it ran with,
    /// once the last process is gone ([`kill9`](Self::kill9), [`wait_for_exit`](Self::wait_for_exit)).
    pub async fn restart_with(&self, flags: &[&str]) {
        assert!(!self.in_process && self.cluster.is_none(), "only a `cafe up` process restarts with other flags");
        assert!(self.runner.lock().unwrap().is_none(), "the last process is still running");
        *self.flags.lock().unwrap() = flags.iter().map(|s| s.to_string()).collect();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.start_process().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// The tail of this run's stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        if self.in_process {
            return "(the cafe runs in this process: its output is the test's)".into();
        }
        let generation = self.generation.load(Ordering::SeqCst);
        tail(&self.stderr_path(generation), 3000)
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub fn gateway(&self) -> String {
        self.service_url(ServiceName::Gateway)
    }

    /// The service's URL: its port in the all-in-one mode, its first instance in a cluster.
    pub fn service_url(&self, service: ServiceName) -> String {
        self.urls.read().unwrap().get(&service).cloned().unwrap_or_else(|| panic!("no url for {service}"))
    }

    /// Every service's URL and the gateway's, in port order.
    pub fn urls(&self) -> Vec<(ServiceName, String)> {
        ServiceName::ALL.into_iter().map(|s| (s, self.service_url(s))).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway(), path)
    }

    // ---- raw requests -------------------------------------------------------------------

    pub async fn try_request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, reqwest::Error> {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        read_reply(req.send().await?).await
    }

    /// Any request through the gateway; panics only if there is no answer at all.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let m = method.clone();
        self.try_request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{m} {path}: no answer: {e}\nstderr tail:\n{}", self.stderr_tail()))
    }

    /// A request with a raw body and content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let m = method.clone();
        let res = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{m} {path}: no answer: {e}"));
        read_reply(res).await.unwrap_or_else(|e| panic!("{m} {path}: unreadable answer: {e}"))
    }

    /// Any request through the gateway, as the bearer of `token` (anonymous with none).
    pub async fn request_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.request_to_as(&self.gateway(), token, method, path, body).await
    }

    /// Any request to `base` (a service's own port, say), as the bearer of `token`.
    pub async fn request_to_as(
        &self,
        base: &str,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.client.request(method.clone(), format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {base}{path}: no answer: {e}"));
        read_reply(res).await.unwrap_or_else(|e| panic!("{method} {path}: unreadable answer: {e}"))
    }

    /// Signs in through the gateway; the access token.
    pub async fn sign_in(&self, username: &str, password: &str) -> String {
        let r = self.post("/auth/token", &json!({"username": username, "password": password})).await;
        r.expect(200, &format!("sign in as {username}"))["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {}", r.text))
            .to_string()
    }

    /// Publishes `events` as they are onto the cafe's bus, as another publisher would (a
    /// newer version of a service, say): the embedded log in its data dir, or its stream.
    pub async fn publish_raw(&self, events: &[platform::Envelope]) {
        let bus: Box<dyn platform::EventBus> = match self.mode {
            Mode::AllInOne => {
                Box::new(platform::embedded::EmbeddedBus::open(&self.data_dir()).await.expect("the event log"))
            }
            Mode::Distributed => Box::new(
                platform::nats::NatsBus::connect(&self.infra.nats_url, self.namespace(), Default::default())
                    .await
                    .expect("NATS"),
            ),
        };
        bus.publish(events).await.expect("published");
    }

    /// The first manager's password, as `cafe up` or `cafe cluster` wrote it.
    pub fn manager_password(&self) -> String {
        let path = self.data_dir().join("manager-password");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
    }

    /// GET `path` of `service` itself, not through the gateway; panics unless it answers.
    pub async fn service_get(&self, service: ServiceName, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.service_url(service));
        self.client.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: no answer: {e}"))
    }

    /// The body of `service`'s own `path`, as text.
    pub async fn service_text(&self, service: ServiceName, path: &str) -> String {
        self.service_get(service, path).await.text().await.expect("a text body")
    }

    /// The body of `service`'s own `path`, as JSON.
    pub async fn service_json(&self, service: ServiceName, path: &str) -> Value {
        self.service_get(service, path).await.json().await.expect("a JSON body")
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    /// GET that must answer 200; returns the body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.expect(200, &format!("GET {path}")).clone()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, None).await
    }

    // ---- typed helpers ------------------------------------------------------------------

    pub async fn post_order(&self, body: &Value) -> Reply {
        self.post("/orders", body).await
    }

    /// Places a valid order; returns the created order.
    pub async fn place_order(&self) -> Value {
        self.place_order_with(&order_body(7, "Americano", 2, 4500)).await
    }

    pub async fn place_order_with(&self, body: &Value) -> Value {
        let r = self.post_order(body).await;
        r.expect(201, "POST /orders").clone()
    }

    pub async fn patch_drink(&self, drink_id: i64, status: &str) -> Reply {
        self.patch(&format!("/drinks/{drink_id}"), &json!({ "status": status })).await
    }

    pub async fn patch_delivery(&self, delivery_id: i64, status: &str) -> Reply {
        self.patch(&format!("/deliveries/{delivery_id}"), &json!({ "status": status })).await
    }

    pub async fn cancel_order(&self, order_id: i64) -> Reply {
        self.delete(&format!("/orders/{order_id}")).await
    }

    /// Takes every instance of a service down, through the admin switch (127.0.0.1 only).
    pub async fn stop_service(&self, service: ServiceName) {
        self.admin(service.as_str(), "stop").await.expect(204, &format!("stop {service}"));
    }

    /// Brings a stopped service back and waits until it is ready.
    pub async fn start_service(&self, service: ServiceName) {
        self.admin(service.as_str(), "start").await.expect(204, &format!("start {service}"));
    }

    /// `POST /admin/services/{name}/{action}`, where this mode has its admin switch.
    pub async fn admin(&self, name: &str, action: &str) -> Reply {
        let base = self.admin_url.read().unwrap().clone().expect("the admin url");
        let url = format!("{base}/admin/services/{name}/{action}");
        // Starting a cluster's service waits for its readiness: longer than a request.
        let res = self
            .client
            .post(&url)
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: no answer: {e}"));
        read_reply(res).await.unwrap_or_else(|e| panic!("POST {url}: unreadable answer: {e}"))
    }

    /// Every item of a collection, walking all pages of 1000.
    pub async fn all(&self, collection: &str) -> Vec<Value> {
        self.try_all(collection).await.unwrap_or_else(|e| panic!("GET /{collection}: {e}"))
    }

    /// Like [`all`](Self::all) but reports failure instead of panicking (for polls that may
    /// hit a restarting process).
    pub async fn try_all(&self, collection: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let path = format!("/{collection}?size=1000&page={page}");
            let r = self.try_request(Method::GET, &path, None).await.map_err(|e| e.to_string())?;
            if r.status != StatusCode::OK {
                return Err(format!("GET {path}: {} {}", r.status, r.text));
            }
            out.extend(items(&r.json));
            let pages = r.json["page"]["totalPages"].as_i64().unwrap_or(0);
            page += 1;
            if page >= pages {
                return Ok(out);
            }
        }
    }

    /// `totalElements` of a collection.
    pub async fn count(&self, collection: &str) -> i64 {
        let v = self.get_json(&format!("/{collection}?size=1")).await;
        v["page"]["totalElements"].as_i64().unwrap_or_else(|| panic!("no page.totalElements in /{collection}: {v}"))
    }

    /// Items of `/<collection>/search/findByOrderId?orderId=`: empty when none (404 or an
    /// empty collection), whether the search answers a collection or one item.
    pub async fn find_by_order_id(&self, collection: &str, order_id: i64) -> Vec<Value> {
        self.search(&format!("/{collection}/search/findByOrderId?orderId={order_id}")).await
    }

    pub async fn search(&self, path: &str) -> Vec<Value> {
        self.try_search(path).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_search(&self, path: &str) -> Result<Vec<Value>, String> {
        let r = self.try_request(Method::GET, path, None).await.map_err(|e| format!("GET {path}: {e}"))?;
        match r.status.as_u16() {
            200 if r.json.get("_embedded").is_some() || r.json.get("page").is_some() => Ok(items(&r.json)),
            200 => Ok(vec![r.json]),
            404 => Ok(vec![]),
            _ => Err(format!("GET {path}: {} {}", r.status, r.text)),
        }
    }

    /// The one row a search finds, if any.
    pub async fn find_one(&self, collection: &str, order_id: i64) -> Option<Value> {
        let rows = self.find_by_order_id(collection, order_id).await;
        assert!(rows.len() <= 1, "more than one /{collection} for order {order_id}: {rows:?}");
        rows.into_iter().next()
    }

    /// The drink made for an order, once it exists (it is created from the `Ordered` event).
    pub async fn drink_for(&self, order_id: i64) -> Value {
        eventually(self.deadline, async || {
            let drinks = self.try_all("drinks").await.ok()?;
            drinks.into_iter().find(|d| d["orderId"].as_i64() == Some(order_id))
        })
        .await
        .unwrap_or_else(|t| panic!("a drink for order {order_id}: {t:?}"))
    }

    /// Waits until a search row for the order has `status`.
    pub async fn wait_for_status(&self, collection: &str, order_id: i64, status: &str) -> Value {
        eventually(self.deadline, async || {
            let rows = self.try_search(&format!("/{collection}/search/findByOrderId?orderId={order_id}")).await.ok()?;
            rows.into_iter().find(|r| r["status"] == status)
        })
        .await
        .unwrap_or_else(|t| panic!("/{collection} of order {order_id} to be {status:?}: {t:?}"))
    }

    /// Waits until `GET /drinks/{id}` has `status`.
    pub async fn wait_for_drink(&self, drink_id: i64, status: &str) -> Value {
        eventually(self.deadline, async || {
            let r = self.try_request(Method::GET, &format!("/drinks/{drink_id}"), None).await.ok()?;
            (r.status == StatusCode::OK && r.json["status"] == status).then_some(r.json)
        })
        .await
        .unwrap_or_else(|t| panic!("drink {drink_id} to be {status:?}: {t:?}"))
    }

    /// Waits for a cancelled order's compensation: OrderCanceled → DrinkCanceled →
    /// PaymentCanceled, the same single payment refunded, my page at "Payment Canceled".
    pub async fn wait_for_compensation(&self, order_id: i64, drink_id: i64, payment_id: i64) {
        self.wait_for_drink(drink_id, "Canceled").await;
        eventually(self.deadline, async || {
            let p = self.get_json(&format!("/payments/{payment_id}")).await;
            (p["status"] == "Canceled").then_some(())
        })
        .await
        .expect("the payment to be Canceled");
        let payments = self.find_by_order_id("payments", order_id).await;
        assert_eq!(payments.len(), 1, "a refund is not a second payment: {payments:?}");
        self.wait_for_status("mypages", order_id, "Payment Canceled").await;
    }

    /// Places an order, waits for its drink, makes it, and waits for its delivery to start.
    /// Returns (order, drink, delivery).
    pub async fn order_made_and_started(&self) -> (Value, Value, Value) {
        let order = self.place_order().await;
        let order_id = id(&order);
        let drink = self.drink_for(order_id).await;
        self.patch_drink(id(&drink), "Made").await.expect(200, "PATCH drink Made");
        let delivery = self.wait_for_status("deliveries", order_id, "Delivery Started").await;
        (order, drink, delivery)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let keep = std::thread::panicking() && std::env::var_os("CAFE_TEST_KEEP").is_some();
        match self.runner.get_mut().ok().and_then(|r| r.take()) {
            // The cafe's tasks end with the test's runtime; stopping lets them drain first.
            Some(Runner::InProcess(stop)) => stop.stop(),
            Some(Runner::Process(mut child)) if self.cluster.is_some() => {
                cluster::terminate(&mut child, Duration::from_secs(20))
            }
            Some(Runner::Process(mut child)) => {
                let _ = child.start_kill();
                // Reap it before its data dir goes, polling for at most two seconds.
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            None => {}
        }
        if let Some((namespace, _)) = &self.cluster {
            if keep {
                eprintln!(
                    "kept the failed test's databases {namespace}_* and stream {}_EVENTS",
                    namespace.to_uppercase()
                );
            } else {
                cluster::drop_namespace(namespace, &self.infra);
            }
        }
        if keep {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("kept the failed test's data and logs in {}", kept.display());
        }
    }
}

async fn read_reply(res: reqwest::Response) -> Result<Reply, reqwest::Error> {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, headers, text, json })
}

/// `cafe up: gateway=http://.. order=http://..` (or `cafe cluster: gateway=.. admin=..
/// namespace=..`) → {gateway: .., order: ..}.
fn parse_ready_line(line: &str) -> HashMap<String, String> {
    line.split_once(": ")
        .map_or(line, |(_, rest)| rest)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches('/').to_string()))
        .collect()
}

/// The items of a HAL collection, whatever its `_embedded` key.
pub fn items(v: &Value) -> Vec<Value> {
    match v.get("_embedded").and_then(Value::as_object) {
        Some(map) => map.values().filter_map(Value::as_array).flatten().cloned().collect(),
        None => vec![],
    }
}

/// The `id` of an item.
#[track_caller]
pub fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no numeric id in {v}"))
}

/// A valid `POST /orders` body; `n` varies the phone number.
pub fn order_body(n: u64, product: &str, qty: i64, amt: i64) -> Value {
    json!({
        "phoneNumber": format!("010-{:04}-{:04}", (n / 10000) % 10000, n % 10000),
        "productName": product,
        "qty": qty,
        "amt": amt,
    })
}

fn tail(path: &Path, max: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let start = s.len().saturating_sub(max);
    let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
    s[start..].to_string()
}

/// A tiny deterministic generator (xorshift64*), seeded per test so a failure can be replayed
/// with `CAFE_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(default: u64) -> Rng {
        let seed = std::env::var("CAFE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
        eprintln!("seed {seed} (set CAFE_TEST_SEED to replay)");
        Rng(seed.max(1))
    }

    /// A generator seeded from another's output, without announcing its seed.
    pub fn quiet(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
