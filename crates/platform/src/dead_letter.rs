//! Dead letters: the events a consumer could not handle, parked with their error so that the
//! rest go on, and nothing is ever acknowledged without being handled or parked.
//!
//! A consumer ([`crate::Ctx::consume`]) hands a batch to [`Guarded::deliver`]:
//!
//! - an event that cannot be read (unknown type, a payload that does not parse) is parked at
//!   once: no redelivery makes it readable;
//! - the readable ones are handled as one batch, one transaction. If that fails because the
//!   database is unavailable, full or gave up waiting ([`crate::db::is_transient`]), the whole batch is
//!   redelivered later, and nothing is parked: the event is not at fault;
//! - any other failure isolates the events: each is handled on its own, up to
//!   [`Policy::attempts`] times with backoff, and one that still fails is parked with its last
//!   error. The others commit and the batch is acknowledged.
//!
//! Parked events live in the service's own database (`dead_letters`), are counted by the
//! `cafe_dead_letters` gauge, and are listed and retried by a manager through
//! `GET /admin/dead-letters` and `POST /admin/dead-letters/{eventId}/retry` ([`router`]): a
//! retry hands the event to the same handler, through the inbox (so it can never be applied
//! twice), and unparks it only once handled.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::auth::{allow, Role};
use crate::backoff::Backoff;
use crate::db::{is_transient, Db};
use crate::event::{Envelope, Event, Payload};
use crate::metrics::{EventCounter, Metrics};
use crate::outbox::{handle_batch, Handler, Outbox};
use crate::problem::Problem;
use crate::shutdown::sleep_or_cancel;

/// How often an event whose handling fails is tried before it is parked.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tries in all, counting the first.
    pub attempts: u32,
    /// The pause after the first failure; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Policy {
    /// Five tries over about 1.5 s.
    fn default() -> Policy {
        Policy { attempts: 5, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

/// One parked event, as the admin endpoints show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Parked {
    pub event_id: String,
    pub event_type: String,
    /// The event as it arrived: its JSON if it is JSON, else the text.
    pub event: serde_json::Value,
    pub error: String,
    /// Tries so far (0: unreadable, never tried).
    pub attempts: i64,
    pub parked_at: String,
}

/// Parks `envelope` with `error` after `attempts` tries; a second parking of the same event
/// adds its tries and keeps the latest error.
pub async fn park(db: &Db, envelope: &Envelope, error: &str, attempts: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (event_id, event_type, body, headers, error, attempts, parked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (event_id) DO UPDATE SET error = excluded.error,
           attempts = dead_letters.attempts + excluded.attempts, parked_at = excluded.parked_at",
    )
    .bind(&envelope.event_id)
    .bind(&envelope.event_type)
    .bind(&envelope.body)
    .bind(envelope.headers_json())
    .bind(error)
    .bind(i64::from(attempts))
    .bind(crate::time::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Every parked event, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Parked>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT event_id, event_type, body, error, attempts, parked_at FROM dead_letters ORDER BY parked_at, event_id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let body: String = r.try_get(2)?;
            Ok(Parked {
                event_id: r.try_get(0)?,
                event_type: r.try_get(1)?,
                event: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                error: r.try_get(3)?,
                attempts: r.try_get(4)?,
                parked_at: r.try_get(5)?,
            })
        })
        .collect()
}

async fn find(db: &Db, event_id: &str) -> Result<Option<Envelope>, sqlx::Error> {
    let row = sqlx::query("SELECT event_id, event_type, body, headers FROM dead_letters WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Envelope {
            event_id: r.try_get(0)?,
            event_type: r.try_get(1)?,
            body: r.try_get(2)?,
            headers: Envelope::headers_from_json(r.try_get(3)?),
        })
    })
    .transpose()
}

async fn unpark(db: &Db, event_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dead_letters WHERE event_id = $1").bind(event_id).execute(db.pool()).await?;
    Ok(())
}

