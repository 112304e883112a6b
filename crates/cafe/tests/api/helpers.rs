//! Starts the real `cafe` binary in either mode and talks to it through the gateway with
//! typed helpers: `cafe up --port 0` (all-in-one, a fresh data directory) or `cafe cluster`
//! (distributed: every service its own process on PostgreSQL and NATS JetStream, a fresh
//! namespace so databases and streams never collide).
//!
//! Nothing here sleeps for a fixed time: every wait is a poll with a deadline
//! ([`wait_until`]), so a fast machine is fast and a slow one only waits longer.
//!
//! Shared by every integration test binary (`#[path]`, with `#[allow(dead_code)]`), each of
//! which uses a part of it.

#![allow(unused_macros)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long any single eventual-consistency wait may take in the all-in-one mode.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The same in the distributed mode: thirteen processes share two cores there.
pub const DISTRIBUTED_DEADLINE: Duration = Duration::from_secs(30);
/// How often a wait polls.
pub const POLL: Duration = Duration::from_millis(20);

/// What the distributed mode needs running on this machine.
pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
pub const NATS_ADDR: &str = "127.0.0.1:4222";
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
const NATS_URL: &str = "nats://127.0.0.1:4222";

/// The services in the order of their ports (SPEC §2): service `i` is on `BASE + 1 + i`.
pub const SERVICES: [&str; 6] = ["order", "payment", "drink", "customercenter", "delivery", "deliverycenter"];

/// Which way the cafe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cafe up`: one process, embedded storage and event log.
    AllInOne,
    /// `cafe cluster`: the gateway and every service a child process (two replicas of
    /// payment and drink), on PostgreSQL and NATS JetStream.
    Distributed,
}

/// A cluster is thirteen processes; more than two at once only makes every test slower and
/// its deadlines tighter. Shared by every test thread of a binary.
static CLUSTERS: Semaphore = Semaphore::const_new(2);

