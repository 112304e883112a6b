//! Storage: one API over SQLite (all-in-one) and PostgreSQL (distributed).
//!
//! Services write portable SQL with `$1` placeholders (SQLite accepts them too) and get an
//! `AnyPool`. The only dialect difference the services meet is the auto-increment key, which
//! migrations spell `{{ID}}`. SQLite runs in WAL mode with `synchronous=NORMAL`: a commit is
//! in the log before it returns, so `kill -9` loses nothing (only a power cut could lose the
//! last commits), and it has one connection per database, because SQLite serialises writers
//! anyway and one connection cannot deadlock on lock upgrades.
//!
//! No wait is unbounded ([`Timeouts`]): a statement that waits too long for a lock another
//! transaction holds, or runs too long, fails, and the request answers 503 with
//! `Retry-After` ([`gave_up_waiting`]) instead of holding its connection and its client.
//! So does a statement the database could not run for now ([`out_of_service`]): its disk
//! full, its files failing, the server shutting down, starting up or gone.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::hal::PageRequest;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Conn = sqlx::AnyConnection;

/// PostgreSQL connections per process unless configured.
pub const DEFAULT_POOL: u32 = 8;

/// How long a statement may wait, or run, before it fails rather than hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A wait for a lock another transaction holds (a row, a table, an advisory lock; on
    /// SQLite, the database's one write lock): PostgreSQL's `lock_timeout`, SQLite's busy
    /// timeout. Every transaction here is short, so a lock held longer is a stuck holder,
    /// not a queue worth joining.
    pub lock: Duration,
    /// A whole statement, waits included: PostgreSQL's `statement_timeout`. Well above any
    /// page or batch the services run, so it only ends what would otherwise run unbounded.
    /// (SQLite's statements run in-process on a local file; only their lock wait is bounded.)
    pub statement: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { lock: Duration::from_secs(5), statement: Duration::from_secs(30) }
    }
}

/// Did the database give up on a statement because it waited or ran too long (or another
/// transaction's locks made it a deadlock victim)? Nothing was changed, and the same request
/// may well succeed a moment later: the client gets 503 with `Retry-After`, not 500.
pub fn gave_up_waiting(e: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = e.code() else { return false };
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        sqlite_gave_up(&code)
    } else if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        postgres_gave_up(&code)
    } else {
        false
    }
}

/// SQLSTATE `55P03` lock_not_available (`lock_timeout`, `NOWAIT`), `57014` query_canceled
/// (`statement_timeout`, a cancel request), `40P01` deadlock_detected.
fn postgres_gave_up(sqlstate: &str) -> bool {
    matches!(sqlstate, "55P03" | "57014" | "40P01")
}

/// `SQLITE_BUSY` (5: another connection holds the lock past the busy timeout) and
/// `SQLITE_LOCKED` (6), with their extended codes (`SQLITE_BUSY_SNAPSHOT` = 517, ...): the
/// primary code is the low byte.
fn sqlite_gave_up(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// Could the database not run a statement for now, through no fault of the statement: out
/// of disk space or failing to write its files, shutting down, starting up, or the
/// connection to it lost? The transaction failed as a whole, so nothing was changed, and the
/// same request succeeds once the database is mended (space freed, the server back), with no
/// restart of ours: the client gets 503 with `Retry-After`, not 500.
pub fn out_of_service(e: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = e.code() else { return false };
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        sqlite_out_of_service(&code)
    } else if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        postgres_out_of_service(&code)
    } else {
        false
    }
}

/// SQLSTATE class `08` connection exception, `57P01` admin_shutdown (`pg_ctl stop`, even
/// `-m immediate`), `57P02` crash_shutdown (another backend crashed), `57P03`
/// cannot_connect_now (starting up or shutting down), class `53` insufficient resources
/// (`53100` disk_full, `53200` out_of_memory, `53300` too_many_connections), `58030`
/// io_error.
fn postgres_out_of_service(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "58030")
}

/// `SQLITE_IOERR` (10, with its extended codes: a write or an fsync that failed, the shared
/// memory file that could not grow), `SQLITE_FULL` (13: "database or disk is full"),
/// `SQLITE_CANTOPEN` (14: a journal or temporary file that could not be created) and
/// `SQLITE_PROTOCOL` (15: a race for the write-ahead log's locks). SQLite rolls the
/// transaction back and leaves the file as it was.
fn sqlite_out_of_service(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 10 | 13 | 14 | 15))
}

