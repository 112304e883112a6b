//! Starts the real `cafe up` binary on ephemeral ports with a fresh data directory, and
//! talks to it through the gateway with typed helpers.
//!
//! Nothing here sleeps for a fixed time: every wait is a poll with a deadline
//! ([`wait_until`]), so a fast machine is fast and a slow one only waits longer.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long any single eventual-consistency wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often a wait polls.
pub const POLL: Duration = Duration::from_millis(20);

/// One running `cafe up`. Killed (SIGKILL) on drop; its data directory is removed after.
pub struct TestApp {
    child: Mutex<Option<Child>>,
    /// `gateway`, `order`, `payment`, ... → `http://127.0.0.1:PORT` of the current process.
    urls: RwLock<HashMap<String, String>>,
    args: Vec<String>,
    pub client: reqwest::Client,
    /// Incremented by every restart; lets concurrent clients notice one.
    generation: std::sync::atomic::AtomicU64,
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

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// `cafe up --port 0` with a fresh data dir and `extra` flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let dir = tempfile::Builder::new().prefix("cafe-test-").tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let app = TestApp {
        child: Mutex::new(None),
        urls: RwLock::new(HashMap::new()),
        args: extra.iter().map(|s| s.to_string()).collect(),
        client,
        generation: Default::default(),
        dir,
    };
    app.start_process().await;
    app
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn stderr_path(&self, generation: u64) -> PathBuf {
        self.dir.path().join(format!("stderr-{generation}.log"))
    }

    /// Runs the binary and waits for its `cafe up:` line.
    async fn start_process(&self) {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let stderr_path = self.stderr_path(generation);
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cafe"));
        cmd.arg("up")
            .arg("--port")
            .arg("0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--log-dir")
            .arg(self.log_dir())
            .args(&self.args)
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
                    Ok(Some(l)) if l.starts_with("cafe up:") => return Some(l),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await;
        let line = match line {
            Ok(Some(l)) => l,
            other => {
                let _ = child.start_kill();
                let status = child.wait().await;
                panic!(
                    "cafe up did not print its ready line ({}; exit {:?}); stderr:\n{}",
                    if other.is_err() { "timed out" } else { "stdout closed" },
                    status,
                    tail(&stderr_path, 4000)
                );
            }
        };
        // Keep draining stdout so the child never blocks or dies on a full or broken pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let urls = parse_ready_line(&line);
        for name in ["gateway", "order", "payment", "drink", "customercenter", "delivery", "deliverycenter"] {
            assert!(urls.contains_key(name), "ready line lacks {name}: {line}");
        }
        *self.urls.write().unwrap() = urls;
        *self.child.lock().unwrap() = Some(child);
    }

    /// `kill -9`, wait for the process to be gone, and start again on the same data dir.
    pub async fn crash_and_restart(&self) {
        self.kill9().await;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.start_process().await;
    }

    /// `kill -9` and reap.
    pub async fn kill9(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            child.kill().await.expect("kill -9");
        }
    }

    /// The tail of this run's stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        tail(&self.stderr_path(generation), 3000)
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub fn gateway(&self) -> String {
        self.service_url("gateway")
    }

    pub fn service_url(&self, name: &str) -> String {
        self.urls.read().unwrap().get(name).cloned().unwrap_or_else(|| panic!("no url for {name}"))
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

    pub async fn stop_service(&self, name: &str) {
        let r = self.request(Method::POST, &format!("/admin/services/{name}/stop"), None).await;
        r.expect(204, &format!("stop {name}"));
    }

    pub async fn start_service(&self, name: &str) {
        let r = self.request(Method::POST, &format!("/admin/services/{name}/start"), None).await;
        r.expect(204, &format!("start {name}"));
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
        wait_until(&format!("a drink for order {order_id}"), DEADLINE, || async move {
            let drinks = self.try_all("drinks").await.ok()?;
            drinks.into_iter().find(|d| d["orderId"].as_i64() == Some(order_id))
        })
        .await
    }

    /// Waits until a search row for the order has `status`.
    pub async fn wait_for_status(&self, collection: &str, order_id: i64, status: &str) -> Value {
        wait_until(&format!("/{collection} of order {order_id} to be {status:?}"), DEADLINE, || async move {
            let rows = self.try_search(&format!("/{collection}/search/findByOrderId?orderId={order_id}")).await.ok()?;
            rows.into_iter().find(|r| r["status"] == status)
        })
        .await
    }

    /// Waits until `GET /drinks/{id}` has `status`.
    pub async fn wait_for_drink(&self, drink_id: i64, status: &str) -> Value {
        wait_until(&format!("drink {drink_id} to be {status:?}"), DEADLINE, || async move {
            let r = self.try_request(Method::GET, &format!("/drinks/{drink_id}"), None).await.ok()?;
            (r.status == StatusCode::OK && r.json["status"] == status).then_some(r.json)
        })
        .await
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
        if let Some(mut child) = self.child.get_mut().ok().and_then(|c| c.take()) {
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
        if std::thread::panicking() && std::env::var_os("CAFE_TEST_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("kept the failed test's data and logs in {}", kept.display());
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

/// `cafe up: gateway=http://.. order=http://..` → {gateway: .., order: ..}.
pub fn parse_ready_line(line: &str) -> HashMap<String, String> {
    line.trim_start_matches("cafe up:")
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
