//! The drinks table, one row per order (`UNIQUE order_id`). Events about an order may arrive
//! in any order, so the row doubles as the order's memory: a cancellation that comes before
//! its `Ordered` leaves a `Canceled` drink, and the late `Ordered` then finds the order taken.
//! Every status change is a conditional update, committed with its event.

use contracts::Payload;
use platform::db::{values_list, ROWS_PER_STATEMENT};
use platform::{Conn, Ctx, Migration, PageRequest};

use crate::domain::{change_to, Change, Drink, DrinkStatus, OrderLine};
use crate::Error;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 10,
        sql: "CREATE TABLE drinks (id {{ID}}, order_id BIGINT NOT NULL UNIQUE, phone_number TEXT NOT NULL,
            product_name TEXT NOT NULL, qty BIGINT NOT NULL, status TEXT NOT NULL, create_time TEXT NOT NULL);
          CREATE INDEX drinks_status ON drinks (status, create_time)",
    },
    // The trace of the order the drink was made for: a barista's later change continues it.
    Migration { version: 11, sql: "ALTER TABLE drinks ADD COLUMN traceparent TEXT" },
];

const COLUMNS: &str = "id, order_id, phone_number, product_name, qty, status, create_time";

/// The statuses of the barista queue (`/orderinfos`).
const QUEUE: [DrinkStatus; 2] = [DrinkStatus::Received, DrinkStatus::Receipted];

/// Inserts the order's drink unless the order has one (made or cancelled). `None` if it had.
pub async fn insert(conn: &mut Conn, line: &OrderLine, status: DrinkStatus) -> Result<Option<Drink>, sqlx::Error> {
    sqlx::query_as::<_, Drink>(&format!(
        "INSERT INTO drinks (order_id, phone_number, product_name, qty, status, create_time, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(line.order_id)
    .bind(&line.phone_number)
    .bind(&line.product_name)
    .bind(line.qty)
    .bind(status.as_str())
    .bind(platform::time::now())
    .bind(platform::trace::traceparent())
    .fetch_optional(&mut *conn)
    .await
}

/// [`insert`] for many orders in one statement per chunk, each drink with the trace it was
/// received in: the drinks inserted (orders that had one already are left out).
pub async fn insert_all(
    conn: &mut Conn,
    lines: &[(OrderLine, Option<String>)],
    status: DrinkStatus,
) -> Result<Vec<Drink>, sqlx::Error> {
    let now = platform::time::now();
    let mut inserted = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO drinks (order_id, phone_number, product_name, qty, status, create_time, traceparent)
             VALUES {} ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}",
            values_list(chunk.len(), 7)
        );
        let mut q = sqlx::query_as::<_, Drink>(&sql);
        for (line, traceparent) in chunk {
            q = q
                .bind(line.order_id)
                .bind(&line.phone_number)
                .bind(&line.product_name)
                .bind(line.qty)
                .bind(status.as_str())
                .bind(&now)
                .bind(traceparent.as_deref());
        }
        inserted.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(inserted)
}

/// Cancels the order's drink whatever its state; if the order has none yet, leaves one
/// already `Canceled`. `None` if it was cancelled before (nothing to announce).
pub async fn cancel(conn: &mut Conn, line: &OrderLine) -> Result<Option<Drink>, sqlx::Error> {
    if let Some(d) = insert(conn, line, DrinkStatus::Canceled).await? {
        return Ok(Some(d));
    }
    sqlx::query_as::<_, Drink>(&format!(
        "UPDATE drinks SET status = $1 WHERE order_id = $2 AND status <> $1 RETURNING {COLUMNS}"
    ))
    .bind(DrinkStatus::Canceled.as_str())
    .bind(line.order_id)
    .fetch_optional(&mut *conn)
    .await
}

/// A barista's change, checked by the state machine. The update only applies if the status
/// is still the one the decision was made on; if another change slipped in between, the
/// decision is made again on the new status.
pub async fn change_status(ctx: &Ctx, id: i64, to: DrinkStatus) -> Result<Drink, Error> {
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        let mut change = ctx.begin::<Payload>().await?;
        let drink = find_in(change.conn(), id).await?.ok_or(Error::NotFound(id))?;
        let to = match change_to(drink.status, to)? {
            Change::Unchanged => return Ok(drink),
            Change::To(to) => to,
        };
        let changed = sqlx::query_as::<_, Drink>(&format!(
            "UPDATE drinks SET status = $1 WHERE id = $2 AND status = $3 RETURNING {COLUMNS}"
        ))
        .bind(to.as_str())
        .bind(id)
        .bind(drink.status.as_str())
        .fetch_optional(change.conn())
        .await?;
        if let Some(changed) = changed {
            let mut event = crate::events::status_changed(ctx, &changed);
            // The change belongs to the order's story: its event continues the order's trace.
            let order_trace: Option<Option<String>> =
                sqlx::query_scalar("SELECT traceparent FROM drinks WHERE id = $1")
                    .bind(id)
                    .fetch_optional(change.conn())
                    .await?;
            if let Some(Some(trace)) = order_trace {
                event.headers = platform::trace::continuing(&trace);
            }
            change.raise(event);
            change.commit().await?;
            return Ok(changed);
        }
    }
    Err(Error::Contended(id))
}

async fn find_in(conn: &mut Conn, id: i64) -> Result<Option<Drink>, sqlx::Error> {
    sqlx::query_as::<_, Drink>(&format!("SELECT {COLUMNS} FROM drinks WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Option<Drink>, sqlx::Error> {
    let mut conn = ctx.db().pool().acquire().await?;
    find_in(&mut conn, id).await
}

pub async fn page(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<Drink>, i64), sqlx::Error> {
    platform::db::page_where(ctx.db().pool(), COLUMNS, "drinks", &[], page).await
}

/// The barista queue: drinks still to accept or make, oldest first unless asked otherwise.
pub async fn queue(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<Drink>, i64), sqlx::Error> {
    // `id ASC` alone is what a request without `?sort=` gets.
    let order_by = if page.order_by == "id ASC" { "create_time ASC, id ASC" } else { page.order_by.as_str() };
    let rows = sqlx::query_as::<_, Drink>(&format!(
        "SELECT {COLUMNS} FROM drinks WHERE status IN ($1, $2) ORDER BY {order_by} LIMIT $3 OFFSET $4"
    ))
    .bind(QUEUE[0].as_str())
    .bind(QUEUE[1].as_str())
    .bind(page.size)
    .bind(page.offset())
    .fetch_all(ctx.db().pool())
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM drinks WHERE status IN ($1, $2)")
        .bind(QUEUE[0].as_str())
        .bind(QUEUE[1].as_str())
        .fetch_one(ctx.db().pool())
        .await?;
    Ok((rows, total))
}