/// A consumer's handling with its failures contained: what [`crate::Ctx::consume`] gives the
/// bus, and what a retry of a parked event goes through.
pub(crate) struct Guarded<P: Payload> {
    pub db: Db,
    pub outbox: Outbox,
    pub handler: Arc<dyn Handler<P>>,
    pub policy: Policy,
    pub cancel: CancellationToken,
}

impl<P: Payload> Guarded<P> {
    fn metrics(&self) -> &Metrics {
        &self.outbox.metrics
    }

    /// Handles `batch`, parking what cannot be handled. `Err` (redeliver the batch) only when
    /// the database is not there to handle or park anything, or the service is stopping.
    pub async fn deliver(&self, batch: Vec<Envelope>) -> Result<(), String> {
        let mut readable = Vec::with_capacity(batch.len());
        for envelope in batch {
            match envelope.decode::<P>() {
                Ok(event) => readable.push((envelope, event)),
                Err(why) => {
                    tracing::error!(event_id = %envelope.event_id, event_type = %envelope.event_type, error = %why, "event cannot be read; parked");
                    self.metrics().count(EventCounter::Rejected, label(&envelope, &why), 1);
                    park(&self.db, &envelope, &why.to_string(), 0).await.map_err(|e| e.to_string())?;
                }
            }
        }
        let events: Vec<Event<P>> = readable.iter().map(|(_, e)| e.clone()).collect();
        match self.handle(&events).await {
            Ok(()) => return Ok(()),
            Err(e) if is_transient(&e) => return Err(e.to_string()),
            Err(e) if events.len() > 1 => {
                tracing::warn!(error = %e, events = events.len(), "batch failed; handling its events one at a time")
            }
            Err(_) => {}
        }
        for (envelope, event) in &readable {
            self.one_by_one(envelope, event).await?;
        }
        Ok(())
    }

    /// `event` on its own, tried up to the policy's attempts, then parked.
    async fn one_by_one(&self, envelope: &Envelope, event: &Event<P>) -> Result<(), String> {
        let mut backoff = Backoff::new(self.policy.first_backoff, self.policy.max_backoff);
        let mut attempt = 1;
        loop {
            match self.handle(std::slice::from_ref(event)).await {
                Ok(()) => return Ok(()),
                Err(e) if is_transient(&e) => return Err(e.to_string()),
                Err(e) if attempt >= self.policy.attempts => {
                    tracing::error!(event_id = %event.event_id, event_type = event.event_type(), attempts = attempt, error = %e, "event keeps failing; parked");
                    return park(&self.db, envelope, &e.to_string(), attempt).await.map_err(|e| e.to_string());
                }
                Err(e) => {
                    tracing::warn!(event_id = %event.event_id, event_type = event.event_type(), attempt, error = %e, "event failed; trying again");
                    attempt += 1;
                    if sleep_or_cancel(backoff.next_delay(), &self.cancel).await {
                        return Err("stopping".into());
                    }
                }
            }
        }
    }

    async fn handle(&self, events: &[Event<P>]) -> Result<(), sqlx::Error> {
        handle_batch(&self.db, &self.outbox, self.handler.as_ref(), events).await?;
        for e in events {
            self.metrics().count(EventCounter::Handled, e.event_type(), 1);
        }
        Ok(())
    }

    /// One try at a parked event, as it is: unparked once handled (or found handled already).
    pub async fn retry(&self, event_id: &str) -> Result<(), Retry> {
        let envelope = find(&self.db, event_id).await?.ok_or(Retry::NotParked)?;
        let event = envelope.decode::<P>().map_err(|why| Retry::Failed(why.to_string()))?;
        self.handle(std::slice::from_ref(&event)).await.map_err(|e| match is_transient(&e) {
            true => Retry::Storage(e),
            false => Retry::Failed(e.to_string()),
        })?;
        unpark(&self.db, event_id).await?;
        tracing::info!(event_id, event_type = event.event_type(), "parked event handled on retry");
        Ok(())
    }
}

/// The rejected-events label: an unknown type is not a label, the bus may carry anything.
fn label<'a>(envelope: &'a Envelope, why: &crate::event::Undecodable) -> &'a str {
    match why {
        crate::event::Undecodable::UnknownType(_) => "unknown",
        crate::event::Undecodable::Unreadable { .. } => envelope.event_type.as_str(),
    }
}

