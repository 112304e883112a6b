//! The "my page" rows, one per order keyed by the order id.
//!
//! Rows are merged a batch at a time by `platform::view` (guard, [`load`], apply, [`save`],
//! inside the consumer's transaction). `rank` is stored beside `status` so the furthest
//! stage is visible in SQL too.

use futures::future::BoxFuture;
use platform::db::{fetch_in, find_by_key, values_list, ROWS_PER_STATEMENT};
use platform::view::Table;
use platform::{Conn, Ctx, Migration, PageRequest};
use sqlx::{Any, Executor};

use crate::domain::{MyPage, MyPageStatus, PhoneNumber};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: "CREATE TABLE my_pages (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, payment_id BIGINT,
            drink_id BIGINT, delivery_id BIGINT, phone_number TEXT, product_name TEXT, qty BIGINT, amt BIGINT,
            status TEXT NOT NULL, rank BIGINT NOT NULL);
          CREATE UNIQUE INDEX my_pages_order_id ON my_pages (order_id);
          CREATE INDEX my_pages_phone_number ON my_pages (phone_number)",
}];

const COLUMNS: &str = "id, order_id, payment_id, drink_id, delivery_id, phone_number, product_name, qty, amt, status";

#[derive(sqlx::FromRow)]
struct Record {
    id: i64,
    order_id: i64,
    payment_id: Option<i64>,
    drink_id: Option<i64>,
    delivery_id: Option<i64>,
    phone_number: Option<String>,
    product_name: Option<String>,
    qty: Option<i64>,
    amt: Option<i64>,
    status: String,
}

impl TryFrom<Record> for MyPage {
    type Error = sqlx::Error;

    fn try_from(r: Record) -> Result<Self, Self::Error> {
        let status = MyPageStatus::parse(&r.status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status '{}' in my_pages", r.status).into()))?;
        Ok(MyPage {
            id: r.id,
            order_id: r.order_id,
            payment_id: r.payment_id,
            drink_id: r.drink_id,
            delivery_id: r.delivery_id,
            phone_number: r.phone_number,
            product_name: r.product_name,
            qty: r.qty,
            amt: r.amt,
            status,
        })
    }
}

/// Customers see a row once its order is known to exist: a payment approved and then voided
/// for a placement that failed leaves a row with no order behind it, which stays hidden.
const PLACED: &str = "product_name IS NOT NULL";

pub async fn find<'e>(e: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<MyPage>, sqlx::Error> {
    find_by_key::<Record, _>(e, &format!("SELECT {COLUMNS} FROM my_pages WHERE id = $1 AND {PLACED}"), id).await
}

pub async fn find_by_order<'e>(
    e: impl Executor<'e, Database = Any>,
    order_id: i64,
) -> Result<Option<MyPage>, sqlx::Error> {
    find_by_key::<Record, _>(e, &format!("SELECT {COLUMNS} FROM my_pages WHERE order_id = $1 AND {PLACED}"), order_id)
        .await
}

impl Table for MyPage {
    /// The stored rows (placed or not) among `ids`, for merging.
    fn load<'a>(conn: &'a mut Conn, ids: &'a [i64]) -> BoxFuture<'a, Result<Vec<MyPage>, sqlx::Error>> {
        Box::pin(async move {
            let select = format!("SELECT {COLUMNS} FROM my_pages WHERE id IN");
            fetch_in::<Record>(conn, &select, ids).await?.into_iter().map(MyPage::try_from).collect()
        })
    }

    /// Inserts or replaces `rows`, inside the consumer's transaction.
    fn save<'a>(conn: &'a mut Conn, rows: &'a [MyPage], _added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO my_pages (id, order_id, payment_id, drink_id, delivery_id, phone_number, product_name, qty, amt,
                       status, rank)
                     VALUES {}
                     ON CONFLICT (id) DO UPDATE SET order_id = excluded.order_id, payment_id = excluded.payment_id,
                       drink_id = excluded.drink_id, delivery_id = excluded.delivery_id, phone_number = excluded.phone_number,
                       product_name = excluded.product_name, qty = excluded.qty, amt = excluded.amt, status = excluded.status,
                       rank = excluded.rank",
                    values_list(chunk.len(), 11)
                );
                let mut q = sqlx::query(&sql);
                for row in chunk {
                    q = q
                        .bind(row.id)
                        .bind(row.order_id)
                        .bind(row.payment_id)
                        .bind(row.drink_id)
                        .bind(row.delivery_id)
                        .bind(row.phone_number.clone())
                        .bind(row.product_name.clone())
                        .bind(row.qty)
                        .bind(row.amt)
                        .bind(row.status.as_str())
                        .bind(row.status.rank());
                }
                q.execute(&mut *conn).await?;
            }
            Ok(())
        })
    }
}

/// A page of rows, all of them or those of one phone number.
pub async fn page(
    ctx: &Ctx,
    page: &PageRequest,
    phone: Option<&PhoneNumber>,
) -> Result<(Vec<MyPage>, i64), sqlx::Error> {
    let (filter, next) = match phone {
        Some(_) => (format!("WHERE phone_number = $1 AND {PLACED}"), 2),
        None => (format!("WHERE {PLACED}"), 1),
    };
    let rows_sql = format!(
        "SELECT {COLUMNS} FROM my_pages {filter} ORDER BY {} LIMIT ${} OFFSET ${}",
        page.order_by,
        next,
        next + 1
    );
    let count_sql = format!("SELECT COUNT(*) FROM my_pages {filter}");
    let mut rows = sqlx::query_as::<_, Record>(&rows_sql);
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    if let Some(p) = phone {
        rows = rows.bind(p.as_str());
        count = count.bind(p.as_str());
    }
    let rows = rows
        .bind(page.size)
        .bind(page.offset())
        .fetch_all(ctx.db().pool())
        .await?
        .into_iter()
        .map(MyPage::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let total = count.fetch_one(ctx.db().pool()).await?;
    Ok((rows, total))
}
