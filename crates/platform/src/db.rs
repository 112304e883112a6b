//! Storage: one API over SQLite (all-in-one) and PostgreSQL (distributed).
//!
//! Services write portable SQL with `$1` placeholders (SQLite accepts them too) and get an
//! `AnyPool`. The only dialect difference the services meet is the auto-increment key, which
//! migrations spell `{{ID}}`. SQLite runs in WAL mode with `synchronous=NORMAL`: a commit is
//! in the log before it returns, so `kill -9` loses nothing (only a power cut could lose the
//! last commits), and it has one connection per database, because SQLite serialises writers
//! anyway and one connection cannot deadlock on lock upgrades.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::hal::PageRequest;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Conn = sqlx::AnyConnection;

/// PostgreSQL connections per process unless configured.
pub const DEFAULT_POOL: u32 = 8;

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
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                 PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;",
                            )
                            .await?;
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
    #[test]
    fn values_lists_number_their_placeholders() {
        assert_eq!(super::values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3), "$1, $2, $3");
    }
}
