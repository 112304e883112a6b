//! Views built from events (CQRS) that come in any order and may come twice.
//!
//! The merge rule: a field is filled by the first event that knows it ([`fill`]), and a
//! status only moves to a higher-ranked stage ([`advance`]). For the same events both are
//! commutative and idempotent, so every arrival order gives the same row. The service
//! supplies the row, its stages and their ranks.
//!
//! The consumer ([`View`], which every view is a [`Handler`] through) merges a whole batch
//! in three statements whatever its size: guard the rows' keys (see
//! [`crate::db::guard_all`]: two instances merging events about one order take turns), load
//! the stored rows ([`Table`]), and save the ones that changed.

use std::collections::HashMap;

use futures::future::BoxFuture;

use crate::db::{guard_all, Conn};
use crate::event::{Event, Payload};
use crate::outbox::{read_in_span, Handler};

/// A view's row, and the merge rule that keeps it convergent. What one event tells about a
/// row is itself a row (the fields the event carries, the stage it tells as the status), so
/// [`Merge::merge`] is the whole rule: a row started by that fact, or the fact merged into
/// the stored row.
pub trait Merge: Clone + PartialEq + Send + Sync + 'static {
    /// The row's key (the order id).
    fn key(&self) -> i64;

    /// The row once `fact` is merged into `row` (`None`: not stored yet).
    fn merge(row: Option<Self>, fact: &Self) -> Self;
}

/// Where a view's rows are kept.
pub trait Table: Sized {
    /// The stored rows among `keys`.
    fn load<'a>(conn: &'a mut Conn, keys: &'a [i64]) -> BoxFuture<'a, Result<Vec<Self>, sqlx::Error>>;

    /// Inserts or replaces `rows`, of which `added` are new (for a view that keeps its
    /// row count rather than counting on every read).
    fn save<'a>(conn: &'a mut Conn, rows: &'a [Self], added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

/// A read model: rows keyed by an id (the order id), each the merge of the facts the
/// events tell about it.
pub trait View: Send + Sync + 'static {
    /// The events it is built from.
    type Payload: Payload;
    type Row: Merge + Table;

    /// What `payload` tells, as a row holding only that; `None` for an event the view ignores.
    fn fact(payload: &Self::Payload) -> Option<Self::Row>;

    /// The row `row` becomes once `payload` is applied; `None` when the view does not
    /// consume that event type. Pure: the consumer does exactly this, plus storage.
    fn apply(row: Option<Self::Row>, payload: &Self::Payload) -> Option<Self::Row> {
        Self::fact(payload).map(|fact| Merge::merge(row, &fact))
    }
}

impl<V: View> Handler<V::Payload> for V {
    fn handle<'a>(
        &'a self,
        conn: &'a mut Conn,
        event: &'a Event<V::Payload>,
    ) -> BoxFuture<'a, Result<Vec<Event<V::Payload>>, sqlx::Error>> {
        Box::pin(async move { merge_all::<V>(conn, &[event], None).await })
    }

    fn handle_all<'a>(
        &'a self,
        conn: &'a mut Conn,
        events: &'a [&'a Event<V::Payload>],
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Event<V::Payload>>, sqlx::Error>> {
        Box::pin(merge_all::<V>(conn, events, Some(service)))
    }
}

/// Merges `events` into their rows. With a `service`, each event gets its consumer span
/// (around reading it: the storage is shared).
async fn merge_all<V: View>(
    conn: &mut Conn,
    events: &[&Event<V::Payload>],
    service: Option<&str>,
) -> Result<Vec<Event<V::Payload>>, sqlx::Error> {
    let mut facts = Vec::with_capacity(events.len());
    for event in events {
        let fact = match service {
            Some(service) => read_in_span(service, event, || V::fact(&event.payload)).await,
            None => V::fact(&event.payload),
        };
        facts.extend(fact);
    }
    if facts.is_empty() {
        return Ok(vec![]);
    }
    let mut keys: Vec<i64> = facts.iter().map(Merge::key).collect();
    keys.sort_unstable();
    keys.dedup();
    guard_all(conn, &keys).await?;
    let stored: HashMap<i64, V::Row> =
        V::Row::load(conn, &keys).await?.into_iter().map(|row| (row.key(), row)).collect();
    let mut merged: HashMap<i64, V::Row> = HashMap::with_capacity(keys.len());
    for fact in &facts {
        let key = fact.key();
        let before = merged.remove(&key).or_else(|| stored.get(&key).cloned());
        merged.insert(key, Merge::merge(before, fact));
    }
    let mut changed: Vec<(i64, V::Row)> = merged.into_iter().filter(|(k, row)| stored.get(k) != Some(row)).collect();
    changed.sort_unstable_by_key(|(k, _)| *k);
    let added = changed.iter().filter(|(k, _)| !stored.contains_key(k)).count();
    let rows: Vec<V::Row> = changed.into_iter().map(|(_, row)| row).collect();
    if !rows.is_empty() {
        V::Row::save(conn, &rows, added).await?;
    }
    Ok(vec![])
}

/// First known value wins: for the same data that is order independent.
pub fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// The furthest stage seen wins: `status` becomes `stage` only if `stage` ranks higher.
pub fn advance<S: Copy>(status: &mut S, stage: S, rank: impl Fn(S) -> i64) {
    if rank(stage) > rank(*status) {
        *status = stage;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_keeps_the_first_known_value() {
        let mut slot = None;
        fill(&mut slot, &None);
        assert_eq!(slot, None);
        fill(&mut slot, &Some(1));
        fill(&mut slot, &Some(2));
        fill(&mut slot, &None);
        assert_eq!(slot, Some(1));
    }

    #[test]
    fn advance_only_moves_up() {
        let rank = |s: u8| i64::from(s);
        let mut status = 2;
        advance(&mut status, 1, rank);
        assert_eq!(status, 2);
        advance(&mut status, 3, rank);
        advance(&mut status, 3, rank);
        assert_eq!(status, 3);
    }
}
