//! The delivery pages, one row per order keyed by the order id.
//!
//! Pages are merged a batch at a time by `platform::view` (guard, [`load`], apply, [`save`],
//! inside the consumer's transaction). `rank` is stored beside `status` so the furthest
//! stage is visible in SQL too.

use futures::future::BoxFuture;
use platform::db::{fetch_in, find_by_key, page_where, values_list, ROWS_PER_STATEMENT};
use platform::view::Table;
use platform::{Conn, Ctx, Migration, PageRequest};
use sqlx::{Any, Executor};

use crate::domain::{DeliveryPage, DeliveryPageStatus};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 10,
        sql: "CREATE TABLE delivery_pages (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, amt BIGINT,
            delivery_id BIGINT, status TEXT NOT NULL, rank BIGINT NOT NULL, product_name TEXT, qty BIGINT,
            phone_number TEXT);
          CREATE UNIQUE INDEX delivery_pages_order_id ON delivery_pages (order_id)",
    },
    Migration {
        // The row count, kept by the consumer in the transaction that adds rows: `COUNT(*)` on
        // every page read grows with the table (5 ms at 30,000 rows on PostgreSQL).
        version: 11,
        sql: "CREATE TABLE delivery_pages_total (id BIGINT PRIMARY KEY, total BIGINT NOT NULL);
          INSERT INTO delivery_pages_total (id, total) SELECT 1, COUNT(*) FROM delivery_pages",
    },
];

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

pub async fn find<'e>(e: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<DeliveryPage>, sqlx::Error> {
    find_by_key::<Record, _>(e, &format!("SELECT {COLUMNS} FROM delivery_pages WHERE id = $1"), id).await
}

pub async fn find_by_order<'e>(
    e: impl Executor<'e, Database = Any>,
    order_id: i64,
) -> Result<Option<DeliveryPage>, sqlx::Error> {
    find_by_key::<Record, _>(e, &format!("SELECT {COLUMNS} FROM delivery_pages WHERE order_id = $1"), order_id).await
}

impl Table for DeliveryPage {
    /// The stored pages among `ids`, for merging.
    fn load<'a>(conn: &'a mut Conn, ids: &'a [i64]) -> BoxFuture<'a, Result<Vec<DeliveryPage>, sqlx::Error>> {
        Box::pin(async move {
            let select = format!("SELECT {COLUMNS} FROM delivery_pages WHERE id IN");
            fetch_in::<Record>(conn, &select, ids).await?.into_iter().map(DeliveryPage::try_from).collect()
        })
    }

    /// Inserts or replaces `pages`, `added` of them new, inside the consumer's transaction.
    fn save<'a>(conn: &'a mut Conn, pages: &'a [DeliveryPage], added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            if added > 0 {
                sqlx::query("UPDATE delivery_pages_total SET total = total + $1 WHERE id = 1")
                    .bind(added as i64)
                    .execute(&mut *conn)
                    .await?;
            }
            for chunk in pages.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO delivery_pages (id, order_id, amt, delivery_id, status, rank, product_name, qty, phone_number)
                     VALUES {}
                     ON CONFLICT (id) DO UPDATE SET order_id = excluded.order_id, amt = excluded.amt,
                       delivery_id = excluded.delivery_id, status = excluded.status, rank = excluded.rank,
                       product_name = excluded.product_name, qty = excluded.qty, phone_number = excluded.phone_number",
                    values_list(chunk.len(), 9)
                );
                let mut q = sqlx::query(&sql);
                for page in chunk {
                    q = q
                        .bind(page.id)
                        .bind(page.order_id)
                        .bind(page.amt)
                        .bind(page.delivery_id)
                        .bind(page.status.as_str())
                        .bind(page.status.rank())
                        .bind(page.product_name.clone())
                        .bind(page.qty)
                        .bind(page.phone_number.clone());
                }
                q.execute(&mut *conn).await?;
            }
            Ok(())
        })
    }
}

/// A row of a page, with the total beside it: the page and its total in one round trip.
#[derive(sqlx::FromRow)]
struct PageRecord {
    #[sqlx(flatten)]
    record: Record,
    total: i64,
}

pub async fn page(ctx: &Ctx, page: &PageRequest) -> Result<(Vec<DeliveryPage>, i64), sqlx::Error> {
    let records = sqlx::query_as::<_, PageRecord>(&format!(
        "SELECT {COLUMNS}, (SELECT total FROM delivery_pages_total WHERE id = 1) AS total
         FROM delivery_pages ORDER BY {} LIMIT $1 OFFSET $2",
        page.order_by
    ))
    .bind(page.size)
    .bind(page.offset())
    .fetch_all(ctx.db().pool())
    .await?;
    let total = match records.first() {
        Some(r) => r.total,
        // Past the last page (or none yet): the total alone.
        None => {
            sqlx::query_scalar("SELECT total FROM delivery_pages_total WHERE id = 1").fetch_one(ctx.db().pool()).await?
        }
    };
    let rows = records.into_iter().map(|r| DeliveryPage::try_from(r.record)).collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}

/// A page of the delivery pages at `status`, with how many there are.
pub async fn page_at(
    ctx: &Ctx,
    page: &PageRequest,
    status: DeliveryPageStatus,
) -> Result<(Vec<DeliveryPage>, i64), sqlx::Error> {
    let (records, total) =
        page_where::<Record>(ctx.db().pool(), COLUMNS, "delivery_pages", &[("status", status.as_str())], page).await?;
    let rows = records.into_iter().map(DeliveryPage::try_from).collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}
