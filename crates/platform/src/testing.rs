//! The in-process harness for a service's own tests: the service's real SQLite database and
//! an embedded bus in a fresh directory, its router driven without a socket (`oneshot`).
//!
//! [`TestService::start`] builds the [`Ctx`] the way `cafe` does, minus the outbox relay: what
//! the service raises stays in its outbox, to be read with [`TestService::raised`]. The
//! consumers the service's own `start` registers listen on the embedded bus, so events can
//! arrive through the bus ([`TestService::publish`], then [`TestService::eventually`]) or be
//! handed to a handler directly, as one batch, as the bus would ([`TestService::consume`]).
//! [`permutations`] serves the pure tests of a merge: every arrival order of the same events.
//!
//! [`eventually`] is the one way any test of the workspace waits for something: it polls
//! with a deadline, never sleeps for a fixed time, so a fast machine is fast and a slow one
//! only waits longer.
//!
//! [`signed`]: requests as a chosen person or service sends them, with real tokens.

pub mod signed;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::bus::EventBus;
use crate::ctx::Ctx;
use crate::db::{Db, Migration};
use crate::embedded::EmbeddedBus;
use crate::event::{Envelope, Event, Payload};
use crate::json::JsonBody;
use crate::outbox::{Handler, Outbox};

/// Declares `$name`, the test module's own handle on a [`TestService`]: a type of the
/// module, so the module can give it the calls its tests make, which derefs to the service.
///
/// ```ignore
/// platform::test_app!(TestApp);
///
/// impl TestApp {
///     async fn place(&self) -> Answer { self.request(Method::POST, "/orders", Some(body)).await }
/// }
/// ```
#[macro_export]
macro_rules! test_app {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        $vis struct $name($crate::testing::TestService);

        impl ::std::ops::Deref for $name {
            type Target = $crate::testing::TestService;

            fn deref(&self) -> &$crate::testing::TestService {
                &self.0
            }
        }
    };
}

/// One service under test. Dropping it stops its consumers and removes its directory.
pub struct TestService {
    pub ctx: Ctx,
    pub(crate) bus: Arc<EmbeddedBus>,
    router: Router,
    host: String,
    dir: PathBuf,
}

/// What the router answered; `body` is `null` when it is empty or not JSON.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `field` of each item a HAL page embeds under `collection`, as numbers: the ids
    /// (or order ids) a page shows. None when the answer is no page.
    pub fn listed(&self, collection: &str, field: &str) -> Vec<i64> {
        self.body["_embedded"][collection]
            .as_array()
            .map(|items| items.iter().map(|item| item[field].as_i64().expect("a numeric field")).collect())
            .unwrap_or_default()
    }
}

impl TestService {
    /// Migrates a fresh database for `service` and builds its routes with `router` (the
    /// service's `start`, which also registers its consumers). Requests carry `Host: host`,
    /// so the links the service writes are the ones a client calling `host` would see.
    pub async fn start(
        service: &'static str,
        host: &str,
        migrations: &[Migration],
        router: impl FnOnce(Ctx) -> Router,
    ) -> TestService {
        // Tests of one binary run in parallel: each service gets its own directory.
        let dir = fresh_dir(service);
        let db = Db::sqlite_file(&dir, service).await.expect("a test database");
        let bus = Arc::new(EmbeddedBus::open(&dir).await.expect("a test bus"));
        let ctx = Ctx::without_relay(
            service,
            service.into(),
            db,
            migrations,
            bus.clone(),
            Outbox::default(),
            CancellationToken::new(),
            TaskTracker::new(),
        )
        .await
        .expect("migrations");
        let router = router(ctx.clone());
        TestService { ctx, bus, router, host: host.into(), dir }
    }

