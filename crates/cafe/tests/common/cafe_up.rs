//! `cafe up` as a child process for the test binaries that need the process itself (its
//! environment, signals, CPU time, log files): on free ports, in a fresh directory, killed
//! on drop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Cafe {
    pub child: Child,
    /// `gateway`, `order`, ... → `http://127.0.0.1:PORT`.
    pub urls: HashMap<String, String>,
    /// From spawning to the `cafe up:` line.
    pub started_in: Duration,
    pub logs: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn cafe_up(extra: &[&str], env: &[(&str, &str)]) -> Cafe {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cafe"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(&logs)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let l = lines.next_line().await.unwrap().expect("cafe exited before it was up");
            if l.starts_with("cafe up:") {
                return l;
            }
        }
    })
    .await
    .expect("cafe up within 30 s");
    let started_in = started.elapsed();
    let urls = line["cafe up:".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Cafe { child, urls, started_in, logs, _dir: dir }
}

/// Polls `f` every 20 ms until it gives a value, for at most 20 s; `why` explains a timeout.
pub async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>, why: impl Fn() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", why());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
