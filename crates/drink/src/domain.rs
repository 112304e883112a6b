//! Drinks: the barista's state machine. A drink is `Received` when its order is placed, a
//! barista accepts it (`Receipted`) and makes it (`Made`); a cancelled order cancels it from
//! any state, and nothing leaves `Canceled`. Pure: no I/O, and no HTTP: requests are
//! validated into [`StatusChange`] at the edge (`api`), which also turns [`Error`] into answers.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::Error;

/// The drink's status is the one its events carry, spelled once in `contracts`.
pub use contracts::DrinkStatus;

/// A barista's change from `from` to `to`. Repeating the current status is a no-op.
pub fn change_to(from: DrinkStatus, to: DrinkStatus) -> Result<Change, Error> {
    use DrinkStatus::*;
    match (from, to) {
        (from, to) if from == to => Ok(Change::Unchanged),
        (Received, Receipted) | (Received, Made) | (Receipted, Made) => Ok(Change::To(to)),
        (from, to) => Err(Error::IllegalTransition { from, to }),
    }
}

/// What a legal change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Already there: answer as is, raise nothing.
    Unchanged,
    /// Move to this status and raise its event.
    To(DrinkStatus),
}

/// A validated `PATCH /drinks/{id}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub status: DrinkStatus,
}

/// The order a drink is made for, as `Ordered` and `OrderCanceled` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub order_id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
}

/// A drink as clients and events see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drink {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub status: DrinkStatus,
    pub create_time: String,
}

/// By hand rather than derived: the derive's `try_from` for the status needs sqlx's
/// `macros` feature, which the workspace does not enable.
impl<'r> sqlx::FromRow<'r, AnyRow> for Drink {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let status = platform::db::parse_column(row, "status", |s| {
            DrinkStatus::parse(s).ok_or_else(|| format!("unknown drink status '{s}'"))
        })?;
        Ok(Drink {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            phone_number: row.try_get("phone_number")?,
            product_name: row.try_get("product_name")?,
            qty: row.try_get("qty")?,
            status,
            create_time: row.try_get("create_time")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DrinkStatus::*;
    use super::*;

    #[test]
    fn every_pair_of_statuses_follows_the_transition_table() {
        let table = [
            (Received, Received, Some(Change::Unchanged)),
            (Received, Receipted, Some(Change::To(Receipted))),
            (Received, Made, Some(Change::To(Made))),
            (Received, Canceled, None),
            (Receipted, Received, None),
            (Receipted, Receipted, Some(Change::Unchanged)),
            (Receipted, Made, Some(Change::To(Made))),
            (Receipted, Canceled, None),
            (Made, Received, None),
            (Made, Receipted, None),
            (Made, Made, Some(Change::Unchanged)),
            (Made, Canceled, None),
            (Canceled, Received, None),
            (Canceled, Receipted, None),
            (Canceled, Made, None),
            (Canceled, Canceled, Some(Change::Unchanged)),
        ];
        assert_eq!(table.len(), DrinkStatus::ALL.len() * DrinkStatus::ALL.len());
        for (from, to, expected) in table {
            match (change_to(from, to), expected) {
                (Ok(got), Some(change)) => assert_eq!(got, change, "{from} -> {to}"),
                (Err(Error::IllegalTransition { from: f, to: t }), None) => {
                    assert_eq!((f, t), (from, to), "{from} -> {to}")
                }
                (got, expected) => panic!("{from} -> {to}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn an_illegal_transition_names_both_ends() {
        let e = change_to(Made, Receipted).unwrap_err();
        assert_eq!(e.to_string(), "a Made drink cannot become Receipted");
    }
}