/// Could the same work succeed later with nothing changed but time? The database is
/// unreachable, closed, out of space, out of service ([`out_of_service`]) or out of
/// patience ([`gave_up_waiting`]). Nothing is at fault but the database: a request answers
/// 503 with `Retry-After`, and a consumer's event is redelivered rather than parked
/// ([`crate::dead_letter`]). Every other error (a constraint, a row that does not decode, a
/// handler's own refusal) is the work's.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => gave_up_waiting(db.as_ref()) || out_of_service(db.as_ref()),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// One schema step. Applied once, in order, inside a transaction.
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({:?})", self.backend)
    }
}

impl Db {
    /// The connection pool, for reads and for writes that raise no event (those go through
    /// [`crate::Ctx::begin`]).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A SQLite database file under `dir`.
    pub async fn sqlite_file(dir: &Path, name: &str) -> Result<Db, sqlx::Error> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let url = format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display());
        Db::connect(&url).await
    }

    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`, with the default pool size.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        Db::connect_pooled(url, DEFAULT_POOL).await
    }

    /// Like [`Db::connect`]; on PostgreSQL with at most `pool` connections (SQLite always
    /// has one). Every process of a cluster holds its own pool against the server's
    /// `max_connections` (100 by default), so pools stay small.
    pub async fn connect_pooled(url: &str, pool: u32) -> Result<Db, sqlx::Error> {
        Db::connect_bounded(url, pool, Timeouts::default()).await
    }

    /// Like [`Db::connect_pooled`], with `timeouts` on every connection.
    pub async fn connect_bounded(url: &str, pool: u32, timeouts: Timeouts) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database URL '{}': use sqlite:// or postgres://", crate::redacted(url)).into(),
            ));
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    // A local file on our only connection: nothing to test before each use.
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        // Another process on the same file (a second `cafe`, an operator's
                        // command) can hold the write lock: wait for it, but not forever.
                        let pragmas = format!(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                             PRAGMA busy_timeout={}; PRAGMA foreign_keys=ON;",
                            timeouts.lock.as_millis()
                        );
                        Box::pin(async move {
                            conn.execute(pragmas.as_str()).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(pool.max(1))
                    .acquire_timeout(Duration::from_secs(5))
                    // No ping before each use: a connection the server dropped fails its
                    // next statement, which the caller reports or retries, and the pool
                    // then discards it. The ping would cost a round trip per statement.
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        // Set once per connection, for the whole session: a transaction
                        // waiting on another's row or advisory lock, or a statement running
                        // away, fails (then 503) instead of holding a pooled connection.
                        let settings = format!(
                            "SET lock_timeout = {}; SET statement_timeout = {}",
                            timeouts.lock.as_millis(),
                            timeouts.statement.as_millis()
                        );
                        Box::pin(async move {
                            conn.execute(settings.as_str()).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Db { pool, backend })
    }

    /// Like [`Db::connect`], but on PostgreSQL creates the database first if it does not
    /// exist (two replicas racing to create it are both fine).
    pub async fn connect_or_create(url: &str, pool: u32) -> Result<Db, sqlx::Error> {
        match Db::connect_pooled(url, pool).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
                let (server, name) = url.rsplit_once('/').ok_or_else(|| {
                    sqlx::Error::Configuration(format!("no database name in '{}'", crate::redacted(url)).into())
                })?;
                let name = name.split('?').next().unwrap_or(name);
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(sqlx::Error::Configuration(
                        format!("database name '{name}' must be letters, digits and underscores").into(),
                    ));
                }
                let admin = Db::connect_pooled(&format!("{server}/postgres"), 1).await?;
                match sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin.pool).await {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
                    Err(e) => return Err(e),
                }
                admin.pool.close().await;
                Db::connect_pooled(url, pool).await
            }
            other => other,
        }
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// Is the database reachable? Used by readiness.
    pub async fn ping(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    fn dialect(&self, sql: &str) -> String {
        let id = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        };
        sql.replace("{{ID}}", id)
    }

    /// Applies the platform's own tables (outbox, inbox) and then `migrations`, each at most
    /// once. On PostgreSQL an advisory lock makes two replicas starting together take turns.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Start-up may wait for another replica's migrations and may build an index over
            // a large table: neither is a request, and failing it would only fail the start.
            sqlx::query("SET LOCAL lock_timeout = 0").execute(&mut *tx).await?;
            sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
            sqlx::query("SELECT pg_advisory_xact_lock(7240001)").execute(&mut *tx).await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for m in crate::PLATFORM_MIGRATIONS.iter().chain(migrations) {
            if done.contains(&m.version) {
                continue;
            }
            for stmt in self.dialect(m.sql).split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(crate::time::now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

/// Serialises the transactions about one key (an order id, say) for the rest of the
/// caller's transaction: on PostgreSQL with a transaction-scoped advisory lock on the key,
/// so that two concurrent read-decide-write transactions about one order take turns
/// instead of both deciding on what they read. SQLite needs nothing: its one connection
/// runs one transaction at a time.
pub async fn guard(conn: &mut Conn, key: i64) -> Result<(), sqlx::Error> {
    guard_all(conn, &[key]).await
}

/// [`guard`] for many keys in one statement per chunk. The keys are locked in ascending
/// order, so two transactions guarding overlapping sets wait for each other instead of
/// deadlocking. Advisory locks live in the server's memory and go with the transaction:
/// nothing is written. (The migrations' lock shares the key space: at worst a start-up
/// waits for one merge about order 7240001.)
pub async fn guard_all(conn: &mut Conn, keys: &[i64]) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "SQLite" || keys.is_empty() {
        return Ok(());
    }
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (1..=chunk.len()).map(|i| format!("(${i}::bigint)")).collect();
        // Row by row in the VALUES order (ascending): a volatile function in the select
        // list is evaluated after the sort.
        let sql = format!(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM (VALUES {}) AS v (k) ORDER BY k) AS sorted",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for key in chunk {
            q = q.bind(*key);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The rows of `select`, a query ending in `IN` whose list this fills, for every key in
/// `keys`: one statement per chunk of keys.
pub async fn fetch_in<R>(conn: &mut Conn, select: &str, keys: &[i64]) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("{select} ({})", placeholders(chunk.len()));
        let mut q = sqlx::query_as::<_, R>(&sql);
        for key in chunk {
            q = q.bind(*key);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// `$1, $2, $3` for `n` values: the inside of an `IN (...)` list.
pub fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` values: one statement for many rows.
pub fn values_list(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * cols + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// One page of the rows of `table` that meet every `column = value` of `filter` (none: every
/// row), in the page's order, and how many rows meet it in all. The column names are the
/// caller's own constants; the values are bound.
pub async fn page_where<R>(
    pool: &AnyPool,
    columns: &str,
    table: &str,
    filter: &[(&str, &str)],
    page: &PageRequest,
) -> Result<(Vec<R>, i64), sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let conditions: Vec<String> =
        filter.iter().enumerate().map(|(i, (column, _))| format!("{column} = ${}", i + 1)).collect();
    let filtered = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let next = filter.len() + 1;
    let rows_sql = format!(
        "SELECT {columns} FROM {table}{filtered} ORDER BY {} LIMIT ${next} OFFSET ${}",
        page.order_by,
        next + 1
    );
    let count_sql = format!("SELECT COUNT(*) FROM {table}{filtered}");
    let mut rows = sqlx::query_as::<_, R>(&rows_sql);
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for (_, value) in filter {
        rows = rows.bind(*value);
        count = count.bind(*value);
    }
    let rows = rows.bind(page.size).bind(page.offset()).fetch_all(pool).await?;
    let total = count.fetch_one(pool).await?;
    Ok((rows, total))
}