/// One running cafe. All-in-one: killed (SIGKILL) on drop. Distributed: stopped with SIGTERM
/// (the cluster stops its children), then its databases and stream are dropped. The data and
/// log directory is removed after.
pub struct TestApp {
    pub mode: Mode,
    child: Mutex<Option<Child>>,
    /// `gateway`, `order`, `payment`, ... (and `admin` for a cluster) → `http://127.0.0.1:PORT`.
    urls: RwLock<HashMap<String, String>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
    /// How long an eventual-consistency wait may take in this mode.
    pub deadline: Duration,
    /// Incremented by every restart; lets concurrent clients notice one.
    generation: AtomicU64,
    /// Distributed only: the namespace and the gateway's port.
    cluster: Option<(String, u16)>,
    _permit: Option<SemaphorePermit<'static>>,
    // Last, so it is removed after the child is gone.
    dir: tempfile::TempDir,
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
        mod all_in_one {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = crate::helpers::spawn(crate::helpers::Mode::AllInOne).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod distributed {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = crate::helpers::spawn(crate::helpers::Mode::Distributed).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// `cafe up --port 0` with a fresh data dir and `extra` flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_with(Mode::AllInOne, extra, &[]).await.expect("the all-in-one mode needs nothing installed")
}

/// A fresh cafe in `mode`; `None` when the distributed mode's PostgreSQL or NATS is not
/// running and this is not CI (the test then passes without running).
pub async fn spawn(mode: Mode) -> Option<TestApp> {
    spawn_with(mode, &[], &[]).await
}

/// Like [`spawn`], with extra flags for `cafe up` / `cafe cluster` and extra environment
/// (a cluster's children inherit it).
pub async fn spawn_with(mode: Mode, extra: &[&str], env: &[(&str, &str)]) -> Option<TestApp> {
    let permit = match mode {
        Mode::AllInOne => None,
        Mode::Distributed => {
            if !require_infra() {
                return None;
            }
            Some(CLUSTERS.acquire().await.expect("the cluster semaphore is never closed"))
        }
    };
    let dir = tempfile::Builder::new().prefix("cafe-test-").tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let mut app = TestApp {
        mode,
        child: Mutex::new(None),
        urls: RwLock::new(HashMap::new()),
        args: extra.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        client,
        deadline: if mode == Mode::Distributed { DISTRIBUTED_DEADLINE } else { DEADLINE },
        generation: Default::default(),
        cluster: None,
        _permit: permit,
        dir,
    };
    match mode {
        Mode::AllInOne => app.start_process().await.unwrap_or_else(|e| panic!("{e}")),
        Mode::Distributed => {
            // The base port is checked free just before use; another process may still take
            // one of its fourteen ports first, so a failed start tries another base.
            let mut attempt = 0;
            loop {
                attempt += 1;
                app.cluster = Some((fresh_namespace(), free_port_range(14)));
                match app.start_process().await {
                    Ok(()) => break,
                    Err(e) if attempt < 3 => {
                        eprintln!("cafe cluster did not start (attempt {attempt}), trying other ports: {e}");
                        app.generation.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    Some(app)
}

/// Is what the distributed mode needs running? If not: under CI (`CI` set and not `false`
/// or `0`) the test fails; elsewhere it says it is skipped and the caller returns early.
pub fn require_infra() -> bool {
    static CHECKED: OnceLock<Result<bool, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| check_infra(&[POSTGRES_ADDR, NATS_ADDR], running_in_ci()));
    match checked {
        Ok(true) => true,
        Ok(false) => {
            eprintln!("skipping: PostgreSQL/NATS not running ({POSTGRES_ADDR}, {NATS_ADDR})");
            false
        }
        Err(why) => panic!("{why}"),
    }
}

pub fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `Ok(true)`: every address accepts a TCP connection. `Ok(false)`: one does not, and the
/// distributed tests are skipped. `Err`: one does not and this is CI, where a skipped test
/// would hide that nothing was tested.
pub fn check_infra(addrs: &[&str], ci: bool) -> Result<bool, String> {
    let down: Vec<&str> = addrs
        .iter()
        .copied()
        .filter(|a| {
            let addr: SocketAddr = a.parse().unwrap_or_else(|_| panic!("not a socket address: {a}"));
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
        })
        .collect();
    match (down.is_empty(), ci) {
        (true, _) => Ok(true),
        (false, false) => Ok(false),
        (false, true) => Err(format!(
            "the distributed-mode tests need PostgreSQL and NATS JetStream, but nothing answers at {}; \
             under CI they fail rather than skip (.ci/run starts both)",
            down.join(", ")
        )),
    }
}

/// `t<pid>_<n>_<random>`: lowercase letters, digits and `_`, unique per test.
fn fresh_namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("t{}_{n}_{:06x}", std::process::id(), random() & 0xff_ffff)
}

/// A pseudo-random number, different per call and per process.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A base port `P` in 10000..32000 with `P..P+count` all free on 127.0.0.1 right now: below
/// the ephemeral range (32768+), so no outgoing connection takes a slot that starts later.
fn free_port_range(count: u16) -> u16 {
    for _ in 0..1000 {
        let base = 10_000 + (random() % 22_000) as u16;
        let listeners: Vec<_> = (0..count).map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if listeners.len() == count as usize {
            return base;
        }
    }
    panic!("no {count} consecutive free ports in 10000..32000");
}

/// A child process of a cluster: which service, and on which port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub pid: u32,
    /// `gateway`, `order`, `payment`, ...
    pub service: String,
    pub port: u16,
    /// 0 or 1: the first or the second instance slot of the service.
    pub slot: u16,
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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
                    .arg(POSTGRES_URL)
                    .arg("--nats")
                    .arg(NATS_URL)
                    // Stops (admin stop, Drop) need not wait long for a gateway to notice.
                    .arg("--drain-ms")
                    .arg("300");
                "cafe cluster:"
            }
        };
        cmd.arg("--log-dir")
            .arg(self.log_dir())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
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
                    terminate_cluster(&mut child, Duration::from_secs(10));
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
        // Keep draining stdout so the child never blocks or dies on a full or broken pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut urls = parse_ready_line(&line);
        let needed: &[&str] = match &self.cluster {
            None => &["gateway", "order", "payment", "drink", "customercenter", "delivery", "deliverycenter"],
            Some((_, port)) => {
                for (i, service) in SERVICES.iter().enumerate() {
                    urls.insert(service.to_string(), format!("http://127.0.0.1:{}", port + 1 + i as u16));
                }
                &["gateway", "admin"]
            }
        };
        for name in needed {
            assert!(urls.contains_key(*name), "ready line lacks {name}: {line}");
        }
        *self.urls.write().unwrap() = urls;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
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
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            child.kill().await.expect("kill -9");
        }
    }

    /// The tail of this run's stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let generation = self.generation.load(Ordering::SeqCst);
        tail(&self.stderr_path(generation), 3000)
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub fn gateway(&self) -> String {
        self.service_url("gateway")
    }

