//! The link between a cluster and its NATS server turns slow and lossy, then is cut, then
//! healed, while orders flow. The NATS server is the test's own, in a network namespace of
//! its own behind a veth pair, so every fault stays on that link: nothing else on the
//! machine notices, and no packet goes anywhere but to the namespace.
//!
//! - Slow: what the services send to NATS waits 100 ms ± 50 ms (a relay in this process, on
//!   the link's host address: the kernel here has no `netem`), and 5% of the packets either
//!   way are dropped (nftables inside the namespace), so TCP retransmits.
//! - Cut: every packet either way is dropped. Orders may still be placed (placing needs
//!   PostgreSQL and payment, not NATS): their events wait in the outboxes.
//! - Healed: the same processes, none restarted, publish what waited and their consumers
//!   resume, and every order acknowledged at any time is paid, made and shown exactly once.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{eventually, require, spawn_cluster_on, Infra, Load, Rng, TestApp, POSTGRES_ADDR};
use crate::{missing, ms, run, run_quietly};

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const NATS_PORT: u16 = 4222;
/// What the slow link adds to everything sent to NATS: 100 ms ± 50 ms.
const DELAY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(50));
/// The share of packets the lossy link drops, each way, in percent.
const LOSS_PERCENT: u32 = 5;
/// How long the link stays cut: past the pull consumers' 5 s heartbeat and the publishers'
/// request timeout, so every consumer and relay meets the partition.
const CUT_FOR: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lossy_then_cut_link_to_nats_heals_by_itself_with_every_order_settled_once() {
    let _alone = crate::one_at_a_time().await;
    let mut needs = missing(true, &["ip", "nft", NATS_SERVER]);
    if crate::common::check_infra(&[POSTGRES_ADDR], false) != Ok(true) {
        needs.push(format!("PostgreSQL at {POSTGRES_ADDR}"));
    }
    if !require("the NATS partition test", &needs) {
        return;
    }
    let link = NatsBehindLink::start().await;
    let infra = Infra { nats_url: link.url(), ..Infra::shared() };
    let app = Arc::new(spawn_cluster_on(infra, &[], &[("CAFE_SETTLE_AFTER_MS", "1000")]).await);
    let pids: Vec<u32> = app.instances().iter().map(|i| i.pid).collect();

    let load = Load {
        clients: 4,
        orders: u64::MAX,
        give_up: Duration::from_secs(170),
        retry: Duration::from_millis(100),
        barista_pause: Duration::from_millis(200),
        think_ms: 200,
        cancel_one_in: 0,
    }
    .start(&app, &mut Rng::seeded(0x9a27_1710));
    load.until_placed(20, Duration::from_secs(60), "slowing the link").await;

    link.slow_and_lossy();
    eprintln!("link slow and lossy after {} orders", load.placed());
    load.until_placed(load.placed() + 40, Duration::from_secs(60), "checking events cross the slow link").await;
    let crossed = caught_up(&app, &load.created(), Duration::from_secs(60)).await;
    eprintln!("over the slow, lossy link every order so far reached drink and both views in {} ms", ms(crossed));

    let cut_at = Instant::now();
    link.cut();
    let placed_when_cut = load.placed();
    eprintln!("link cut after {placed_when_cut} orders");
    eventually(CUT_FOR + Duration::from_secs(5), async || (cut_at.elapsed() >= CUT_FOR).then_some(()))
        .await
        .expect("time passes");
    let created = load.created();
    eprintln!("{} orders placed while the link was cut", created.len() as u64 - placed_when_cut);

    link.heal();
    let took = caught_up(&app, &created, Duration::from_secs(90)).await;
    eprintln!("recovery: partition healed → consumers caught up in {} ms", ms(took));
    load.until_placed(load.placed() + 20, Duration::from_secs(60), "stopping the load").await;
    let placed = load.stop().await;

    let wrong: Vec<String> = placed
        .answers
        .iter()
        .filter(|a| !(a.status == Some(201) || a.status == Some(503) && a.retry_later))
        .map(|a| format!("{:?} after {} ms: {}", a.status, ms(a.took), a.text))
        .collect();
    assert!(wrong.is_empty(), "answers other than 201 or 503 with Retry-After (problem+json):\n{}", wrong.join("\n"));
    let settled = crate::settle(&app, Duration::from_secs(90)).await;
    eprintln!("settled {} ms after the load stopped", ms(settled));
    crate::assert_none_lost(&app, &placed).await;
    let now: Vec<u32> = app.instances().iter().map(|i| i.pid).collect();
    assert_eq!(now, pids, "a service process was restarted: its consumers should have resumed by themselves");
}