/// Runs `write`, an `INSERT`, `UPDATE` or `DELETE` with `RETURNING`, on its own and
/// committed: the row it returns (if any) is stored when this returns, or this is an error.
///
/// Use it rather than `fetch_one(pool)` for such a write outside a transaction. On SQLite,
/// sqlx hands back the first row at the statement's first step, and the write's implicit
/// commit happens only when the statement is reset afterwards, whose failure nobody sees
/// (launchbadge/sqlx#3430): with the disk full, a row that was never stored, and whose id
/// the next insert takes again, would be answered as made. In a transaction of its own the
/// commit is a statement whose failure is reported. PostgreSQL reports a failed commit before
/// the statement's end: there the write runs as it is.
pub async fn write_returning<'q, R>(
    db: &Db,
    write: sqlx::query::QueryAs<'q, sqlx::Any, R, sqlx::any::AnyArguments<'q>>,
) -> Result<Option<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    match db.backend {
        Backend::Postgres => write.fetch_optional(db.pool()).await,
        Backend::Sqlite => {
            let mut tx = db.begin().await?;
            let row = write.fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            Ok(row)
        }
    }
}

/// The row `sql` finds for `key` (its one parameter), if any: read as the stored record `R`,
/// then made the `T` it stands for.
pub async fn find_by_key<'e, R, T>(
    e: impl Executor<'e, Database = sqlx::Any>,
    sql: &str,
    key: i64,
) -> Result<Option<T>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    T: TryFrom<R, Error = sqlx::Error>,
{
    sqlx::query_as::<_, R>(sql).bind(key).fetch_optional(e).await?.map(T::try_from).transpose()
}