    /// The service's URL: its port in the all-in-one mode, its first instance in a cluster.
    pub fn service_url(&self, name: &str) -> String {
        self.urls.read().unwrap().get(name).cloned().unwrap_or_else(|| panic!("no url for {name}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway(), path)
    }

    // ---- the processes of a cluster ------------------------------------------------------

    fn cluster_pid(&self) -> u32 {
        assert_eq!(self.mode, Mode::Distributed, "instances exist only in the distributed mode");
        self.child.lock().unwrap().as_ref().and_then(|c| c.id()).expect("the cluster is running")
    }

    /// The cluster's running children: `cafe serve <service>` with `CAFE_PORT`.
    pub fn instances(&self) -> Vec<Instance> {
        let cluster = self.cluster_pid();
        let base = self.cluster.as_ref().map(|(_, p)| *p).unwrap_or_default();
        children_of(cluster)
            .into_iter()
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let args: Vec<String> =
                    cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                let at = args.iter().position(|a| a == "serve")?;
                let service = args.get(at + 1)?.clone();
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                let port: u16 = environ
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(b"CAFE_PORT="))
                    .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())?;
                let slot = if port == base { 0 } else { (port - base - 1) / 6 };
                Some(Instance { pid, service, port, slot })
            })
            .collect()
    }

    /// The pid of `service`'s instance in `slot`, if it is running.
    pub fn instance(&self, service: &str, slot: u16) -> Option<Instance> {
        self.instances().into_iter().find(|i| i.service == service && i.slot == slot)
    }

    /// `kill -9` one instance of a cluster and wait until that process is gone (the cluster
    /// starts a new one soon after). Returns the killed instance.
    pub async fn kill9_instance(&self, service: &str, slot: u16) -> Instance {
        let inst =
            wait_until(&format!("{service}#{slot} running"), self.deadline, || async { self.instance(service, slot) })
                .await;
        let status = std::process::Command::new("kill").arg("-9").arg(inst.pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -9 {} ({service}#{slot})", inst.pid);
        wait_until(&format!("{service}#{slot} (pid {}) gone", inst.pid), self.deadline, || async {
            (self.instance(service, slot).map(|i| i.pid) != Some(inst.pid)).then_some(())
        })
        .await;
        inst
    }

    /// Waits until `service`'s instance in `slot` is running as a process other than
    /// `not_pid` and answers its readiness probe with 200.
    pub async fn wait_instance_ready(&self, service: &str, slot: u16, not_pid: u32) -> Instance {
        let what = format!("{service}#{slot} back and ready");
        wait_until(&what, self.deadline, || async {
            let inst = self.instance(service, slot).filter(|i| i.pid != not_pid)?;
            let url = format!("http://127.0.0.1:{}/actuator/health/readiness", inst.port);
            let r = self.client.get(&url).timeout(Duration::from_secs(1)).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(inst)
        })
        .await
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

    /// Takes every instance of a service down: through the gateway's admin switch in the
    /// all-in-one mode, the cluster's admin port in the distributed one.
    pub async fn stop_service(&self, name: &str) {
        self.admin(name, "stop").await;
    }

    /// Brings a stopped service back and waits until it is ready.
    pub async fn start_service(&self, name: &str) {
        self.admin(name, "start").await;
    }

    async fn admin(&self, name: &str, action: &str) {
        let base = match self.mode {
            Mode::AllInOne => self.gateway(),
            Mode::Distributed => self.service_url("admin"),
        };
        let url = format!("{base}/admin/services/{name}/{action}");
        // Starting a cluster's service waits for its readiness: longer than a request.
        let res = self
            .client
            .post(&url)
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: no answer: {e}"));
        let r = read_reply(res).await.unwrap_or_else(|e| panic!("POST {url}: unreadable answer: {e}"));
        r.expect(204, &format!("{action} {name}"));
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
        wait_until(&format!("a drink for order {order_id}"), self.deadline, || async move {
            let drinks = self.try_all("drinks").await.ok()?;
            drinks.into_iter().find(|d| d["orderId"].as_i64() == Some(order_id))
        })
        .await
    }

    /// Waits until a search row for the order has `status`.
    pub async fn wait_for_status(&self, collection: &str, order_id: i64, status: &str) -> Value {
        wait_until(&format!("/{collection} of order {order_id} to be {status:?}"), self.deadline, || async move {
            let rows = self.try_search(&format!("/{collection}/search/findByOrderId?orderId={order_id}")).await.ok()?;
            rows.into_iter().find(|r| r["status"] == status)
        })
        .await
    }

    /// Waits until `GET /drinks/{id}` has `status`.
    pub async fn wait_for_drink(&self, drink_id: i64, status: &str) -> Value {
        wait_until(&format!("drink {drink_id} to be {status:?}"), self.deadline, || async move {
            let r = self.try_request(Method::GET, &format!("/drinks/{drink_id}"), None).await.ok()?;
            (r.status == StatusCode::OK && r.json["status"] == status).then_some(r.json)
        })
        .await
    }

    /// Waits for a cancelled order's compensation: OrderCanceled → DrinkCanceled →
    /// PaymentCanceled, the same single payment refunded, my page at "Payment Canceled".
    pub async fn wait_for_compensation(&self, order_id: i64, drink_id: i64, payment_id: i64) {
        self.wait_for_drink(drink_id, "Canceled").await;
        wait_until("the payment to be Canceled", self.deadline, || async {
            let p = self.get_json(&format!("/payments/{payment_id}")).await;
            (p["status"] == "Canceled").then_some(())
        })
        .await;
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
        if let Some(mut child) = self.child.get_mut().ok().and_then(|c| c.take()) {
            if self.cluster.is_some() {
                terminate_cluster(&mut child, Duration::from_secs(20));
            } else {
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
        }
        if let Some((namespace, _)) = &self.cluster {
            if keep {
                eprintln!(
                    "kept the failed test's databases {namespace}_* and stream {}_EVENTS",
                    namespace.to_uppercase()
                );
            } else {
                drop_namespace(namespace);
            }
        }
        if keep {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("kept the failed test's data and logs in {}", kept.display());
        }
    }
}

/// SIGTERM to a cluster, which stops its children and exits; after `grace`, SIGKILL to
/// whatever is left, children first (a SIGKILLed cluster would leave them running).
fn terminate_cluster(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("cafe cluster (pid {pid}) did not stop within {grace:?}; killing it and its children");
    for c in children_of(pid) {
        let _ = std::process::Command::new("kill").arg("-9").arg(c.to_string()).status();
    }
    let _ = child.start_kill();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The live (not zombie) children of `parent`, from `/proc/<pid>/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            ppid == Some(parent) && state != Some("Z")
        })
        .collect()
}

/// Drops a test cluster's databases and its JetStream stream. Best effort: a leftover only
/// costs disk space. Each `DROP DATABASE` waits for a checkpoint, so they run side by side.
fn drop_namespace(namespace: &str) {
    let drops: Vec<_> = SERVICES
        .iter()
        .filter_map(|service| {
            std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-X", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {namespace}_{service} WITH (FORCE)"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
        .collect();
    if let Err(e) = delete_stream(&format!("{}_EVENTS", namespace.to_uppercase())) {
        eprintln!("could not delete the stream of {namespace}: {e}");
    }
    let until = Instant::now() + Duration::from_secs(10);
    let mut failed = SERVICES.len() - drops.len();
    for mut psql in drops {
        loop {
            match psql.try_wait() {
                Ok(Some(status)) => {
                    failed += usize::from(!status.success());
                    break;
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                // Still dropping: let it finish on its own.
                _ => break,
            }
        }
    }
    if failed > 0 {
        eprintln!("could not drop {failed} of the databases {namespace}_* (psql missing or failed); left in place");
    }
}

/// `$JS.API.STREAM.DELETE.<stream>` over NATS's text protocol: a request with a reply inbox,
/// and the reply awaited for at most a few seconds.
fn delete_stream(stream: &str) -> std::io::Result<()> {
    let addr: SocketAddr = NATS_ADDR.parse().expect("NATS address");
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = std::io::BufReader::new(conn.try_clone()?);
    let mut info = String::new();
    reader.read_line(&mut info)?;
    let inbox = format!("_INBOX.cafetest{:x}", random());
    write!(
        conn,
        "CONNECT {{\"verbose\":false}}\r\nSUB {inbox} 1\r\nPUB $JS.API.STREAM.DELETE.{stream} {inbox} 0\r\n\r\n"
    )?;
    conn.flush()?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("NATS closed the connection"));
        }
        if line.starts_with("PING") {
            conn.write_all(b"PONG\r\n")?;
        } else if line.starts_with("-ERR") {
            return Err(std::io::Error::other(line.trim().to_string()));
        } else if let Some(header) = line.strip_prefix("MSG ") {
            let size: usize = header.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0);
            let mut body = vec![0; size + 2];
            reader.read_exact(&mut body)?;
            return Ok(());
        }
    }
}

/// Polls `check` every [`POLL`] until it gives `Some`, or panics naming `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`], but the check explains why it is not there yet, and the last reason is
/// in the panic.
pub async fn wait_until_ok<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let why = match check().await {
            Ok(()) => return,
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last: {why}");
        }
        tokio::time::sleep(POLL).await;
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
pub fn parse_ready_line(line: &str) -> HashMap<String, String> {
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

// ---- settling after chaos ---------------------------------------------------------------

/// PATCHes every queued drink to Made; returns how many it made. Errors are ignored: the
/// process may be down.
pub async fn make_queued_drinks(app: &TestApp) -> u64 {
    let Ok(queue) = app.try_all("orderinfos").await else { return 0 };
    let mut made = 0;
    for drink in queue {
        let Some(drink_id) = drink["id"].as_i64() else { continue };
        let body = json!({"status": "Made"});
        if let Ok(r) = app.try_request(Method::PATCH, &format!("/drinks/{drink_id}"), Some(&body)).await {
            if r.status == StatusCode::OK {
                made += 1;
            }
        }
    }
    made
}

fn by_order(rows: &[Value]) -> HashMap<i64, Vec<&Value>> {
    let mut m: HashMap<i64, Vec<&Value>> = HashMap::new();
    for r in rows {
        m.entry(r["orderId"].as_i64().unwrap_or(-1)).or_default().push(r);
    }
    m
}

/// `Ok` once everything agrees; otherwise why not (yet).
pub async fn check_settled(app: &TestApp) -> Result<(), String> {
    let orders = app.try_all("orders").await?;
    let payments = app.try_all("payments").await?;
    let drinks = app.try_all("drinks").await?;
    let deliveries = app.try_all("deliveries").await?;
    let pages = app.try_all("deliverypages").await?;
    let mypages = app.try_all("mypages").await?;
    let (payments_of, drinks_of, deliveries_of, pages_of, mine_of) =
        (by_order(&payments), by_order(&drinks), by_order(&deliveries), by_order(&pages), by_order(&mypages));
    let none = Vec::new();

    for o in &orders {
        let oid = id(o);
        if o["status"] != "Ordered" {
            return Err(format!("order {oid} listed with status {}", o["status"]));
        }
        let ps = payments_of.get(&oid).unwrap_or(&none);
        if ps.len() != 1 || ps[0]["status"] != "Approved" {
            return Err(format!("order {oid}: payments {ps:?}"));
        }
        if ps[0]["amt"] != o["amt"] {
            return Err(format!("order {oid}: paid {} for {}", ps[0]["amt"], o["amt"]));
        }
        let ds = drinks_of.get(&oid).unwrap_or(&none);
        if ds.len() != 1 || ds[0]["status"] != "Made" {
            return Err(format!("order {oid}: drinks {ds:?}"));
        }
        let ls = deliveries_of.get(&oid).unwrap_or(&none);
        if ls.len() > 1 {
            return Err(format!("order {oid}: {} deliveries {ls:?}", ls.len()));
        }
        let Some(delivery) = ls.first() else { return Err(format!("order {oid}: no delivery yet")) };
        if delivery["status"] != "Delivery Started" {
            return Err(format!("order {oid}: delivery {delivery}"));
        }
        let page = pages_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no delivery page row"))?;
        if page["status"] != "Delivery Started" || page["deliveryId"] != delivery["id"] || page["amt"] != o["amt"] {
            return Err(format!("order {oid}: delivery page {page} vs delivery {delivery}"));
        }
        let mine = mine_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no my page row"))?;
        if mine["status"] != "Delivery Started"
            || mine["deliveryId"] != delivery["id"]
            || mine["paymentId"] != ps[0]["id"]
            || mine["drinkId"] != ds[0]["id"]
        {
            return Err(format!("order {oid}: my page {mine}"));
        }
    }

    let order_ids: std::collections::HashSet<i64> = orders.iter().map(id).collect();
    for p in &payments {
        if p["status"] == "Approved" && !order_ids.contains(&p["orderId"].as_i64().unwrap_or(-1)) {
            return Err(format!("approved payment without its order: {p}"));
        }
    }
    for (what, rows) in [("drink", &drinks), ("delivery", &deliveries), ("delivery page", &pages)] {
        if let Some(r) = rows.iter().find(|r| !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))) {
            return Err(format!("{what} without its order: {r}"));
        }
    }
    if pages.len() != orders.len() {
        return Err(format!("{} delivery page rows for {} orders", pages.len(), orders.len()));
    }
    // My page hears of payments too, so a placement voided by a kill may show there, but
    // only as what it is: a cancelled payment with no drink and no delivery.
    for r in &mypages {
        if !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))
            && (r["status"] != "Payment Canceled" || !r["drinkId"].is_null() || !r["deliveryId"].is_null())
        {
            return Err(format!("my page row without its order: {r}"));
        }
    }
    Ok(())
}
