//! Drinks: the barista's state machine. A drink is `Received` when its order is placed, a
//! barista accepts it (`Receipted`) and makes it (`Made`); a cancelled order cancels it from
//! any state, and nothing leaves `Canceled`. Pure: no I/O.

use platform::json::{checked, Fields};
use platform::{JsonBody, Problem};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrinkStatus {
    Received,
    Receipted,
    Made,
    Canceled,
}

impl DrinkStatus {
    pub const ALL: [DrinkStatus; 4] =
        [DrinkStatus::Received, DrinkStatus::Receipted, DrinkStatus::Made, DrinkStatus::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            DrinkStatus::Received => "Received",
            DrinkStatus::Receipted => "Receipted",
            DrinkStatus::Made => "Made",
            DrinkStatus::Canceled => "Canceled",
        }
    }

    pub fn parse(s: &str) -> Option<DrinkStatus> {
        DrinkStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// A barista's change from `self` to `to`. Repeating the current status is a no-op.
    pub fn change_to(self, to: DrinkStatus) -> Result<Change, IllegalTransition> {
        use DrinkStatus::*;
        match (self, to) {
            (from, to) if from == to => Ok(Change::Unchanged),
            (Received, Receipted) | (Received, Made) | (Receipted, Made) => Ok(Change::To(to)),
            (from, to) => Err(IllegalTransition { from, to }),
        }
    }
}

impl std::fmt::Display for DrinkStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} drink cannot become {to}")]
pub struct IllegalTransition {
    pub from: DrinkStatus,
    pub to: DrinkStatus,
}

/// A validated `PATCH /drinks/{id}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub status: DrinkStatus,
}

impl StatusChange {
    pub fn parse(body: &JsonBody) -> Result<StatusChange, Problem> {
        let mut f = Fields::new(body);
        let status = f.string("status", 1, 40).and_then(|raw| match DrinkStatus::parse(&raw) {
            Some(s) => Some(s),
            None => {
                f.error("status", "must be Receipted or Made");
                None
            }
        });
        f.finish()?;
        Ok(StatusChange { status: checked(status)? })
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        let status: String = row.try_get("status")?;
        let status = DrinkStatus::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "status".into(),
            source: format!("unknown drink status '{status}'").into(),
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
    use serde_json::json;

    #[test]
    fn every_pair_of_statuses_follows_the_transition_table() {
        let table = [
            (Received, Received, Ok(Change::Unchanged)),
            (Received, Receipted, Ok(Change::To(Receipted))),
            (Received, Made, Ok(Change::To(Made))),
            (Received, Canceled, Err(())),
            (Receipted, Received, Err(())),
            (Receipted, Receipted, Ok(Change::Unchanged)),
            (Receipted, Made, Ok(Change::To(Made))),
            (Receipted, Canceled, Err(())),
            (Made, Received, Err(())),
            (Made, Receipted, Err(())),
            (Made, Made, Ok(Change::Unchanged)),
            (Made, Canceled, Err(())),
            (Canceled, Received, Err(())),
            (Canceled, Receipted, Err(())),
            (Canceled, Made, Err(())),
            (Canceled, Canceled, Ok(Change::Unchanged)),
        ];
        assert_eq!(table.len(), DrinkStatus::ALL.len() * DrinkStatus::ALL.len());
        for (from, to, expected) in table {
            let got = from.change_to(to);
            match expected {
                Ok(change) => assert_eq!(got, Ok(change), "{from} -> {to}"),
                Err(()) => assert_eq!(got, Err(IllegalTransition { from, to }), "{from} -> {to}"),
            }
        }
    }

    #[test]
    fn an_illegal_transition_names_both_ends() {
        let e = Made.change_to(Receipted).unwrap_err();
        assert_eq!(e.to_string(), "a Made drink cannot become Receipted");
    }

    #[test]
    fn statuses_serialise_by_their_names() {
        for s in DrinkStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(DrinkStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DrinkStatus::parse("made"), None);
    }

    #[test]
    fn a_status_change_needs_a_known_status() {
        let body = |v: serde_json::Value| JsonBody(v.as_object().unwrap().clone());
        assert_eq!(StatusChange::parse(&body(json!({"status": "Made"}))).unwrap().status, Made);
        for bad in [json!({"status": "Brewing"}), json!({"status": 3}), json!({})] {
            let p = StatusChange::parse(&body(bad)).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "status"));
        }
    }
}
