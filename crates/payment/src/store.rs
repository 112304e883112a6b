//! The payments table, one row per order (`UNIQUE order_id`): the database itself makes
//! "never a second charge" true, whichever replica or retry gets there first. Each status
//! change commits with its event through the outbox.

use contracts::calls::Charge;
use contracts::Payload;
use platform::db::parse_column;
use platform::{Conn, Ctx, Migration, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::domain::{Payment, PaymentStatus};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 10,
        sql: "CREATE TABLE payments (id {{ID}}, order_id BIGINT NOT NULL UNIQUE, phone_number TEXT NOT NULL,
            amt BIGINT NOT NULL, status TEXT NOT NULL, create_time TEXT NOT NULL)",
    },
    Migration {
        // A customer lists only their own payments.
        version: 11,
        sql: "CREATE INDEX payments_phone_number ON payments (phone_number)",
    },
];

const COLUMNS: &str = "id, order_id, phone_number, amt, status, create_time";

/// By hand rather than derived: the status is stored as its name, and a name that is no
/// status is corruption, reported as such rather than read as a default.
impl<'r> FromRow<'r, AnyRow> for Payment {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Payment {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            phone_number: row.try_get("phone_number")?,
            amt: row.try_get("amt")?,
            status: parse_column(row, "status", |s| {
                PaymentStatus::parse(s).ok_or_else(|| format!("unknown payment status {s:?}"))
            })?,
            create_time: row.try_get("create_time")?,
        })
    }
}

/// Inserts a payment for its order unless the order has one. `None` if it had.
async fn insert(
    conn: &mut Conn,
    order_id: i64,
    phone_number: &str,
    amt: i64,
    status: PaymentStatus,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as::<_, Payment>(&format!(
        "INSERT INTO payments (order_id, phone_number, amt, status, create_time) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(phone_number)
    .bind(amt)
    .bind(status.as_str())
    .bind(platform::time::now())
    .fetch_optional(&mut *conn)
    .await
}

async fn find_by_order_in(conn: &mut Conn, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as::<_, Payment>(&format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Charges an order once: `(payment, true)` when approved now, raising `PaymentApproved` in
/// the same commit; `(existing, false)` when the order already has a payment, whatever its
/// status (a void that came first leaves a `Canceled` one, which bars a late charge).
pub async fn approve(ctx: &Ctx, charge: &Charge) -> Result<(Payment, bool), sqlx::Error> {
    let mut change = ctx.begin::<Payload>().await?;
    let charged =
        insert(change.conn(), charge.order_id, &charge.phone_number, charge.amt, PaymentStatus::Approved).await?;
    if let Some(p) = charged {
        change.raise(crate::events::payment_approved(ctx, &p));
        change.commit().await?;
        return Ok((p, true));
    }
    // The order has a payment already, committed by now (PostgreSQL waits for a conflicting
    // insert to commit before `DO NOTHING`), so this read, a statement after it, sees it.
    let existing = find_by_order_in(change.conn(), charge.order_id).await?.ok_or(sqlx::Error::RowNotFound)?;
    change.commit().await?;
    Ok((existing, false))
}

/// Refunds the order's payment if it is `Approved`, in the caller's transaction. `None` if
/// there is none or it is already `Canceled`. The `WHERE status` makes a concurrent refund
/// a no-op rather than a second `PaymentCanceled`.
pub async fn cancel_approved(conn: &mut Conn, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as::<_, Payment>(&format!(
        "UPDATE payments SET status = $1 WHERE order_id = $2 AND status = $3 RETURNING {COLUMNS}"
    ))
    .bind(PaymentStatus::Canceled.as_str())
    .bind(order_id)
    .bind(PaymentStatus::Approved.as_str())
    .fetch_optional(&mut *conn)
    .await
}

/// Voids whatever the order holds: nothing yet → a `Canceled` tombstone (amt 0, no phone
/// number) so a late charge finds it; `Approved` → `Canceled` with `PaymentCanceled`;
/// `Canceled` → unchanged. Returns the order's payment as it now stands.
pub async fn void(ctx: &Ctx, order_id: i64) -> Result<Payment, sqlx::Error> {
    let mut change = ctx.begin::<Payload>().await?;
    let payment = if let Some(tombstone) = insert(change.conn(), order_id, "", 0, PaymentStatus::Canceled).await? {
        tombstone
    } else if let Some(p) = cancel_approved(change.conn(), order_id).await? {
        change.raise(crate::events::payment_canceled(ctx, &p));
        p
    } else {
        find_by_order_in(change.conn(), order_id).await?.ok_or(sqlx::Error::RowNotFound)?
    };
    change.commit().await?;
    Ok(payment)
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as::<_, Payment>(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_optional(ctx.db().pool())
        .await
}

pub async fn find_by_order(ctx: &Ctx, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    let mut conn = ctx.db().pool().acquire().await?;
    find_by_order_in(&mut conn, order_id).await
}

/// A page of the payments, all of them or those under one phone number.
pub async fn page(ctx: &Ctx, page: &PageRequest, phone: Option<&str>) -> Result<(Vec<Payment>, i64), sqlx::Error> {
    let filter: Vec<_> = phone.map(|phone| ("phone_number", phone)).into_iter().collect();
    platform::db::page_where(ctx.db().pool(), COLUMNS, "payments", &filter, page).await
}
