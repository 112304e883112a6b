//! The order table. Placing an order is two commits around the payment call (never a
//! transaction held across the network): insert `Pending`, then confirm as `Ordered` with
//! the `Ordered` event in the same transaction as the status change. A pending order is
//! voided only once claimed (`Pending` → `Voiding`, see [`Stage`]), and only a `Pending` one
//! is confirmed, so the two exclude each other row by row.
//!
//! Cancelling is recorded as an intent before delivery is asked: the order is marked
//! `Cancelling` (the time of the ask set), then deleted with `OrderCanceled` once delivery
//! recorded the cancellation, or unmarked once delivery refused it. A mark whose answer never
//! came is settled by the reconciler, which asks delivery again.

use contracts::{Event, Payload};
use platform::db::parse_column;
use platform::{Ctx, Migration, PageRequest};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::Any;
use sqlx::{FromRow, Row};

use crate::domain::{NewOrder, Order, Stage};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 10,
        sql: "CREATE TABLE orders (id {{ID}}, phone_number TEXT NOT NULL, product_name TEXT NOT NULL,
            qty BIGINT NOT NULL, amt BIGINT NOT NULL, status TEXT NOT NULL, create_time TEXT NOT NULL);
          CREATE INDEX orders_status ON orders (status, create_time)",
    },
    Migration {
        // A customer lists only their own orders.
        version: 11,
        sql: "CREATE INDEX orders_phone_number ON orders (phone_number, status)",
    },
    Migration {
        // An `Ordered` order with this set is `Cancelling`: when delivery was last asked (by
        // its customer) to record the cancellation.
        version: 12,
        sql: "ALTER TABLE orders ADD COLUMN cancel_asked TEXT",
    },
];

const COLUMNS: &str = "id, phone_number, product_name, qty, amt, status, create_time";

/// By hand rather than derived: the stage is stored as its name, and a name that is no
/// stage is corruption, reported as such rather than read as a default.
impl<'r> FromRow<'r, AnyRow> for Order {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Order {
            id: row.try_get("id")?,
            phone_number: row.try_get("phone_number")?,
            product_name: row.try_get("product_name")?,
            qty: row.try_get("qty")?,
            amt: row.try_get("amt")?,
            status: parse_column(row, "status", |s| {
                Stage::parse(s).map(Stage::status).ok_or_else(|| format!("unknown order status {s:?}"))
            })?,
            create_time: row.try_get("create_time")?,
        })
    }
}

pub async fn insert_pending(ctx: &Ctx, new: &NewOrder) -> Result<Order, sqlx::Error> {
    let sql = format!(
        "INSERT INTO orders (phone_number, product_name, qty, amt, status, create_time)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let insert = sqlx::query_as::<_, Order>(&sql)
        .bind(new.phone_number.as_str())
        .bind(&new.product_name)
        .bind(new.qty)
        .bind(new.amt)
        .bind(Stage::Pending.as_str())
        .bind(platform::time::now());
    // Stored before payment is asked about its id, or not asked at all.
    platform::db::write_returning(ctx.db(), insert).await?.ok_or(sqlx::Error::RowNotFound)
}

/// `Pending` → `Ordered`, raising `Ordered`, in one commit. `None` if the order is no
/// longer pending: claimed for voiding (see [`abandon`]) or gone.
pub async fn confirm(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("UPDATE orders SET status = $1 WHERE id = $2 AND status = $3 RETURNING {COLUMNS}");
    let confirm = sqlx::query_as(&sql).bind(Stage::Ordered.as_str()).bind(id).bind(Stage::Pending.as_str());
    change_one(ctx, confirm, crate::events::ordered).await
}

/// Runs `change`, which changes at most one order and returns it, and raises `event` for the
/// order it changed, in one commit. `None` if it changed none.
async fn change_one<'q>(
    ctx: &Ctx,
    change: QueryAs<'q, Any, Order, AnyArguments<'q>>,
    event: fn(&Ctx, &Order) -> Event,
) -> Result<Option<Order>, sqlx::Error> {
    let mut tx = ctx.begin::<Payload>().await?;
    let order = change.fetch_optional(tx.conn()).await?;
    if let Some(order) = &order {
        tx.raise(event(ctx, order));
    }
    tx.commit().await?;
    Ok(order)
}

/// Forgets a pending order whose payment was never asked for.
pub async fn drop_pending(ctx: &Ctx, id: i64) -> Result<(), sqlx::Error> {
    drop_at(ctx, id, Stage::Pending).await
}

