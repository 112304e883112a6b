//! The soak (issue 12, "A soak shows flat disk use"): a cafe under steady orders,
//! cancellations and `kill -9`s for a long while, measured after a warm-up and at the end.
//! What makes delivery exactly-once, the inbox of handled event ids and the events on the
//! bus, must not grow with the soak's length, only with its rate: the inbox forgets entries
//! older than its retention and the bus drops what every reader has handled. The business
//! tables grow with the orders by design; their growth is reported per order, apart. And
//! nothing may be lost or doubled: every order told 201 settles, every cancelled one is
//! compensated, once.
//!
//! `CAFE_SOAK_SECS` (default 600) is the whole soak; 1800 is the full 30-minute soak. CI runs
//! the 10-minute one to keep its run under 45 minutes. The time is shared, half each, by the
//! two ways the cafe runs, one after the other:
//!
//! - all-in-one: `cafe up` as a child process on SQLite files and the embedded event log,
//!   killed (`kill -9`) as a whole and started again on the same data dir. Disk use here is
//!   the data dir's files, `-wal` and `-shm` files included.
//! - distributed: `cafe cluster`, each service a child process on PostgreSQL and NATS
//!   JetStream, one random service instance killed at a time (the cluster starts it again).
//!   Disk use here is each service's database and the stream. CI's PostgreSQL runs without
//!   autovacuum: the housekeeping's own `VACUUM` of the inbox and outbox is what keeps their
//!   bytes following their rows there (`platform::outbox::vacuum_queues`).
//!
//! Both, because they share the inbox but not the bus: the embedded log is compacted behind
//! every group's offset, the stream type by type behind every group's ack floor, and only the
//! distributed mode has a PostgreSQL to bloat. The cluster is thirteen processes on two cores,
//! so the load is modest (a few clients with think time, about four orders a second), which
//! is enough: flatness is about the retention windows passing many times, not about volume.
//!
//! Retention is short so that a few minutes hold many windows: the inbox keeps 2 minutes,
//! housekeeping (inbox pruning, bus compaction) runs every 5 s. The warm-up measurement comes
//! once the first retention window has passed (2 min 15 s, or half the time of a shorter
//! run), so both measurements see the tables in their steady state; the end's comes while the
//! load still runs, with no kill in the 45 s before it. The bounds, and why, are at
//! [`check_flat`].
//!
//! Nothing waits for a fixed time but the pacing of the load (clients' think time, the
//! barista's rounds) and of the measurements; every other wait polls with a deadline.

#[macro_use]
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod measure;

use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::ServiceName;

use crate::common::{
    check_settled_with_cancelled, eventually, make_queued_drinks, spawn_process_with, spawn_with, Load, Mode, Rng,
    TestApp, POLL,
};
use crate::measure::{size, Figures, Probe};

/// How long an inbox remembers a handled event, and how often inboxes are pruned and the
/// bus compacted.
const INBOX_RETENTION: Duration = Duration::from_secs(120);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// The warm-up: one retention window and a few housekeeping rounds.
const WARM_UP: Duration = Duration::from_secs(120 + 3 * 5);
/// How often the figures are read while the soak runs.
const MEASURE_EVERY: Duration = Duration::from_secs(5);
/// A kill every 60 to 90 s, but none this close to the end's measurement: a reader killed
/// just before it would hold the bus's compaction back (on NATS, up to the ack wait of 30 s
/// for what it had taken), and the end would measure the kill rather than the steady state.
const KILL_EVERY_SECS: (u64, u64) = (60, 90);
const QUIET_BEFORE_END: Duration = Duration::from_secs(45);
/// The load: a few customers, each thinking up to 2 s after an order and cancelling one in
/// five of them; a barista making the queue every half second.
const CLIENTS: u64 = 4;
const THINK_MS: u64 = 2000;
const CANCEL_ONE_IN: u64 = 5;
/// After the load, how long everything may take to agree (as the chaos test: an event a
/// killed consumer had taken comes back after JetStream's ack wait of 30 s).
const SETTLE: Duration = Duration::from_secs(120);

/// The whole soak: `CAFE_SOAK_SECS`, 600 when unset.
fn soak_time() -> Duration {
    let secs = std::env::var("CAFE_SOAK_SECS").ok().map(|s| s.parse().expect("CAFE_SOAK_SECS: whole seconds"));
    Duration::from_secs(secs.unwrap_or(600))
}

