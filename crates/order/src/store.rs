//! The order table. Placing an order is two commits around the payment call (never a
//! transaction held across the network): insert `Pending`, then confirm as `Ordered` with
//! the `Ordered` event in the same transaction as the status change.

use contracts::{Event, Payload};
use platform::db::parse_column;
use platform::{Ctx, Migration, PageRequest};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::Any;
use sqlx::{FromRow, Row};

use crate::domain::{NewOrder, Order, OrderStatus};

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
];

const COLUMNS: &str = "id, phone_number, product_name, qty, amt, status, create_time";

/// By hand rather than derived: the status is stored as its name, and a name that is no
/// status is corruption, reported as such rather than read as a default.
impl<'r> FromRow<'r, AnyRow> for Order {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Order {
            id: row.try_get("id")?,
            phone_number: row.try_get("phone_number")?,
            product_name: row.try_get("product_name")?,
            qty: row.try_get("qty")?,
            amt: row.try_get("amt")?,
            status: parse_column(row, "status", |s| {
                OrderStatus::parse(s).ok_or_else(|| format!("unknown order status {s:?}"))
            })?,
            create_time: row.try_get("create_time")?,
        })
    }
}

pub async fn insert_pending(ctx: &Ctx, new: &NewOrder) -> Result<Order, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!(
        "INSERT INTO orders (phone_number, product_name, qty, amt, status, create_time)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(new.phone_number.as_str())
    .bind(&new.product_name)
    .bind(new.qty)
    .bind(new.amt)
    .bind(OrderStatus::Pending.as_str())
    .bind(platform::time::now())
    .fetch_one(ctx.db().pool())
    .await
}

/// `Pending` → `Ordered`, raising `Ordered`, in one commit. `None` if the order is no
/// longer pending (the reconciler voided it meanwhile).
pub async fn confirm(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("UPDATE orders SET status = $1 WHERE id = $2 AND status = $3 RETURNING {COLUMNS}");
    let confirm = sqlx::query_as(&sql).bind(OrderStatus::Ordered.as_str()).bind(id).bind(OrderStatus::Pending.as_str());
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

/// Forgets a pending order whose payment was refused or voided.
pub async fn drop_pending(ctx: &Ctx, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM orders WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(OrderStatus::Pending.as_str())
        .execute(ctx.db().pool())
        .await?;
    Ok(())
}

/// Pending orders created before `before` (RFC 3339): left behind by a crash or a timeout.
pub async fn stale_pending(ctx: &Ctx, before: &str) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!(
        "SELECT {COLUMNS} FROM orders WHERE status = $1 AND create_time < $2 ORDER BY id LIMIT 100"
    ))
    .bind(OrderStatus::Pending.as_str())
    .bind(before)
    .fetch_all(ctx.db().pool())
    .await
}

pub async fn count_pending(ctx: &Ctx) -> Result<usize, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = $1")
        .bind(OrderStatus::Pending.as_str())
        .fetch_one(ctx.db().pool())
        .await?;
    Ok(n as usize)
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as::<_, Order>(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1 AND status = $2"))
        .bind(id)
        .bind(OrderStatus::Ordered.as_str())
        .fetch_optional(ctx.db().pool())
        .await
}

/// A page of the placed orders, all of them or those under one phone number.
pub async fn page(ctx: &Ctx, page: &PageRequest, phone: Option<&str>) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let mut filter = vec![("status", OrderStatus::Ordered.as_str())];
    filter.extend(phone.map(|phone| ("phone_number", phone)));
    platform::db::page_where(ctx.db().pool(), COLUMNS, "orders", &filter, page).await
}

/// Deletes an `Ordered` order, raising `OrderCanceled`, in one commit. `None` if it was not
/// there (a concurrent cancel won).
pub async fn delete(ctx: &Ctx, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("DELETE FROM orders WHERE id = $1 AND status = $2 RETURNING {COLUMNS}");
    let delete = sqlx::query_as(&sql).bind(id).bind(OrderStatus::Ordered.as_str());
    change_one(ctx, delete, crate::events::order_canceled).await
}
