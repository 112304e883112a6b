//! What the soak measures, read from where the cafe keeps it rather than from what it
//! reports about itself: the files under the data dir and each SQLite database's own page
//! accounting (`dbstat`) in the all-in-one mode; each service's PostgreSQL database and the
//! JetStream stream in the distributed mode.
//!
//! Every figure is split in two. *Infrastructure* is what makes delivery exactly-once and
//! must stay flat under steady load: the inbox (handled event ids, pruned by age), the
//! outbox and dead letters, and the events on the bus (the embedded `event_log` or the
//! stream, compacted behind the slowest reader). *Business* is the services' own tables
//! (orders, payments, drinks, deliveries, cancellations, both views, accounts): they grow
//! with every order by design.

use std::path::Path;

use contracts::ServiceName;
use platform::Db;

use crate::common::{Mode, TestApp, NATS_URL};

/// The platform's tables in every service database, and the embedded bus's.
const INFRASTRUCTURE: [&str; 6] =
    ["inbox", "outbox", "dead_letters", "event_log", "consumer_offsets", "schema_migrations"];
/// Where `.ci/run` and the machine's NATS keep JetStream's files (`-sd`); the stream's own
/// directory is read when it is there, for its size on disk.
const NATS_STORE: &str = "/var/lib/nats-server/jetstream/$G/streams";

/// One measurement of a running cafe.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Inbox entries of every service, and their bytes (table and indexes).
    pub inbox_rows: i64,
    pub inbox_bytes: i64,
    /// Outbox rows and dead letters of every service (both near 0 unless something is
    /// stuck), and the bytes of those tables.
    pub outbox_rows: i64,
    pub dead_letters: i64,
    pub outbox_bytes: i64,
    /// Events on the bus: rows of the embedded log or messages of the stream, their bytes,
    /// and how many were ever published (the log's last sequence number).
    pub bus_events: i64,
    pub bus_bytes: i64,
    pub published: i64,
    /// The stream's directory on disk, when readable (distributed only).
    pub bus_disk: Option<i64>,
    /// The business tables of every service, with their indexes.
    pub business_bytes: i64,
    /// What the storage takes in all. All-in-one: every file under the data dir (databases,
    /// their `-wal` and `-shm` files). Distributed: every service database
    /// (`pg_database_size`, which counts PostgreSQL's own catalogs too).
    pub storage_bytes: i64,
    /// All-in-one: the `-wal` files among them.
    pub wal_bytes: i64,
}

impl Figures {
    /// Storage beyond the business tables and the WAL: the platform's tables, free pages,
    /// PostgreSQL's catalogs.
    pub fn beyond_business(&self) -> i64 {
        self.storage_bytes - self.business_bytes - self.wal_bytes
    }
}

/// Reads [`Figures`] of one cafe.
pub struct Probe {
    nats: Option<async_nats::jetstream::Context>,
}

/// The services that keep a database: every one behind the gateway but the web, which
/// reads through the API and keeps nothing.
pub const WITH_A_DATABASE: [ServiceName; 7] = [
    ServiceName::Order,
    ServiceName::Payment,
    ServiceName::Drink,
    ServiceName::Customercenter,
    ServiceName::Delivery,
    ServiceName::Deliverycenter,
    ServiceName::Identity,
];

impl Probe {
    pub async fn new(app: &TestApp) -> Probe {
        let nats = match app.mode {
            Mode::AllInOne => None,
            Mode::Distributed => {
                let client = async_nats::connect(NATS_URL).await.expect("NATS for the stream's figures");
                Some(async_nats::jetstream::new(client))
            }
        };
        Probe { nats }
    }