/// Each mode's soak loads both cores: one at a time.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn retention_flags() -> [(&'static str, String); 3] {
    [
        ("inbox-retention", format!("{}s", INBOX_RETENTION.as_secs())),
        ("housekeeping-every", format!("{}s", HOUSEKEEPING_EVERY.as_secs())),
        // Placements a kill left pending are settled by the reconciler after a second.
        ("settle-after-ms", "1000".to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_disk_use_stays_flat_through_orders_cancellations_and_kills() {
    let _alone = one_at_a_time().await;
    let flags: Vec<String> = retention_flags().into_iter().flat_map(|(f, v)| [format!("--{f}"), v]).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = spawn_process_with(&flags, &[]).await;
    soak(app, soak_time() / 2, 0x50a6_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_disk_use_stays_flat_through_orders_cancellations_and_kills() {
    let _alone = one_at_a_time().await;
    // The cluster hands its environment to every child.
    let env: Vec<(String, String)> = retention_flags()
        .into_iter()
        .map(|(f, v)| (format!("CAFE_{}", f.to_uppercase().replace('-', "_")), v))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let Some(app) = spawn_with(Mode::Distributed, &[], &env).await else { return };
    soak(app, soak_time() / 2, 0x50a6_0002).await;
}

/// One reading of the figures, with where the load was.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since the load started.
    at: Duration,
    /// Orders created so far.
    placed: u64,
    /// Orders created or cancelled within the inbox's window (retention and one
    /// housekeeping round) before this sample: what the inbox may remember.
    window_actions: u64,
    figures: Figures,
}

async fn soak(app: TestApp, run_for: Duration, seed: u64) {
    let app = Arc::new(app);
    let mode = match app.mode {
        Mode::AllInOne => "all-in-one",
        Mode::Distributed => "distributed",
    };
    let mut rng = Rng::seeded(seed);
    let probe = Probe::new(&app).await;
    let load = Load {
        clients: CLIENTS,
        orders: u64::MAX,
        // A little past the end, so that the end's measurement sees the load still running.
        give_up: run_for + Duration::from_secs(10),
        retry: POLL * 5,
        barista_pause: Duration::from_millis(500),
        think_ms: THINK_MS,
        cancel_one_in: CANCEL_ONE_IN,
    }
    .start(&app, &mut rng);
    let started = Instant::now();
    let warm_up = WARM_UP.min(run_for / 2);
    let inbox_window = INBOX_RETENTION + HOUSEKEEPING_EVERY;
    let sample = async |figures: Figures| {
        let now = Instant::now();
        let window_start = now.checked_sub(inbox_window).unwrap_or(started);
        Sample { at: now - started, placed: load.placed(), window_actions: load.actions_since(window_start), figures }
    };
    eprintln!(
        "soak {mode}: {} s, warm-up {} s, a kill every {KILL_EVERY_SECS:?} s",
        run_for.as_secs(),
        warm_up.as_secs()
    );

    let mut samples: Vec<Sample> = Vec::new();
    let mut kills = 0;
    let mut next_kill = started + Duration::from_secs(rng.between(KILL_EVERY_SECS.0, KILL_EVERY_SECS.1));
    let mut ticks = tokio::time::interval(MEASURE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = Duration::ZERO;
    while started.elapsed() < run_for {
        ticks.tick().await;
        match probe.measure(&app).await {
            Ok(figures) => samples.push(sample(figures).await),
            // A process restarting: the next round reads again.
            Err(e) => eprintln!("{:>5.1}s: figures not read: {e}", secs(started)),
        }
        if let Some(s) = samples.last().filter(|s| s.at >= reported + Duration::from_secs(30)) {
            reported = s.at;
            eprintln!("{:>5.1}s: {}", s.at.as_secs_f64(), progress(s));
        }
        let quiet_from = started + run_for.saturating_sub(QUIET_BEFORE_END);
        if Instant::now() >= next_kill && Instant::now() < quiet_from {
            kills += 1;
            let what = kill_one(&app, &mut rng).await;
            eprintln!("{:>5.1}s: kill -9 {what} after {} orders", secs(started), load.placed());
            next_kill = Instant::now() + Duration::from_secs(rng.between(KILL_EVERY_SECS.0, KILL_EVERY_SECS.1));
        }
    }
    let end = eventually(Duration::from_secs(30), async || probe.measure(&app).await)
        .await
        .unwrap_or_else(|t| panic!("the end's figures: {t:?}"));
    let end = sample(end).await;
    samples.push(end);
    let warm = *samples.iter().find(|s| s.at >= warm_up).unwrap_or(&samples[0]);

    let placed = load.run_out().await;
    eprintln!("{:>5.1}s: {placed}", secs(started));

    // Settle: make whatever is still queued, until everything agrees.
    let settling = Instant::now();
    let mut said = Instant::now();
    eventually(SETTLE, async || {
        make_queued_drinks(&app).await;
        let settled = check_settled_with_cancelled(&app, &placed.cancelled).await;
        if let Err(why) = &settled {
            if said.elapsed() > Duration::from_secs(10) {
                eprintln!("{:>5.1}s: settling: {why}", secs(started));
                said = Instant::now();
            }
        }
        settled
    })
    .await
    .unwrap_or_else(|t| panic!("not settled {SETTLE:?} after the load: {t:?}"));
    let settled_in = settling.elapsed();

    assert!(placed.undecided.is_empty(), "cancellations without a final answer: {:?}", placed.undecided);
    let orders = app.all("orders").await;
    let lost = placed.lost(&orders);
    assert!(lost.is_empty(), "orders answered 201 but gone after the soak: {lost:?}");
    assert_eq!(end.figures.dead_letters, 0, "events parked as dead letters during the soak");

    let published_then = |s: &Sample| {
        let from = s.at.saturating_sub(BUS_WINDOW);
        samples.iter().rev().find(|p| p.at <= from).map_or(0, |p| p.figures.published)
    };
    let (warm_published, end_published) =
        (warm.figures.published - published_then(&warm), end.figures.published - published_then(&end));
    let (w, e) = (&warm.figures, &end.figures);
    let business_per_order = (e.business_bytes - w.business_bytes) / (end.placed - warm.placed).max(1) as i64;
    let storage = match app.mode {
        Mode::AllInOne => "data dir",
        Mode::Distributed => "databases",
    };
    let bus = match app.mode {
        Mode::AllInOne => "event log",
        Mode::Distributed => "stream",
    };
    let per_action = |s: &Sample, n: i64| n as f64 / s.window_actions.max(1) as f64;
    let disk = match (w.bus_disk, e.bus_disk) {
        (Some(a), Some(b)) => format!(", {} → {} on disk", size(a), size(b)),
        _ => String::new(),
    };
    eprintln!(
        "soak {mode}: {} s, {} orders, {} cancelled, {kills} kills; settled {:.1} s after the load\n  \
         {storage} {} → {} (beyond the business tables {} → {}, business +{} per order{})\n  \
         inbox {} rows / {} → {} rows / {} ({:.2} → {:.2} rows per order or cancellation of the last {} s)\n  \
         {bus} {} events / {} → {} events / {}{disk} (published in the last {} s: {} → {}; {} in all)\n  \
         outbox {} rows / {} → {} rows / {}, dead letters {} → {}\n  \
         measured at {} s and {} s; 0 lost, 0 doubled",
        run_for.as_secs(),
        placed.placed,
        placed.cancelled.len(),
        settled_in.as_secs_f64(),
        size(w.storage_bytes),
        size(e.storage_bytes),
        size(w.beyond_business()),
        size(e.beyond_business()),
        size(business_per_order),
        match app.mode {
            Mode::AllInOne => format!("; WAL {} → {}", size(w.wal_bytes), size(e.wal_bytes)),
            Mode::Distributed => String::new(),
        },
        w.inbox_rows,
        size(w.inbox_bytes),
        e.inbox_rows,
        size(e.inbox_bytes),
        per_action(&warm, w.inbox_rows),
        per_action(&end, e.inbox_rows),
        inbox_window.as_secs(),
        w.bus_events,
        size(w.bus_bytes),
        e.bus_events,
        size(e.bus_bytes),
        BUS_WINDOW.as_secs(),
        warm_published,
        end_published,
        e.published,
        w.outbox_rows,
        size(w.outbox_bytes),
        e.outbox_rows,
        size(e.outbox_bytes),
        w.dead_letters,
        e.dead_letters,
        warm.at.as_secs(),
        end.at.as_secs(),
    );
    // Every service's database, and the embedded event log's.
    let databases = measure::WITH_A_DATABASE.len() as i64 + 1;
    check_flat(&warm, &end, end_published, databases);
}

/// What the bus may still hold: the events published in the last three housekeeping rounds
/// and the 45 s a kill may hold a reader back (a process starting again, on NATS the ack
/// wait of 30 s for what the killed one had taken).
const BUS_WINDOW: Duration = Duration::from_secs(3 * 5 + 45);
/// An event on the bus with its headers (the trace context) is a few hundred bytes; this
/// much leaves room for a log page's unused part.
const EVENT_BYTES: i64 = 1024;
/// A SQLite database's WAL grows to the autocheckpoint (1000 pages of 4 KiB) and is then
/// written again from its start, never truncated: with one connection per database (the
/// cafe's pools have one), nothing keeps a checkpoint from finishing. A MiB more for the
/// transaction that crosses the mark.
const WAL_PER_DATABASE: i64 = 5 << 20;
/// What a few pages more or less (B-tree splits and merges, PostgreSQL's free space and
/// visibility maps, catalog rows) may add to a size.
const PAGES: i64 = 256 << 10;

/// The infrastructure at the end is bounded by what its retention can hold at the load's
/// rate, not by how long the soak ran:
///
/// - the inbox holds the entries handled within its window (retention and one housekeeping
///   round). Its rows and bytes per order or cancellation are read at the warm-up; the end
///   may hold as many per order or cancellation of its own window, with 30% for the load's
///   mix (cancellations and kills vary) and a few hundred rows for placements voided by a
///   kill. Without pruning, the end would hold every entry since the start, and without
///   vacuuming (PostgreSQL) the bytes of every entry since the start.
/// - the bus holds at most the events published in [`BUS_WINDOW`], and a hundred more;
/// - the storage beyond the business tables (platform tables, free pages, PostgreSQL's
///   catalogs) grows no more than the platform tables may; a SQLite WAL no more than to its
///   checkpoint.
fn check_flat(warm: &Sample, end: &Sample, end_published: i64, databases: i64) {
    let (w, e) = (&warm.figures, &end.figures);
    let scale = end.window_actions as f64 / warm.window_actions.max(1) as f64;
    let inbox_rows = (1.3 * w.inbox_rows as f64 * scale) as i64 + 300;
    assert!(
        e.inbox_rows <= inbox_rows,
        "the inbox grew: {} rows at the end, at most {inbox_rows} for {} orders and cancellations in its window \
         ({} rows for {} at the warm-up)",
        e.inbox_rows,
        end.window_actions,
        w.inbox_rows,
        warm.window_actions
    );
    let platform_bytes = |f: &Figures, scale: f64| ((f.inbox_bytes + f.outbox_bytes) as f64 * scale) as i64;
    let platform = (1.3 * platform_bytes(w, scale) as f64) as i64 + PAGES;
    assert!(
        platform_bytes(e, 1.0) <= platform,
        "the inbox's and outbox's bytes grew: {} at the end, at most {} ({} at the warm-up)",
        size(platform_bytes(e, 1.0)),
        size(platform),
        size(platform_bytes(w, 1.0))
    );
    let bus_events = end_published + 100;
    assert!(
        e.bus_events <= bus_events,
        "the bus kept {} events at the end, more than the {end_published} published in the last {} s and 100",
        e.bus_events,
        BUS_WINDOW.as_secs()
    );
    assert!(
        e.bus_bytes <= bus_events * EVENT_BYTES,
        "the bus kept {} at the end for at most {bus_events} events",
        size(e.bus_bytes)
    );
    assert!(e.outbox_rows <= bus_events, "{} events waiting in the outboxes at the end", e.outbox_rows);
    let may_grow = (platform - platform_bytes(w, 1.0)).max(0) + (bus_events * EVENT_BYTES - w.bus_bytes).max(0);
    let storage = w.beyond_business() + may_grow + PAGES;
    assert!(
        e.beyond_business() <= storage,
        "the storage beyond the business tables grew: {} at the end, at most {} ({} at the warm-up)",
        size(e.beyond_business()),
        size(storage),
        size(w.beyond_business())
    );
    assert!(
        e.wal_bytes <= databases * WAL_PER_DATABASE,
        "the WAL files take {} for {databases} databases",
        size(e.wal_bytes)
    );
}

/// `kill -9` the cafe (all-in-one, started again at once) or a random service instance of
/// the cluster (which starts it again); what was killed.
async fn kill_one(app: &TestApp, rng: &mut Rng) -> String {
    match app.mode {
        Mode::AllInOne => {
            app.crash_and_restart().await;
            "cafe up; started again".to_string()
        }
        Mode::Distributed => {
            let targets = ServiceName::BEHIND_GATEWAY;
            let service = targets[rng.between(0, targets.len() as u64 - 1) as usize];
            let slot =
                if matches!(service, ServiceName::Payment | ServiceName::Drink) { rng.between(0, 1) as u16 } else { 0 };
            let killed = app.kill9_instance(service, slot).await;
            format!("{service}#{slot} (pid {})", killed.pid)
        }
    }
}

fn progress(s: &Sample) -> String {
    let f = &s.figures;
    format!(
        "{} orders; inbox {} rows / {}, bus {} events / {}, storage {} (business {}, WAL {}){}",
        s.placed,
        f.inbox_rows,
        size(f.inbox_bytes),
        f.bus_events,
        size(f.bus_bytes),
        size(f.storage_bytes),
        size(f.business_bytes),
        size(f.wal_bytes),
        f.bus_disk.map(|d| format!(", stream on disk {}", size(d))).unwrap_or_default()
    )
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
