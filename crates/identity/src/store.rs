//! The accounts table. `UNIQUE username` makes "one account per name" (and so per customer
//! phone number) true whichever replica or retry gets there first. Identity raises no
//! events, so nothing here goes through the outbox.

use platform::auth::Role;
use platform::{Db, Migration, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::domain::{Account, Username};
use crate::password::Hash;

/// Versions from 10, as every service's: the platform's own tables (outbox, inbox) take 1–9.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: "CREATE TABLE accounts (id {{ID}}, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
            role TEXT NOT NULL, phone_number TEXT, create_time TEXT NOT NULL)",
}];

const COLUMNS: &str = "id, username, role, phone_number, create_time";

/// By hand rather than derived: the role is stored as its name, and a name that is no role
/// is corruption, reported as such rather than read as a default.
impl<'r> FromRow<'r, AnyRow> for Account {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Account {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            role: platform::db::parse_column(row, "role", str::parse)?,
            phone_number: row.try_get("phone_number")?,
            create_time: row.try_get("create_time")?,
        })
    }
}

/// Inserts an account unless its user name is taken. `None` if it was.
pub async fn insert(
    db: &Db,
    username: &Username,
    hash: &Hash,
    role: Role,
    phone_number: Option<&str>,
) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO accounts (username, password_hash, role, phone_number, create_time) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (username) DO NOTHING RETURNING {COLUMNS}"
    );
    let insert = sqlx::query_as::<_, Account>(&sql)
        .bind(username.as_str())
        .bind(hash.as_str())
        .bind(role.as_str())
        .bind(phone_number)
        .bind(platform::time::now());
    platform::db::write_returning(db, insert).await
}

/// The account named `username` and its password hash, for a sign-in.
pub async fn credentials(db: &Db, username: &str) -> Result<Option<(Account, Hash)>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS}, password_hash FROM accounts WHERE username = $1"))
        .bind(username)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| Ok((Account::from_row(&row)?, Hash::stored(row.try_get("password_hash")?)))).transpose()
}

pub async fn has_manager(db: &Db) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE role = $1")
        .bind(Role::Manager.as_str())
        .fetch_one(db.pool())
        .await?;
    Ok(n > 0)
}

pub async fn find(db: &Db, id: i64) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as::<_, Account>(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

pub async fn page(db: &Db, page: &PageRequest) -> Result<(Vec<Account>, i64), sqlx::Error> {
    platform::db::page_where(db.pool(), COLUMNS, "accounts", &[], page).await
}