/// Claims a pending order for voiding: `Pending` → `Voiding`, in one conditional update, so
/// from now on `confirm` refuses it. True if the order is claimed (now, or already before);
/// false if it was confirmed first or is gone: then its payment must not be voided.
pub async fn abandon(ctx: &Ctx, id: i64) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query("UPDATE orders SET status = $1 WHERE id = $2 AND status IN ($3, $1)")
        .bind(Stage::Voiding.as_str())
        .bind(id)
        .bind(Stage::Pending.as_str())
        .execute(ctx.db().pool())
        .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Forgets a claimed order once its payment is voided.
pub async fn drop_voided(ctx: &Ctx, id: i64) -> Result<(), sqlx::Error> {
    drop_at(ctx, id, Stage::Voiding).await
}

async fn drop_at(ctx: &Ctx, id: i64, stage: Stage) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM orders WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(stage.as_str())
        .execute(ctx.db().pool())
        .await?;
    Ok(())
}

/// What the reconciler settles: pending orders created before `before` (RFC 3339), left
/// behind by a crash or a placement that outlived every timeout, and claimed orders whose
/// void failed, whatever their age.
pub async fn unsettled(ctx: &Ctx, before: &str) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE (status = $1 AND create_time < $2) OR status = $3 ORDER BY id LIMIT 100",
    )
    .bind(Stage::Pending.as_str())
    .bind(before)
    .bind(Stage::Voiding.as_str())
    .fetch_all(ctx.db().pool())
    .await
}

/// Orders not yet settled either way: pending, claimed for voiding, or being cancelled.
pub async fn count_unsettled(ctx: &Ctx) -> Result<usize, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status IN ($1, $2) OR cancel_asked IS NOT NULL")
        .bind(Stage::Pending.as_str())
        .bind(Stage::Voiding.as_str())
        .fetch_one(ctx.db().pool())
        .await?;
    Ok(n as usize)
}

/// Marks a placed order `Cancelling`, now, before delivery is asked to record its
/// cancellation; an order already `Cancelling` is marked again (its customer asks again).
/// False if there is no such order (gone, or not placed).
pub async fn mark_cancelling(ctx: &Ctx, id: i64) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query("UPDATE orders SET cancel_asked = $1 WHERE id = $2 AND status = $3")
        .bind(platform::time::now())
        .bind(id)
        .bind(Stage::Ordered.as_str())
        .execute(ctx.db().pool())
        .await?;
    Ok(marked.rows_affected() == 1)
}

/// `Cancelling` → `Ordered`: delivery refused the cancellation (the order was delivered).
pub async fn unmark_cancelling(ctx: &Ctx, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET cancel_asked = NULL WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(Stage::Ordered.as_str())
        .execute(ctx.db().pool())
        .await?;
    Ok(())
}

/// What the reconciler settles besides placements: orders `Cancelling` since before `before`
/// (RFC 3339), whose customer's call to delivery lost its answer or could not be made.
pub async fn cancelling(ctx: &Ctx, before: &str) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM orders WHERE status = $1 AND cancel_asked < $2 ORDER BY id LIMIT 100")
        .bind(Stage::Ordered.as_str())
        .bind(before)
        .fetch_all(ctx.db().pool())
        .await
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1 AND status = $2"))
        .bind(id)
        .bind(Stage::Ordered.as_str())
        .fetch_optional(ctx.db().pool())
        .await
}

/// A page of the placed orders, all of them or those under one phone number.
pub async fn page(ctx: &Ctx, page: &PageRequest, phone: Option<&str>) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let mut filter = vec![("status", Stage::Ordered.as_str())];
    filter.extend(phone.map(|phone| ("phone_number", phone)));
    platform::db::page_where(ctx.db().pool(), COLUMNS, "orders", &filter, page).await
}

/// Deletes an `Ordered` or `Cancelling` order, raising `OrderCanceled`, in one commit: only
/// once delivery recorded its cancellation. `None` if it was not there (a concurrent cancel
/// or the reconciler finished it first).
pub async fn delete(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("DELETE FROM orders WHERE id = $1 AND status = $2 RETURNING {COLUMNS}");
    let delete = sqlx::query_as(&sql).bind(id).bind(Stage::Ordered.as_str());
    change_one(ctx, delete, crate::events::order_canceled).await
}