    /// The figures now; `Err` when a database or the stream cannot be read (a process is
    /// restarting: the caller asks again).
    pub async fn measure(&self, app: &TestApp) -> Result<Figures, String> {
        let mut f = Figures::default();
        match &self.nats {
            None => {
                let dir = app.data_dir();
                for service in WITH_A_DATABASE {
                    add_database(&mut f, &sqlite_url(&dir, service.as_str()), false).await?;
                }
                add_database(&mut f, &sqlite_url(&dir, "events"), false).await?;
                (f.storage_bytes, f.wal_bytes) = files_under(&dir);
            }
            Some(js) => {
                for service in WITH_A_DATABASE {
                    add_database(&mut f, &app.database_url(service), true).await?;
                }
                let name = app.stream_name();
                let mut stream = js.get_stream(&name).await.map_err(|e| format!("stream {name}: {e}"))?;
                let state = stream.info().await.map_err(|e| format!("stream {name}: {e}"))?.state.clone();
                f.bus_events = state.messages as i64;
                f.bus_bytes = state.bytes as i64;
                f.published = state.last_sequence as i64;
                let dir = Path::new(NATS_STORE).join(&name);
                f.bus_disk = dir.is_dir().then(|| files_under(&dir).0);
            }
        }
        Ok(f)
    }
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    // `rw`: never create a database the cafe has not.
    format!("sqlite://{}?mode=rw", dir.join(format!("{name}.db")).display())
}

/// Adds one database's figures to `f`, on a connection of its own that is closed after (a
/// connection held open would keep SQLite from checkpointing its WAL).
async fn add_database(f: &mut Figures, url: &str, postgres: bool) -> Result<(), String> {
    let db = Db::connect_pooled(url, 1).await.map_err(|e| format!("{}: {e}", platform::redacted(url)))?;
    let read = read_database(&db, f, postgres).await;
    db.pool().close().await;
    read.map_err(|e| format!("{}: {e}", platform::redacted(url)))
}

async fn read_database(db: &Db, f: &mut Figures, postgres: bool) -> Result<(), sqlx::Error> {
    let sizes_sql = if postgres {
        "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
    } else {
        // Every page of a table and of its indexes, used or not: what the table holds on to.
        "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name"
    };
    let sizes: Vec<(String, i64)> = sqlx::query_as(sizes_sql).fetch_all(db.pool()).await?;
    for (table, bytes) in &sizes {
        match table.as_str() {
            "inbox" => f.inbox_bytes += bytes,
            "outbox" | "dead_letters" => f.outbox_bytes += bytes,
            "event_log" => f.bus_bytes += bytes,
            t if INFRASTRUCTURE.contains(&t) => {}
            _ => f.business_bytes += bytes,
        }
    }
    let has = |table: &str| sizes.iter().any(|(t, _)| t == table);
    let count = async |sql: &str| sqlx::query_scalar::<_, i64>(sql).fetch_one(db.pool()).await;
    if has("inbox") {
        f.inbox_rows += count("SELECT COUNT(*) FROM inbox").await?;
        f.outbox_rows += count("SELECT COUNT(*) FROM outbox").await?;
    }
    if has("dead_letters") {
        f.dead_letters += count("SELECT COUNT(*) FROM dead_letters").await?;
    }
    if has("event_log") {
        f.bus_events += count("SELECT COUNT(*) FROM event_log").await?;
        f.published += count("SELECT COALESCE(MAX(seq), 0) FROM event_log").await?;
    }
    if postgres {
        f.storage_bytes += count("SELECT pg_database_size(current_database())").await?;
    }
    Ok(())
}

/// The bytes of every file under `dir`, and of the `-wal` files among them.
fn files_under(dir: &Path) -> (i64, i64) {
    let (mut all, mut wal) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (a, w) = files_under(&entry.path());
            (all, wal) = (all + a, wal + w);
        } else {
            all += meta.len() as i64;
            if entry.file_name().to_string_lossy().ends_with("-wal") {
                wal += meta.len() as i64;
            }
        }
    }
    (all, wal)
}

/// `1234567` → `1.2 MB`.
pub fn size(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes.abs() {
        n if n >= 1 << 20 => format!("{:.1} MB", b / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", b / (1 << 10) as f64),
        _ => format!("{bytes} B"),
    }
}