/// Why a retry did not unpark the event.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error("no parked event with that id")]
    NotParked,
    #[error("still failing: {0}")]
    Failed(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<Retry> for Problem {
    fn from(r: Retry) -> Problem {
        match r {
            Retry::NotParked => Problem::not_found("no parked event with that id"),
            Retry::Failed(why) => Problem::conflict(format!("the event is still parked: {why}")),
            Retry::Storage(e) => Problem::from(e),
        }
    }
}

/// A service's dead letters as the admin endpoints reach them: its database, and the retry of
/// its consumer (none for a service that consumes nothing).
#[derive(Clone)]
pub struct DeadLetters {
    pub(crate) db: Db,
    /// Set when the service starts consuming.
    pub(crate) retry: Arc<OnceLock<RetryFn>>,
}

pub(crate) type RetryFn = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), Retry>> + Send + Sync>;

/// `GET /admin/dead-letters` (the parked events, oldest first) and
/// `POST /admin/dead-letters/{eventId}/retry` (204 once handled; 404 if not parked; 409 with
/// the error if it still fails). A manager's.
pub fn router(dead_letters: DeadLetters) -> Router {
    const MANAGER: &[Role] = &[Role::Manager];
    Router::new()
        .route("/admin/dead-letters", get(listed).route_layer(allow(MANAGER)))
        .route("/admin/dead-letters/{event_id}/retry", post(retried).route_layer(allow(MANAGER)))
        .with_state(dead_letters)
}

async fn listed(State(d): State<DeadLetters>) -> Result<Json<serde_json::Value>, Problem> {
    let parked = list(&d.db).await?;
    Ok(Json(serde_json::json!({ "count": parked.len(), "deadLetters": parked })))
}

