//! The deliveries, the cancellation ledger, and the per-order guard that serialises them.
//!
//! Why a guard: "no delivery starts for a cancelled order" and "no cancellation of a
//! delivered order" each span both tables, which no UNIQUE constraint can keep. On
//! PostgreSQL two transactions (a `Made` batch on one replica, a `POST /cancellations` on
//! another) could each read the other's table before either commits, and both go ahead: a
//! delivery would start for an order whose cancellation order has already been told is
//! recorded. So every transaction that changes anything about an order first takes that
//! order's guard (`platform::db::guard`, an advisory lock on PostgreSQL), so such
//! transactions run one after another per order, each seeing what the previous committed.
//! SQLite serialises writers anyway. Batches that touch several orders may deadlock on
//! PostgreSQL; it aborts one, which is redelivered.

use contracts::calls::RecordCancellation;
use contracts::Payload;
use platform::db::find_by_key;
use platform::{Conn, Ctx, Migration, PageRequest};
use sqlx::{Any, Executor};

use crate::domain::{starts_delivery, Cancellation, Delivery, DeliveryStatus};
use crate::{events, Error};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: "CREATE TABLE deliveries (id {{ID}}, order_id BIGINT NOT NULL UNIQUE, status TEXT NOT NULL);
          CREATE TABLE cancellations (id {{ID}}, order_id BIGINT NOT NULL UNIQUE, status TEXT NOT NULL)",
}];

const COLUMNS: &str = "id, order_id, status";

#[derive(sqlx::FromRow)]
pub(crate) struct Record {
    id: i64,
    order_id: i64,
    status: String,
}

fn unknown_status(table: &str, status: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown status '{status}' in {table}").into())
}

impl TryFrom<Record> for Delivery {
    type Error = sqlx::Error;

    fn try_from(r: Record) -> Result<Self, Self::Error> {
        let status = DeliveryStatus::parse(&r.status).ok_or_else(|| unknown_status("deliveries", &r.status))?;
        Ok(Delivery { id: r.id, order_id: r.order_id, status })
    }
}

impl TryFrom<Record> for Cancellation {
    type Error = sqlx::Error;

    fn try_from(r: Record) -> Result<Self, Self::Error> {
        // The ledger holds cancellations only.
        let status = DeliveryStatus::parse(&r.status)
            .filter(|s| *s == DeliveryStatus::DeliveryCancelled)
            .ok_or_else(|| unknown_status("cancellations", &r.status))?;
        Ok(Cancellation { id: r.id, order_id: r.order_id, status })
    }
}

/// A row of one of the two tables, a delivery or a cancellation in the ledger: each order has
/// at most one of each, found by its own id or by the order's.
pub(crate) trait Stored: TryFrom<Record, Error = sqlx::Error> {
    const TABLE: &'static str;
    fn id(&self) -> i64;
}

impl Stored for Delivery {
    const TABLE: &'static str = "deliveries";
    fn id(&self) -> i64 {
        self.id
    }
}

impl Stored for Cancellation {
    const TABLE: &'static str = "cancellations";
    fn id(&self) -> i64 {
        self.id
    }
}

/// The row with this `id`.
pub(crate) async fn find<'e, T: Stored>(
    e: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<T>, sqlx::Error> {
    find_by_key::<Record, T>(e, &format!("SELECT {COLUMNS} FROM {} WHERE id = $1", T::TABLE), id).await
}

/// The order's row, if it has one.
pub(crate) async fn of_order<'e, T: Stored>(
    e: impl Executor<'e, Database = Any>,
    order_id: i64,
) -> Result<Option<T>, sqlx::Error> {
    find_by_key::<Record, T>(e, &format!("SELECT {COLUMNS} FROM {} WHERE order_id = $1", T::TABLE), order_id).await
}

