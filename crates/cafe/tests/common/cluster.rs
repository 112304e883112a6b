//! The distributed mode's side of the harness: whether PostgreSQL and NATS are there (a
//! developer's `cargo test` skips the distributed tests without them; CI must not, since a
//! skip would report success for tests that never ran), a fresh namespace and free ports per
//! cluster, the cluster's child processes (to `kill -9` one), and cleaning up after it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use contracts::ServiceName;
use reqwest::StatusCode;
use tokio::process::Child;

use super::{eventually, Mode, TestApp};

/// What the distributed mode needs running on this machine.
pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
pub const NATS_ADDR: &str = "127.0.0.1:4222";
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// The PostgreSQL server (a URL without a database: each service has its own) and the NATS
/// server a cluster runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infra {
    pub postgres_url: String,
    pub nats_url: String,
}

impl Infra {
    /// The machine's own, which `.ci/run` starts and every distributed test shares.
    pub fn shared() -> Infra {
        Infra { postgres_url: POSTGRES_URL.into(), nats_url: NATS_URL.into() }
    }
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

/// Can a test that needs more of the machine (root, a tool, a server) run? `missing` names
/// what it lacks. Nothing missing: true. Otherwise under CI the test fails, since a skip
/// would pass a test that never ran; elsewhere it says it is skipped and the caller returns.
pub fn require(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join("; ");
    assert!(!running_in_ci(), "{test} needs {missing}; under CI it fails rather than skip (.ci/run provides them)");
    eprintln!("skipping {test}: it needs {missing}");
    false
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
pub(super) fn fresh_namespace() -> String {
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
pub fn free_port_range(count: u16) -> u16 {
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
    pub service: ServiceName,
    pub port: u16,
    /// 0 or 1: the first or the second instance slot of the service.
    pub slot: u16,
}

impl TestApp {
    fn cluster_pid(&self) -> u32 {
        assert_eq!(self.mode, Mode::Distributed, "instances exist only in the distributed mode");
        self.pid()
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
                let service = args.get(at + 1)?.parse().ok()?;
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                let port: u16 = environ
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(b"CAFE_PORT="))
                    .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())?;
                let services = ServiceName::BEHIND_GATEWAY.len() as u16;
                let slot = if port == base { 0 } else { (port - base - 1) / services };
                Some(Instance { pid, service, port, slot })
            })
            .collect()
    }

    /// `service`'s own PostgreSQL database, as the cluster names it.
    pub fn database_url(&self, service: ServiceName) -> String {
        format!("{}/{}_{service}", self.infra.postgres_url, self.namespace())
    }

    /// The JetStream stream of the cluster's events.
    pub fn stream_name(&self) -> String {
        stream_of(self.namespace())
    }

    /// `service`'s instance in `slot`, if it is running.
    pub fn instance(&self, service: ServiceName, slot: u16) -> Option<Instance> {
        self.instances().into_iter().find(|i| i.service == service && i.slot == slot)
    }

    /// `kill -9` one instance of a cluster and wait until that process is gone (the cluster
    /// starts a new one soon after). Returns the killed instance.
    pub async fn kill9_instance(&self, service: ServiceName, slot: u16) -> Instance {
        let inst = eventually(self.deadline, async || self.instance(service, slot))
            .await
            .unwrap_or_else(|t| panic!("{service}#{slot} running: {t:?}"));
        let status = std::process::Command::new("kill").arg("-9").arg(inst.pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -9 {} ({service}#{slot})", inst.pid);
        eventually(self.deadline, async || {
            (self.instance(service, slot).map(|i| i.pid) != Some(inst.pid)).then_some(())
        })
        .await
        .unwrap_or_else(|t| panic!("{service}#{slot} (pid {}) gone: {t:?}", inst.pid));
        inst
    }

    /// Waits until `service`'s instance in `slot` is running as a process other than
    /// `not_pid` and answers its readiness probe with 200.
    pub async fn wait_instance_ready(&self, service: ServiceName, slot: u16, not_pid: u32) -> Instance {
        eventually(self.deadline, async || {
            let inst = self.instance(service, slot).filter(|i| i.pid != not_pid)?;
            let url = format!("http://127.0.0.1:{}/actuator/health/readiness", inst.port);
            let r = self.client.get(&url).timeout(Duration::from_secs(1)).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(inst)
        })
        .await
        .unwrap_or_else(|t| panic!("{service}#{slot} back and ready: {t:?}"))
    }
}

/// SIGTERM to a cluster, which stops its children and exits; after `grace`, SIGKILL to
/// whatever is left, children first (a SIGKILLed cluster would leave them running).
pub(super) fn terminate(child: &mut Child, grace: Duration) {
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
pub(super) fn drop_namespace(namespace: &str, infra: &Infra) {
    let admin_db = format!("{}/postgres", infra.postgres_url.trim_end_matches('/'));
    let drops: Vec<_> = ServiceName::BEHIND_GATEWAY
        .iter()
        .filter_map(|service| {
            std::process::Command::new("psql")
                .args(["-d", &admin_db, "-q", "-X", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {namespace}_{service} WITH (FORCE)"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
        .collect();
    if let Err(e) = delete_stream(&infra.nats_url, &stream_of(namespace)) {
        eprintln!("could not delete the stream of {namespace}: {e}");
    }
    let until = Instant::now() + Duration::from_secs(10);
    let mut failed = ServiceName::BEHIND_GATEWAY.len() - drops.len();
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

/// The stream of the cluster in `namespace`, as `platform::nats` names it.
fn stream_of(namespace: &str) -> String {
    format!("{}_EVENTS", namespace.to_uppercase())
}

/// Deletes a JetStream stream through async-nats, each step bounded by a few seconds. Runs
/// from `Drop`, inside the test's runtime, which must not be blocked on: so on a thread of
/// its own with a runtime of its own.
fn delete_stream(nats_url: &str, stream: &str) -> Result<(), String> {
    let (nats_url, stream) = (nats_url.to_string(), stream.to_string());
    let deleting = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let bounded = Duration::from_secs(5);
            let client = tokio::time::timeout(bounded, async_nats::connect(&nats_url))
                .await
                .map_err(|_| format!("no connection to {nats_url} within {bounded:?}"))?
                .map_err(|e| e.to_string())?;
            let jetstream = async_nats::jetstream::new(client);
            tokio::time::timeout(bounded, jetstream.delete_stream(&stream))
                .await
                .map_err(|_| format!("no answer within {bounded:?}"))?
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    });
    deleting.join().unwrap_or_else(|_| Err("the deleting thread panicked".into()))
}