async fn retried(
    State(d): State<DeadLetters>,
    Path(event_id): Path<String>,
) -> Result<axum::http::StatusCode, Problem> {
    let retry = d.retry.get().ok_or_else(|| Problem::not_found("this service consumes no events"))?;
    retry(event_id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::{list, Parked, Policy, Retry};
    use crate::bus::EventBus;
    use crate::db::Conn;
    use crate::event::{Envelope, Event};
    use crate::outbox::Handler;
    use crate::testing::{eventually, Counted, TestService};
    use crate::Migration;

    const SEEN: &[Migration] = &[Migration { version: 10, sql: "CREATE TABLE seen (n BIGINT PRIMARY KEY)" }];

    /// Records each `n` it handles; refuses `n = 13` while `poisoned`, as a handler with a bug
    /// (or an event it cannot accept yet) would, with an error that is not the database's.
    struct Records {
        poisoned: Arc<AtomicBool>,
    }

    impl Handler<Counted> for Records {
        fn handle<'a>(
            &'a self,
            conn: &'a mut Conn,
            event: &'a Event<Counted>,
        ) -> BoxFuture<'a, Result<Vec<Event<Counted>>, sqlx::Error>> {
            Box::pin(async move {
                let n = event.order_id();
                if n == 13 && self.poisoned.load(Ordering::SeqCst) {
                    return Err(sqlx::Error::Protocol("13 is refused".into()));
                }
                sqlx::query("INSERT INTO seen (n) VALUES ($1)").bind(n).execute(&mut *conn).await?;
                Ok(vec![])
            })
        }
    }

    /// A service consuming `Happened` through [`Records`], parking after three quick tries.
    async fn consumer() -> (TestService, Arc<AtomicBool>) {
        let poisoned = Arc::new(AtomicBool::new(true));
        let records = Records { poisoned: poisoned.clone() };
        let app = TestService::start("records", "localhost", SEEN, move |ctx| {
            let policy =
                Policy { attempts: 3, first_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(5) };
            ctx.with_dead_letter_policy(policy).consume(vec!["Happened"], records);
            axum::Router::new()
        })
        .await;
        (app, poisoned)
    }

    fn happened(n: i64) -> Event<Counted> {
        Event::new("test", Counted::Happened { n })
    }

    async fn seen(app: &TestService) -> HashSet<i64> {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM seen").fetch_all(app.ctx.db().pool()).await.unwrap();
        rows.into_iter().collect()
    }

    async fn parked_when(app: &TestService, count: usize) -> Vec<Parked> {
        eventually(Duration::from_secs(10), async || {
            let parked = list(app.ctx.db()).await.map_err(|e| e.to_string())?;
            if parked.len() == count {
                Ok(parked)
            } else {
                Err(format!("{} parked", parked.len()))
            }
        })
        .await
        .expect("the parked events")
    }

    async fn retry(app: &TestService, event_id: &str) -> Result<(), Retry> {
        let retry = app.ctx.dead_letters().retry.get().cloned().expect("a consumer");
        retry(event_id.to_string()).await
    }

    #[tokio::test]
    async fn an_event_that_keeps_failing_is_parked_and_the_rest_of_its_batch_goes_on() {
        let (app, poisoned) = consumer().await;
        let events = [happened(1), happened(13), happened(2)];
        app.publish(&events).await; // one batch

        let parked = parked_when(&app, 1).await;
        assert_eq!(parked[0].event_id, events[1].event_id);
        assert_eq!(parked[0].attempts, 3, "tried as often as the policy says, then parked");
        assert!(parked[0].error.contains("13 is refused"), "{:?}", parked[0]);
        assert_eq!(parked[0].event["n"], 13, "the event is kept as it arrived");
        eventually(Duration::from_secs(10), async || (seen(&app).await == HashSet::from([1, 2])).then_some(()))
            .await
            .expect("the other events of the batch handled");

        // The batch was acknowledged: what comes next is handled too.
        app.publish(&[happened(3)]).await;
        eventually(Duration::from_secs(10), async || seen(&app).await.contains(&3).then_some(()))
            .await
            .expect("the consumer goes on");

        // A retry while the cause remains keeps it parked, with the error.
        let still = retry(&app, &events[1].event_id).await.expect_err("still failing");
        assert!(matches!(&still, Retry::Failed(why) if why.contains("13 is refused")), "{still:?}");
        assert_eq!(parked_when(&app, 1).await[0].event_id, events[1].event_id);

        // Once it can be handled, a retry handles it once and unparks it.
        poisoned.store(false, Ordering::SeqCst);
        retry(&app, &events[1].event_id).await.expect("handled on retry");
        assert_eq!(seen(&app).await, HashSet::from([1, 2, 3, 13]));
        assert!(parked_when(&app, 0).await.is_empty());
        assert!(matches!(retry(&app, &events[1].event_id).await, Err(Retry::NotParked)));
    }

    #[tokio::test]
    async fn an_unreadable_event_is_parked_at_once_and_the_others_are_handled() {
        let (app, _) = consumer().await;
        let good = happened(7).envelope().unwrap();
        let bad = Envelope {
            event_id: "not-json".into(),
            event_type: "Happened".into(),
            body: "{this is not json".into(),
            headers: Default::default(),
        };
        app.bus.publish(&[bad.clone(), good]).await.unwrap();

        let parked = parked_when(&app, 1).await;
        assert_eq!(
            (parked[0].event_id.as_str(), parked[0].attempts),
            ("not-json", 0),
            "never tried: no try can read it"
        );
        assert_eq!(parked[0].event, serde_json::Value::String(bad.body), "kept as it arrived, though not JSON");
        eventually(Duration::from_secs(10), async || seen(&app).await.contains(&7).then_some(()))
            .await
            .expect("the readable event handled");
        assert!(matches!(retry(&app, "not-json").await, Err(Retry::Failed(_))), "still unreadable");
    }

    #[test]
    fn a_database_that_is_away_is_no_fault_of_the_event() {
        use crate::db::is_transient;
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::PoolClosed));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::other("connection reset"))));
        assert!(!is_transient(&sqlx::Error::Protocol("refused".into())));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }
}