/// Waits until every order of `orders` has its drink and its rows on both views, that is
/// until drink, deliverycenter and customercenter have consumed their `Ordered` events; how
/// long it took.
async fn caught_up(app: &TestApp, orders: &[i64], within: Duration) -> Duration {
    let started = Instant::now();
    let mut reported = Instant::now();
    eventually(within, async || {
        let mut behind = Vec::new();
        for collection in ["drinks", "deliverypages", "mypages"] {
            let rows = app.try_all(collection).await?;
            let seen: std::collections::HashSet<i64> = rows.iter().filter_map(|r| r["orderId"].as_i64()).collect();
            let missing = orders.iter().filter(|o| !seen.contains(o)).count();
            if missing > 0 {
                behind.push(format!("{missing} not in /{collection}"));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        let behind = format!("of {} orders, {}", orders.len(), behind.join(", "));
        // How the backlog drains, now and then: a stall shows in the output.
        if reported.elapsed() >= Duration::from_secs(5) {
            eprintln!("{:>5.1}s catching up: {behind}", started.elapsed().as_secs_f64());
            reported = Instant::now();
        }
        Err(behind)
    })
    .await
    .unwrap_or_else(|t| panic!("consumers did not catch up within {within:?}: {t:?}"));
    started.elapsed()
}

/// A NATS server with JetStream of the test's own, in a network namespace reached through a
/// veth pair whose host side this process relays through: the one link the test slows, makes
/// lossy, cuts and heals. Everything (relay, server, namespace, veth) goes on drop, whatever
/// happened; declare it before the cafe, which goes first.
struct NatsBehindLink {
    namespace: String,
    /// The veth's end in the namespace.
    inner: String,
    /// The veth's end on the host.
    outer: String,
    nats: Option<Child>,
    relay: Option<DelayRelay>,
    store: tempfile::TempDir,
}

impl NatsBehindLink {
    async fn start() -> NatsBehindLink {
        let pid = std::process::id();
        let (host, server) = free_subnet();
        let mut link = NatsBehindLink {
            namespace: format!("cafe-faults-{pid}"),
            inner: format!("cfn{pid}"),
            outer: format!("cfh{pid}"),
            nats: None,
            relay: None,
            store: tempfile::Builder::new().prefix("cafe-faults-nats-").tempdir().expect("temp dir"),
        };
        let (ns, inner, outer) = (link.namespace.clone(), link.inner.clone(), link.outer.clone());
        run("ip", &["netns", "add", &ns]);
        run("ip", &["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
        run("ip", &["link", "set", &inner, "netns", &ns]);
        run("ip", &["addr", "add", &format!("{host}/30"), "dev", &outer]);
        run("ip", &["link", "set", &outer, "up"]);
        link.in_namespace("ip", &["addr", "add", &format!("{server}/30"), "dev", &inner]);
        link.in_namespace("ip", &["link", "set", &inner, "up"]);
        link.in_namespace("ip", &["link", "set", "lo", "up"]);
        link.rules("accept");

        let log = std::fs::File::create(link.store.path().join("nats.log")).expect("the NATS log");
        let store = link.store.path().join("jetstream");
        let started = Command::new("ip")
            .args(["netns", "exec", &ns, NATS_SERVER, "-a", &server.to_string(), "-p", &NATS_PORT.to_string(), "-js"])
            .arg("-sd")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("the NATS log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("nats-server in the namespace");
        link.nats = Some(started);
        let at = SocketAddr::from((server, NATS_PORT));
        eventually(Duration::from_secs(20), async || {
            let connect = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(at)).await;
            matches!(connect, Ok(Ok(_))).then_some(())
        })
        .await
        .unwrap_or_else(|t| panic!("nats-server in {ns} at {at}: {t:?}"));
        link.relay = Some(DelayRelay::start(SocketAddr::from((host, 0)), at).await);
        eprintln!("NATS of the test's own at {at} in namespace {ns}, through {}", link.url());
        link
    }

    /// Where the cluster finds NATS: the relay on the link's host side.
    fn url(&self) -> String {
        format!("nats://{}", self.relay.as_ref().expect("the relay").addr)
    }

    fn in_namespace(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.namespace, program];
        all.extend(args);
        run("ip", &all);
    }

    /// Replaces the namespace's packet filter on its end of the link: `rule` for every packet
    /// in and out.
    fn rules(&self, rule: &str) {
        let inner = &self.inner;
        let ruleset = format!(
            "table inet link {{}}\nflush table inet link\ntable inet link {{\n\
             chain input {{ type filter hook input priority 0; policy accept; iifname \"{inner}\" {rule}; }}\n\
             chain output {{ type filter hook output priority 0; policy accept; oifname \"{inner}\" {rule}; }}\n}}\n"
        );
        let path = self.store.path().join("link.nft");
        std::fs::write(&path, ruleset).expect("the ruleset");
        self.in_namespace("nft", &["-f", path.to_str().expect("a UTF-8 path")]);
    }

    fn slow_and_lossy(&self) {
        self.relay.as_ref().expect("the relay").delay(Some(DELAY));
        self.rules(&format!("numgen random mod 100 < {LOSS_PERCENT} drop"));
    }

    fn cut(&self) {
        self.rules("drop");
    }

    fn heal(&self) {
        self.rules("accept");
        self.relay.as_ref().expect("the relay").delay(None);
    }
}

impl Drop for NatsBehindLink {
    fn drop(&mut self) {
        self.relay.take();
        if let Some(mut nats) = self.nats.take() {
            let _ = nats.kill();
            let _ = nats.wait();
        }
        // The namespace takes its end of the veth pair with it, and the pair its host end;
        // should the host end be left (the namespace never made), it goes too.
        run_quietly("ip", &["netns", "del", &self.namespace]);
        let _ = Command::new("ip").args(["link", "del", &self.outer]).stderr(Stdio::null()).status();
    }
}

/// A /30 in 10.213.0.0/16 that no address or route of this machine uses: the host's and the
/// server's addresses in it.
fn free_subnet() -> (Ipv4Addr, Ipv4Addr) {
    let taken = run("ip", &["-4", "-o", "addr", "show"]) + &run("ip", &["-4", "route", "show", "table", "all"]);
    let mut rng = Rng::quiet(u64::from(std::process::id()) ^ 0x5eed);
    for _ in 0..1000 {
        let (third, fourth) = (rng.between(0, 255) as u8, rng.between(0, 63) as u8 * 4);
        if !taken.contains(&format!("10.213.{third}.")) {
            return (Ipv4Addr::new(10, 213, third, fourth + 1), Ipv4Addr::new(10, 213, third, fourth + 2));
        }
    }
    panic!("no free /30 in 10.213.0.0/16");
}

/// A TCP relay in this process: each connection it accepts is joined to one of its own to
/// `upstream`, and what goes upstream is held back for a set delay with jitter, in order,
/// when told ([`DelayRelay::delay`]). The link's latency, where the kernel has no `netem`.
struct DelayRelay {
    addr: SocketAddr,
    delay: Arc<Mutex<Option<(Duration, Duration)>>>,
    serving: JoinHandle<()>,
}

impl DelayRelay {
    async fn start(listen: SocketAddr, upstream: SocketAddr) -> DelayRelay {
        let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("the relay on {listen}: {e}"));
        let addr = listener.local_addr().expect("the relay's address");
        let delay = Arc::new(Mutex::new(None));
        let serving = tokio::spawn(serve(listener, upstream, delay.clone()));
        DelayRelay { addr, delay, serving }
    }

    /// From now on, each chunk sent upstream waits `delay.0 ± delay.1` (uniformly), and never
    /// overtakes the one before; `None`: no wait.
    fn delay(&self, delay: Option<(Duration, Duration)>) {
        *self.delay.lock().unwrap() = delay;
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        // Its connections go with it (a JoinSet of the serving task).
        self.serving.abort();
    }
}

type Delay = Arc<Mutex<Option<(Duration, Duration)>>>;

async fn serve(listener: TcpListener, upstream: SocketAddr, delay: Delay) {
    let mut connections = tokio::task::JoinSet::new();
    let mut rng = Rng::quiet(0x0de1_a7ed);
    loop {
        let Ok((down, _)) = listener.accept().await else { continue };
        // Reap the finished ones as we go.
        while connections.try_join_next().is_some() {}
        connections.spawn(relay(down, upstream, delay.clone(), Rng::quiet(rng.next())));
    }
}

/// One client's connection, relayed until either side closes.
async fn relay(down: TcpStream, upstream: SocketAddr, delay: Delay, rng: Rng) {
    // While the link is cut the connection attempt goes unanswered: give up as a client
    // would, and the client tries again.
    let Ok(Ok(up)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await else { return };
    let _ = (down.set_nodelay(true), up.set_nodelay(true));
    let (down_read, mut down_write) = down.into_split();
    let (mut up_read, up_write) = up.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut up_read, &mut down_write) => {},
        _ = delayed_copy(down_read, up_write, delay, rng) => {},
    }
}

/// Copies `from` to `to` until `from` closes or `to` fails, each chunk held back by the
/// delay of the moment it was read, never overtaking the chunk before it.
async fn delayed_copy(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Delay, mut rng: Rng) {
    let (chunks, mut queued) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let reading = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let current = *delay.lock().unwrap();
            let wait = current.map_or(Duration::ZERO, |(d, j)| jittered(d, j, &mut rng));
            if chunks.send((tokio::time::Instant::now() + wait, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writing = async move {
        let mut not_before = tokio::time::Instant::now();
        while let Some((at, chunk)) = queued.recv().await {
            not_before = not_before.max(at);
            tokio::time::sleep_until(not_before).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

/// Uniformly in `delay ± jitter`.
fn jittered(delay: Duration, jitter: Duration, rng: &mut Rng) -> Duration {
    let spread = jitter.as_micros() as u64;
    (delay + Duration::from_micros(rng.between(0, 2 * spread))).saturating_sub(jitter)
}