async fn set_status(conn: &mut Conn, d: &Delivery) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET status = $1 WHERE id = $2")
        .bind(d.status.as_str())
        .bind(d.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// From `Made`, inside the consumer's transaction: starts the order's delivery unless the
/// order is cancelled or already delivering. `Some` when a delivery started.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = order_id))]
pub async fn start_delivery(conn: &mut Conn, order_id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    platform::db::guard(conn, order_id).await?;
    let cancelled = of_order::<Cancellation>(&mut *conn, order_id).await?.is_some();
    let existing = of_order::<Delivery>(&mut *conn, order_id).await?;
    if !starts_delivery(cancelled, existing.as_ref()) {
        tracing::debug!(cancelled, "no delivery to start");
        return Ok(None);
    }
    sqlx::query_as::<_, Record>(&format!(
        "INSERT INTO deliveries (order_id, status) VALUES ($1, $2)
         ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(DeliveryStatus::DeliveryStarted.as_str())
    .fetch_optional(conn)
    .await?
    .map(Delivery::try_from)
    .transpose()
}

/// `Delivery Started` → `Delivered`, raising `Delivered`; a repeat changes nothing. `None`
/// for an unknown delivery.
#[tracing::instrument(level = "debug", skip_all, fields(delivery_id = id))]
pub async fn mark_delivered(ctx: &Ctx, id: i64) -> Result<Option<Delivery>, Error> {
    let mut change = ctx.begin::<Payload>().await?;
    // The order id never changes, so it can be read before the guard; the status is read again after.
    let Some(seen) = find::<Delivery>(change.conn(), id).await? else { return Ok(None) };
    platform::db::guard(change.conn(), seen.order_id).await?;
    let Some(current) = find::<Delivery>(change.conn(), id).await? else { return Ok(None) };
    let Some(delivered) = current.deliver()? else { return Ok(Some(current)) };
    set_status(change.conn(), &delivered).await?;
    change.raise(events::delivered(ctx, &delivered));
    change.commit().await?;
    Ok(Some(delivered))
}

/// A ledger entry, and whether this call recorded it (`false`: it was there before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub cancellation: Cancellation,
    pub created: bool,
}

/// Records the order's cancellation, cancels its delivery if one started, and raises
/// `DeliveryCanceled`, in one transaction. Idempotent per order; refused once delivered.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = call.order_id))]
pub async fn record_cancellation(ctx: &Ctx, call: &RecordCancellation) -> Result<Recorded, Error> {
    let order_id = call.order_id;
    let mut change = ctx.begin::<Payload>().await?;
    platform::db::guard(change.conn(), order_id).await?;
    if let Some(cancellation) = of_order::<Cancellation>(change.conn(), order_id).await? {
        return Ok(Recorded { cancellation, created: false });
    }
    let cancelled_delivery = match of_order::<Delivery>(change.conn(), order_id).await? {
        Some(d) => d.cancel()?,
        None => None,
    };
    let cancellation: Cancellation = sqlx::query_as::<_, Record>(&format!(
        "INSERT INTO cancellations (order_id, status) VALUES ($1, $2) RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(DeliveryStatus::DeliveryCancelled.as_str())
    .fetch_one(change.conn())
    .await?
    .try_into()?;
    if let Some(d) = &cancelled_delivery {
        set_status(change.conn(), d).await?;
    }
    change.raise(events::delivery_canceled(ctx, &cancellation));
    change.commit().await?;
    Ok(Recorded { cancellation, created: true })
}

async fn page_of<T: TryFrom<Record, Error = sqlx::Error>>(
    ctx: &Ctx,
    table: &str,
    page: &PageRequest,
) -> Result<(Vec<T>, i64), sqlx::Error> {
    let (rows, total) = platform::db::page_where::<Record>(ctx.db().pool(), COLUMNS, table, &[], page).await?;
    Ok((rows.into_iter().map(T::try_from).collect::<Result<_, _>>()?, total))
}

pub async fn page_deliveries(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<Delivery>, i64), sqlx::Error> {
    page_of(ctx, "deliveries", page).await
}

pub async fn page_cancellations(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<Cancellation>, i64), sqlx::Error> {
    page_of(ctx, "cancellations", page).await
}
