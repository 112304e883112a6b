//! The payments table, one row per order (`UNIQUE order_id`): the database itself makes
//! "never a second charge" true, whichever replica or retry gets there first. Each status
//! change commits with its event through the outbox.

use platform::{outbox, Conn, Ctx, Migration, PageRequest};

use crate::domain::{NewPayment, Payment, PaymentStatus};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: "CREATE TABLE payments (id {{ID}}, order_id BIGINT NOT NULL UNIQUE, phone_number TEXT NOT NULL,
            amt BIGINT NOT NULL, status TEXT NOT NULL, create_time TEXT NOT NULL)",
}];

const COLUMNS: &str = "id, order_id, phone_number, amt, status, create_time";

/// Inserts a payment for its order unless the order has one. `None` if it had.
async fn insert(conn: &mut Conn, order_id: i64, phone_number: &str, amt: i64, status: PaymentStatus) -> Result<Option<Payment>, sqlx::Error> {
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

/// Charges an order once: `(payment, true)` when approved now, raising `PaymentApproved`;
/// `(existing, false)` when the order already has a payment, whatever its status (a void
/// that came first leaves a `Canceled` one, which bars a late charge).
pub async fn approve(ctx: &Ctx, new: &NewPayment) -> Result<(Payment, bool), sqlx::Error> {
    let mut tx = ctx.db.begin().await?;
    if let Some(p) = insert(&mut tx, new.order_id, &new.phone_number, new.amt, PaymentStatus::Approved).await? {
        outbox::enqueue(&mut tx, &[crate::events::payment_approved(ctx, &p)]).await?;
        ctx.commit(tx).await?;
        return Ok((p, true));
    }
    // The conflicting row is committed by now (PostgreSQL waits for it before DO NOTHING),
    // so this read, a new statement, sees it.
    let existing = find_by_order_in(&mut tx, new.order_id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
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
    let mut tx = ctx.db.begin().await?;
    if let Some(tombstone) = insert(&mut tx, order_id, "", 0, PaymentStatus::Canceled).await? {
        tx.commit().await?;
        return Ok(tombstone);
    }
    if let Some(p) = cancel_approved(&mut tx, order_id).await? {
        outbox::enqueue(&mut tx, &[crate::events::payment_canceled(ctx, &p)]).await?;
        ctx.commit(tx).await?;
        return Ok(p);
    }
    let existing = find_by_order_in(&mut tx, order_id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(existing)
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as::<_, Payment>(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db.pool)
        .await
}

pub async fn find_by_order(ctx: &Ctx, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    let mut conn = ctx.db.pool.acquire().await?;
    find_by_order_in(&mut conn, order_id).await
}

pub async fn page(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<Payment>, i64), sqlx::Error> {
    let rows = sqlx::query_as::<_, Payment>(&format!(
        "SELECT {COLUMNS} FROM payments ORDER BY {} LIMIT $1 OFFSET $2",
        page.order_by
    ))
    .bind(page.size)
    .bind(page.offset())
    .fetch_all(&ctx.db.pool)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments").fetch_one(&ctx.db.pool).await?;
    Ok((rows, total))
}