    /// Sends one request; a `body` goes as `application/json`, no body sends no content type.
    pub async fn request(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let req = Request::builder().method(method).uri(uri).header(header::HOST, &self.host);
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("a valid request");
        let res = self.router.clone().oneshot(req).await.expect("the router answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("a readable body");
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.request(Method::GET, uri, None).await
    }

    /// GETs each uri of `rows` and checks the status it is answered: a table of reads and
    /// of the requests refused.
    pub async fn check_statuses(&self, rows: &[(&str, StatusCode)]) {
        for (uri, status) in rows {
            let answer = self.get(uri).await;
            assert_eq!(answer.status, *status, "GET {uri}: {}", answer.body);
        }
    }

    /// Hands `events` to `handler` as one batch, as the bus would: inbox, effect, outbox, one commit.
    pub async fn consume<P: Payload>(&self, handler: &dyn Handler<P>, events: &[Event<P>]) {
        self.ctx.handle(handler, events).await.expect("batch handled");
    }

    /// Hands each of `events` to `handler` as a batch of its own, all at once from as many
    /// tasks: on PostgreSQL they run in truly concurrent transactions.
    pub async fn consume_each_at_once<P: Payload>(
        self: &Arc<Self>,
        handler: &'static dyn Handler<P>,
        events: Vec<Event<P>>,
    ) {
        let tasks: Vec<_> = events
            .into_iter()
            .map(|e| {
                let service = self.clone();
                tokio::spawn(async move { service.consume(handler, &[e]).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("a batch handled");
        }
    }

    /// Publishes `events` on the bus the service's consumers listen to.
    pub async fn publish<P: Payload>(&self, events: &[Event<P>]) {
        let batch: Vec<_> = events.iter().map(|e| e.envelope().expect("an event serialises")).collect();
        self.bus.publish(&batch).await.expect("published");
    }

    /// The events the service raised so far, in order. No relay runs, so all of them are
    /// still in the outbox.
    pub async fn raised<P: Payload>(&self) -> Vec<Event<P>> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT event_id, event_type, body, headers FROM outbox ORDER BY seq")
                .fetch_all(self.ctx.db().pool())
                .await
                .expect("the outbox");
        rows.into_iter()
            .map(|(event_id, event_type, body, headers)| {
                let headers = Envelope::headers_from_json(&headers);
                Envelope { event_id, event_type, body, headers }.decode().expect("a readable event")
            })
            .collect()
    }

    /// Polls `uri` until `done` holds for its answer, for at most five seconds; then returns
    /// the last answer, for the test to say what is wrong with it.
    pub async fn eventually(&self, uri: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        let polled = eventually(Duration::from_secs(5), async || {
            let a = self.get(uri).await;
            if done(&a) {
                Ok(a)
            } else {
                Err(a)
            }
        })
        .await;
        polled.unwrap_or_else(|timed_out| timed_out.last)
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.ctx.cancel().cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Does a server answer at `addr` (`host:port`)? When none does, a test that needs it is
/// skipped (`false`), except under CI, where a skip would report a test that never ran: there
/// it fails.
pub fn server_at(addr: &str, what: &str) -> bool {
    let socket: std::net::SocketAddr = addr.parse().expect("an address");
    if std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "this test needs {what} at {addr}; under CI it fails rather than skip");
    eprintln!("skipping: {what} not running ({addr})");
    false
}

/// A directory of its own for one test, emptied first.
pub fn fresh_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("cafe-{what}-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// How often [`eventually`] asks again.
pub const POLL: Duration = Duration::from_millis(20);

/// Asks `check` every [`POLL`] until it says done, for at most `within`; then gives up with
/// what it said last. `check` gives an `Option` (`None`: not yet) or a `Result` (`Err`: not
/// yet, and why). A test usually `.expect`s the outcome, which names what it waited for and
/// the last reason it was not there:
///
/// ```ignore
/// let row = eventually(Duration::from_secs(5), async || {
///     let a = app.get("/mypages/4").await;
///     (a.body["status"] == "Made").then_some(a)
/// })
/// .await
/// .expect("my page row 4 to be Made");
/// ```
pub async fn eventually<C: Check>(
    within: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Result<C::Done, TimedOut<C::NotYet>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await.outcome() {
            Ok(done) => return Ok(done),
            Err(last) if tokio::time::Instant::now() >= deadline => return Err(TimedOut { after: within, last }),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// What one look of [`eventually`] found: done, with a value, or not yet.
pub trait Check {
    type Done;
    type NotYet;
    fn outcome(self) -> Result<Self::Done, Self::NotYet>;
}

impl<T> Check for Option<T> {
    type Done = T;
    type NotYet = NotYet;
    fn outcome(self) -> Result<T, NotYet> {
        self.ok_or(NotYet)
    }
}

impl<T, E> Check for Result<T, E> {
    type Done = T;
    type NotYet = E;
    fn outcome(self) -> Result<T, E> {
        self
    }
}

/// A look that found nothing yet and had no reason to give (a `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotYet;

/// [`eventually`] gave up: after how long, and what the last look said.
pub struct TimedOut<E> {
    pub after: Duration,
    pub last: E,
}

impl<E: std::fmt::Debug> std::fmt::Debug for TimedOut<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out after {:?}; last: {:?}", self.after, self.last)
    }
}

/// An event as it travels, written by hand: the envelope's fields and then `fields`, which
/// need not be what its type promises.
pub fn envelope_by_hand(source: &str, event_type: &str, fields: Value) -> Envelope {
    let event_id = format!("{event_type}-by-hand");
    let mut body = serde_json::json!({"eventId": event_id, "timestamp": "2026-01-01T00:00:00.000Z", "source": source,
                                      "eventType": event_type});
    body.as_object_mut().expect("an object").extend(fields.as_object().expect("fields as an object").clone());
    Envelope { event_id, event_type: event_type.into(), body: body.to_string(), headers: Default::default() }
}

/// `fields`, an object, as a handler receives it in a request body.
pub fn json_body(fields: Value) -> JsonBody {
    JsonBody(fields.as_object().expect("a JSON object").clone())
}

/// Every ordering of `items` (Heap's algorithm), repeated items included: `n!` orderings.
/// For showing that a merge gives the same result whatever the arrival order.
pub fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn go<T: Clone>(k: usize, a: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k - 1 {
            go(k - 1, a, out);
            if k.is_multiple_of(2) {
                a.swap(i, k - 1)
            } else {
                a.swap(0, k - 1)
            }
        }
        go(k - 1, a, out);
    }
    let mut out = Vec::new();
    go(items.len(), &mut items.to_vec(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{eventually, permutations, NotYet};

    #[tokio::test]
    async fn eventually_gives_the_first_value_a_check_finds() {
        let mut looks = 0;
        let found = eventually(Duration::from_secs(5), async || {
            looks += 1;
            (looks == 3).then_some(looks)
        })
        .await;
        assert_eq!(found.ok(), Some(3));
    }

    #[tokio::test]
    async fn eventually_gives_up_at_the_deadline_with_the_last_reason() {
        let started = tokio::time::Instant::now();
        let mut looks = 0;
        let timed_out = eventually(Duration::from_millis(100), async || -> Result<(), String> {
            looks += 1;
            Err(format!("look {looks}"))
        })
        .await
        .expect_err("never done");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(timed_out.last, format!("look {looks}"));
        assert_eq!(format!("{timed_out:?}"), format!("timed out after 100ms; last: \"look {looks}\""));
        let nothing = eventually(Duration::ZERO, async || None::<()>).await.expect_err("never done");
        assert_eq!(nothing.last, NotYet);
    }

    #[test]
    fn permutations_are_every_ordering_once() {
        let mut all = permutations(&[1, 2, 3]);
        assert_eq!(all.len(), 6);
        all.sort();
        all.dedup();
        assert_eq!(all, [[1, 2, 3], [1, 3, 2], [2, 1, 3], [2, 3, 1], [3, 1, 2], [3, 2, 1]]);
        assert_eq!(permutations(&[7, 7]), [[7, 7], [7, 7]]);
        assert_eq!(permutations::<i32>(&[]), [Vec::<i32>::new()]);
    }
}

/// The one event of the platform's own tests: `Happened`, numbered `n` (its "order").
#[cfg(test)]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "eventType")]
pub(crate) enum Counted {
    Happened { n: i64 },
}

#[cfg(test)]
impl Payload for Counted {
    fn event_type(&self) -> &'static str {
        "Happened"
    }

    fn order_id(&self) -> i64 {
        let Counted::Happened { n } = self;
        *n
    }

    fn knows(event_type: &str) -> bool {
        event_type == "Happened"
    }
}