/// A column stored as a name (a status, a role), read back with `parse`. A name `parse` does
/// not know is corruption: a decode error of the column saying what `parse` said, never a
/// default.
pub fn parse_column<T>(
    row: &sqlx::any::AnyRow,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, sqlx::Error> {
    let stored: String = sqlx::Row::try_get(row, column)?;
    parse(&stored).map_err(|why| sqlx::Error::ColumnDecode { index: column.into(), source: why.into() })
}

/// Rows per multi-row statement: well under every backend's limit on bound values.
pub const ROWS_PER_STATEMENT: usize = 200;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::http::StatusCode;

    use super::*;
    use crate::problem::Problem;

    #[test]
    fn values_lists_number_their_placeholders() {
        assert_eq!(super::values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3), "$1, $2, $3");
    }

    #[test]
    fn lock_and_statement_timeouts_are_told_from_other_failures() {
        for code in ["55P03", "57014", "40P01"] {
            assert!(postgres_gave_up(code), "{code}");
        }
        for code in ["23505", "3D000", "42P01", "08006", "5"] {
            assert!(!postgres_gave_up(code), "{code}");
        }
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT.
        for code in ["5", "6", "517", "773"] {
            assert!(sqlite_gave_up(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_FULL, SQLITE_IOERR, SQLITE_CORRUPT, not a number.
        for code in ["2067", "13", "10", "11", "55P03"] {
            assert!(!sqlite_gave_up(code), "{code}");
        }
    }

    #[test]
    fn a_full_disk_a_failing_file_or_a_server_gone_is_told_from_other_failures() {
        // SQLITE_IOERR, SQLITE_IOERR_WRITE, SQLITE_IOERR_SHMSIZE, SQLITE_FULL, SQLITE_CANTOPEN,
        // SQLITE_PROTOCOL.
        for code in ["10", "778", "4874", "13", "14", "15"] {
            assert!(sqlite_out_of_service(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CORRUPT, SQLITE_BUSY, SQLITE_READONLY, not a number.
        for code in ["2067", "11", "5", "8", "57P01"] {
            assert!(!sqlite_out_of_service(code), "{code}");
        }
        for code in ["08006", "08001", "57P01", "57P02", "57P03", "53100", "53300", "58030"] {
            assert!(postgres_out_of_service(code), "{code}");
        }
        for code in ["23505", "3D000", "42P01", "55P03", "57014", "40P01", "13"] {
            assert!(!postgres_out_of_service(code), "{code}");
        }
    }

    /// What a request that met `e` answers.
    fn answered(e: sqlx::Error) -> (StatusCode, Option<u64>) {
        let p = Problem::from(e);
        (p.status(), p.retry_after)
    }

    /// A write that finds another connection holding SQLite's write lock waits the busy
    /// timeout, then fails with a 503, rather than hang.
    #[tokio::test]
    async fn a_sqlite_writer_behind_a_held_lock_gets_a_503_after_the_busy_timeout() {
        let dir = std::env::temp_dir().join(format!("cafe-db-busy-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("busy.db").display());
        let short = Timeouts { lock: Duration::from_millis(200), ..Timeouts::default() };
        let holder = Db::connect_bounded(&url, 1, short).await.unwrap();
        let writer = Db::connect_bounded(&url, 1, short).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)").execute(holder.pool()).await.unwrap();

        let mut held = holder.begin().await.unwrap();
        sqlx::query("INSERT INTO t (n) VALUES (1)").execute(&mut *held).await.unwrap();
        let started = Instant::now();
        let blocked = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::query("INSERT INTO t (n) VALUES (2)").execute(writer.pool()),
        )
        .await
        .expect("the second writer hung behind the lock");
        let waited = started.elapsed();
        let e = blocked.expect_err("a second writer while the lock is held");
        assert!(waited >= Duration::from_millis(150), "gave up after {waited:?}, before the busy timeout");
        assert!(matches!(&e, sqlx::Error::Database(db) if gave_up_waiting(db.as_ref())), "{e:?}");
        assert_eq!(answered(e), (StatusCode::SERVICE_UNAVAILABLE, Some(1)));

        // Once the holder is done, the same write goes through.
        held.commit().await.unwrap();
        sqlx::query("INSERT INTO t (n) VALUES (2)").execute(writer.pool()).await.unwrap();
        holder.pool().close().await;
        writer.pool().close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database of this test's own on the PostgreSQL the distributed mode uses, or `None`
    /// (skipped) when none is running; under CI a missing PostgreSQL fails the test instead,
    /// since a skip would pass a test that never ran.
    async fn postgres(name: &str, timeouts: Timeouts) -> Option<Db> {
        let addr: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "this test needs PostgreSQL at {addr}; under CI it fails rather than skip");
            eprintln!("skipping: PostgreSQL not running at {addr}");
            return None;
        }
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Db::connect_or_create(&url, 1).await.unwrap().pool().close().await;
        Some(Db::connect_bounded(&url, 2, timeouts).await.unwrap())
    }

    /// On PostgreSQL a transaction waiting for a row another holds gives up at `lock_timeout`,
    /// a statement running too long at `statement_timeout`, and either answers 503.
    #[tokio::test]
    async fn a_postgres_statement_behind_a_held_lock_or_running_too_long_gets_a_503() {
        let short = Timeouts { lock: Duration::from_millis(200), statement: Duration::from_millis(1500) };
        let Some(holder) = postgres("platform_db_timeouts", Timeouts::default()).await else { return };
        let waiter = postgres("platform_db_timeouts", short).await.unwrap();
        let key = i64::from(std::process::id());
        sqlx::query("CREATE TABLE IF NOT EXISTS held (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
            .execute(holder.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO held (id, n) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING")
            .bind(key)
            .execute(holder.pool())
            .await
            .unwrap();

        let mut held = holder.begin().await.unwrap();
        sqlx::query("UPDATE held SET n = n + 1 WHERE id = $1").bind(key).execute(&mut *held).await.unwrap();
        guard(&mut held, key).await.unwrap();
        for (what, sql) in [
            ("a row lock", "UPDATE held SET n = n + 1 WHERE id = $1"),
            ("an advisory lock", "SELECT pg_advisory_xact_lock($1)"),
        ] {
            let mut tx = waiter.begin().await.unwrap();
            let started = Instant::now();
            let e = tokio::time::timeout(Duration::from_secs(10), sqlx::query(sql).bind(key).execute(&mut *tx))
                .await
                .unwrap_or_else(|_| panic!("{what}: the waiter hung"))
                .expect_err(what);
            assert!(started.elapsed() >= Duration::from_millis(150), "{what}: gave up before the lock timeout");
            assert!(matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03")), "{what}: {e:?}");
            assert_eq!(answered(e), (StatusCode::SERVICE_UNAVAILABLE, Some(1)), "{what}");
            tx.rollback().await.unwrap();
        }
        held.rollback().await.unwrap();

        let e = sqlx::query("SELECT pg_sleep(30)").execute(waiter.pool()).await.expect_err("a statement too long");
        assert!(matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014")), "{e:?}");
        assert_eq!(answered(e), (StatusCode::SERVICE_UNAVAILABLE, Some(1)));

        // The timeouts end statements, not sessions: the same connections go on serving.
        sqlx::query("UPDATE held SET n = n + 1 WHERE id = $1").bind(key).execute(waiter.pool()).await.unwrap();
        sqlx::query("DELETE FROM held WHERE id = $1").bind(key).execute(holder.pool()).await.unwrap();
        holder.pool().close().await;
        waiter.pool().close().await;
    }
}
