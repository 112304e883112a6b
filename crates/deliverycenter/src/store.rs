//! The delivery pages, one row per order keyed by the order id, and the per-order guard.
//!
//! A page is updated by read, [`apply`], upsert inside the consumer's batch transaction. On
//! PostgreSQL two replicas may handle events about one order at once; both would read the
//! same page and the second upsert would drop what the first merged. So the merge first
//! upserts the order's row in `guards` (see `platform::db::guard`), which takes (and waits for) its row lock:
//! merges of one order run one after another, each reading what the previous committed.
//! SQLite serialises writers anyway. `rank` is stored beside `status` so the furthest stage
//! is visible in SQL too.

use platform::{Conn, Ctx, Migration, PageRequest};
use sqlx::{Any, Executor};

use crate::domain::{apply, DeliveryPage, DeliveryPageStatus, Fact};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: "CREATE TABLE delivery_pages (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, amt BIGINT,
            delivery_id BIGINT, status TEXT NOT NULL, rank BIGINT NOT NULL, product_name TEXT, qty BIGINT,
            phone_number TEXT);
          CREATE UNIQUE INDEX delivery_pages_order_id ON delivery_pages (order_id)",
}];

const COLUMNS: &str = "id, order_id, amt, delivery_id, status, product_name, qty, phone_number";

#[derive(sqlx::FromRow)]
struct Record {
    id: i64,
    order_id: i64,
    amt: Option<i64>,
    delivery_id: Option<i64>,
    status: String,
    product_name: Option<String>,
    qty: Option<i64>,
    phone_number: Option<String>,
}

impl TryFrom<Record> for DeliveryPage {
    type Error = sqlx::Error;

    fn try_from(r: Record) -> Result<Self, Self::Error> {
        let status = DeliveryPageStatus::parse(&r.status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status '{}' in delivery_pages", r.status).into()))?;
        Ok(DeliveryPage {
            id: r.id,
            order_id: r.order_id,
            amt: r.amt,
            delivery_id: r.delivery_id,
            status,
            product_name: r.product_name,
            qty: r.qty,
            phone_number: r.phone_number,
        })
    }
}

async fn one<'e>(e: impl Executor<'e, Database = Any>, sql: &str, key: i64) -> Result<Option<DeliveryPage>, sqlx::Error> {
    sqlx::query_as::<_, Record>(sql).bind(key).fetch_optional(e).await?.map(DeliveryPage::try_from).transpose()
}

pub async fn find<'e>(e: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<DeliveryPage>, sqlx::Error> {
    one(e, &format!("SELECT {COLUMNS} FROM delivery_pages WHERE id = $1"), id).await
}

pub async fn find_by_order<'e>(
    e: impl Executor<'e, Database = Any>,
    order_id: i64,
) -> Result<Option<DeliveryPage>, sqlx::Error> {
    one(e, &format!("SELECT {COLUMNS} FROM delivery_pages WHERE order_id = $1"), order_id).await
}

/// Merges `fact` into its order's page, inside the consumer's transaction.
#[tracing::instrument(skip_all, fields(order_id = fact.order_id))]
pub async fn merge(conn: &mut Conn, fact: &Fact) -> Result<(), sqlx::Error> {
    platform::db::guard(conn, fact.order_id).await?;
    let before = find(&mut *conn, fact.order_id).await?;
    let after = apply(before.clone(), fact);
    if before.as_ref() == Some(&after) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO delivery_pages (id, order_id, amt, delivery_id, status, rank, product_name, qty, phone_number)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET order_id = excluded.order_id, amt = excluded.amt,
           delivery_id = excluded.delivery_id, status = excluded.status, rank = excluded.rank,
           product_name = excluded.product_name, qty = excluded.qty, phone_number = excluded.phone_number",
    )
    .bind(after.id)
    .bind(after.order_id)
    .bind(after.amt)
    .bind(after.delivery_id)
    .bind(after.status.as_str())
    .bind(after.status.rank())
    .bind(after.product_name.as_deref())
    .bind(after.qty)
    .bind(after.phone_number.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn page(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<DeliveryPage>, i64), sqlx::Error> {
    let rows = sqlx::query_as::<_, Record>(&format!(
        "SELECT {COLUMNS} FROM delivery_pages ORDER BY {} LIMIT $1 OFFSET $2",
        page.order_by
    ))
    .bind(page.size)
    .bind(page.offset())
    .fetch_all(&ctx.db.pool)
    .await?
    .into_iter()
    .map(DeliveryPage::try_from)
    .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_pages").fetch_one(&ctx.db.pool).await?;
    Ok((rows, total))
}
