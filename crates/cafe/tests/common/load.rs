//! Load while a test breaks the cafe: clients placing orders, each trying again after an
//! error until it is told 201, some cancelling what they ordered, while a barista makes every
//! queued drink. The crash test (`kill -9` of `cafe up`), the chaos test (service processes
//! and NATS), the faults tests (a full disk, PostgreSQL stopped, the link to NATS cut) and the
//! soak run it, then check that no order a client was told was created is lost; the faults
//! tests also check every answer the clients got ([`Answer`]) and when the first 201 came
//! after the fault was mended.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::task::{JoinHandle, JoinSet};

use super::{eventually, id, make_queued_drinks, order_body, Reply, Rng, TestApp};

/// How the load runs.
pub struct Load {
    /// Clients placing orders at once.
    pub clients: u64,
    /// Orders to place in all: the clients stop once this many were created.
    pub orders: u64,
    /// When the clients and the barista stop anyway, whatever the cafe does.
    pub give_up: Duration,
    /// A client's wait after an error (the cafe down or restarting, a fast 503).
    pub retry: Duration,
    /// The barista's pause between two rounds of the queue.
    pub barista_pause: Duration,
    /// A client's pause after a 201, up to this many ms (a customer's; it spreads the run
    /// over some seconds, so breaks land among steady traffic). 0: none.
    pub think_ms: u64,
    /// A client cancels one in this many of its orders, after its think time (so the barista
    /// may have made the drink and delivery started), asking again until the answer is
    /// final. 0: none.
    pub cancel_one_in: u64,
}

/// How the cafe answered one attempt to place an order, for a test that checks what the
/// clients were told while it broke the cafe, and when.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the attempt was sent.
    pub sent: Instant,
    /// How long the answer took.
    pub took: Duration,
    /// The status, or `None` when there was no answer (refused connection, timeout).
    pub status: Option<u16>,
    /// A problem+json body with a `Retry-After` header: how a 503 must look.
    pub retry_later: bool,
    /// The body, or why there was none.
    pub text: String,
}

impl Answer {
    /// When the answer came.
    pub fn came(&self) -> Instant {
        self.sent + self.took
    }
}

/// How long a client keeps asking to cancel an order through errors and 503s (a process
/// down or restarting, a breaker open) before it reports the cancellation undecided.
const CANCEL_WITHIN: Duration = Duration::from_secs(120);

/// A [`Load`] under way.
pub struct Loading {
    orders: u64,
    placed: Arc<AtomicU64>,
    attempts: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    /// Set by [`Loading::stop`]: the clients stop after their attempt under way.
    stopped: Arc<AtomicBool>,
    /// Every order a client was told was created (201): none may be lost.
    created: Arc<Mutex<Vec<i64>>>,
    /// Every attempt's answer, in the order they came.
    answers: Arc<Mutex<Vec<Answer>>>,
    cancels: Arc<Mutex<Cancels>>,
    /// When each order was created or cancelled, in the order it happened.
    actions: Arc<Mutex<Vec<Instant>>>,
    clients: JoinSet<()>,
    barista: JoinHandle<u64>,
}

/// A [`Load`] done: what the clients placed, and what the barista made while it ran.
#[derive(Debug)]
pub struct Placed {
    pub placed: u64,
    pub attempts: u64,
    pub made: u64,
    pub created: Vec<i64>,
    /// Every attempt's answer, in the order they came.
    pub answers: Vec<Answer>,
    /// Orders cancelled for good: answered 204, or 404 after an attempt whose answer was
    /// lost (a 404 is final: the order is gone).
    pub cancelled: Vec<i64>,
    /// Orders a client asked to cancel without a final answer within [`CANCEL_WITHIN`], and
    /// the last answer it got.
    pub undecided: Vec<(i64, String)>,
}

#[derive(Default)]
struct Cancels {
    cancelled: Vec<i64>,
    undecided: Vec<(i64, String)>,
}

impl Load {
    /// Starts the clients and the barista on `app`. With a think time, each client's pauses
    /// come from its own generator, seeded from `rng`.
    pub fn start(self, app: &Arc<TestApp>, rng: &mut Rng) -> Loading {
        let placed = Arc::new(AtomicU64::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let created = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let cancels = Arc::new(Mutex::new(Cancels::default()));
        let actions = Arc::new(Mutex::new(Vec::new()));
        let give_up = Instant::now() + self.give_up;

        let mut clients = JoinSet::new();
        for c in 0..self.clients {
            let (app, placed, attempts, created, answers, stopped) =
                (app.clone(), placed.clone(), attempts.clone(), created.clone(), answers.clone(), stopped.clone());
            let (cancels, actions) = (cancels.clone(), actions.clone());
            let mut think = (self.think_ms > 0).then(|| Rng::quiet(rng.next()));
            let mut choose = (self.cancel_one_in > 0).then(|| Rng::quiet(rng.next()));
            let (orders, retry, think_ms, cancel_one_in) = (self.orders, self.retry, self.think_ms, self.cancel_one_in);
            clients.spawn(async move {
                let mut n = 0u64;
                while placed.load(Ordering::SeqCst) < orders
                    && Instant::now() < give_up
                    && !stopped.load(Ordering::SeqCst)
                {
                    n += 1;
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let body = order_body(
                        c * 10_000 + n,
                        "Espresso",
                        (n % 5 + 1) as i64,
                        ((c * 997 + n * 31) % 20_000) as i64,
                    );
                    let sent = Instant::now();
                    let reply = app.try_request(Method::POST, "/orders", Some(&body)).await;
                    answers.lock().unwrap().push(Answer::of(sent, &reply));
                    match reply {
                        Ok(r) if r.status == StatusCode::CREATED => {
                            let order_id = id(&r.json);
                            created.lock().unwrap().push(order_id);
                            actions.lock().unwrap().push(Instant::now());
                            placed.fetch_add(1, Ordering::SeqCst);
                            if let Some(think) = &mut think {
                                tokio::time::sleep(Duration::from_millis(think.between(0, think_ms))).await;
                            }
                            if choose.as_mut().is_some_and(|choose| choose.between(1, cancel_one_in) == 1) {
                                let decided = cancel_until_decided(&app, order_id, retry).await;
                                let mut cancels = cancels.lock().unwrap();
                                match decided {
                                    Ok(()) => {
                                        cancels.cancelled.push(order_id);
                                        actions.lock().unwrap().push(Instant::now());
                                    }
                                    Err(last) => cancels.undecided.push((order_id, last)),
                                }
                            }
                        }
                        // The cafe or a process of it down or restarting, a fast 503: expected.
                        _ => tokio::time::sleep(retry).await,
                    }
                }
            });
        }

        // Errors are ignored: drink may be down.
        let barista = {
            let (app, done, pause) = (app.clone(), done.clone(), self.barista_pause);
            tokio::spawn(async move {
                let mut made = 0u64;
                while !done.load(Ordering::SeqCst) && Instant::now() < give_up {
                    made += make_queued_drinks(&app).await;
                    tokio::time::sleep(pause).await;
                }
                made
            })
        };
        Loading {
            orders: self.orders,
            placed,
            attempts,
            done,
            stopped,
            created,
            answers,
            cancels,
            actions,
            clients,
            barista,
        }
    }
}

/// `DELETE /orders/{id}` until the answer is final: `Ok` once cancelled (204, or 404 after an
/// earlier attempt's answer was lost), `Err` with the last answer otherwise.
async fn cancel_until_decided(app: &TestApp, order_id: i64, retry: Duration) -> Result<(), String> {
    let until = Instant::now() + CANCEL_WITHIN;
    let path = format!("/orders/{order_id}");
    loop {
        let last = match app.try_request(Method::DELETE, &path, None).await {
            Ok(r) if r.status == StatusCode::NO_CONTENT || r.status == StatusCode::NOT_FOUND => return Ok(()),
            // Delivered: final, and not a cancellation. Nothing in a test delivers while
            // its clients cancel, so this is reported, not retried.
            Ok(r) if r.status == StatusCode::CONFLICT => return Err(format!("409 {}", r.text)),
            Ok(r) => format!("{} {}", r.status, r.text),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= until {
            return Err(last);
        }
        tokio::time::sleep(retry).await;
    }
}

impl Loading {
    /// Orders created so far.
    pub fn placed(&self) -> u64 {
        self.placed.load(Ordering::SeqCst)
    }

    /// Every answer so far, in the order they came.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// The orders created (answered 201) so far.
    pub fn created(&self) -> Vec<i64> {
        self.created.lock().unwrap().clone()
    }

    /// The first answer that came after `since` with `status`, if one has.
    pub fn first_since(&self, since: Instant, status: u16) -> Option<Answer> {
        self.answers.lock().unwrap().iter().find(|a| a.came() > since && a.status == Some(status)).cloned()
    }

    /// Waits, at most `within`, until `at` orders are created; panics otherwise, saying what
    /// was to come `before` them.
    pub async fn until_placed(&self, at: u64, within: Duration, before: impl std::fmt::Display) {
        eventually(within, async || (self.placed() >= at).then_some(()))
            .await
            .unwrap_or_else(|t| panic!("{at} orders placed before {before}: {t:?}"));
    }

    /// Stops the clients after their attempts under way and the barista, however many orders
    /// were placed: for a test whose load runs until it has broken and mended the cafe.
    pub async fn stop(self) -> Placed {
        self.stopped.store(true, Ordering::SeqCst);
        self.finish_placing(0).await
    }

    /// Orders created or cancelled since `since`.
    pub fn actions_since(&self, since: Instant) -> u64 {
        let actions = self.actions.lock().unwrap();
        (actions.len() - actions.partition_point(|at| *at < since)) as u64
    }

    /// Waits for the clients, then stops the barista; panics if the clients could not place
    /// all the orders in time.
    pub async fn finish(self) -> Placed {
        let orders = self.orders;
        self.finish_placing(orders).await
    }

    /// Waits for the clients, which stop at the load's `give_up` at the latest (a load that
    /// runs for a time rather than for a number of orders), then stops the barista.
    pub async fn run_out(self) -> Placed {
        self.finish_placing(0).await
    }

    /// Waits for the clients, then stops the barista; panics unless `orders` were placed.
    async fn finish_placing(mut self, orders: u64) -> Placed {
        while let Some(client) = self.clients.join_next().await {
            client.expect("a client of the load");
        }
        self.done.store(true, Ordering::SeqCst);
        let made = (&mut self.barista).await.unwrap();
        let Cancels { cancelled, undecided } = std::mem::take(&mut *self.cancels.lock().unwrap());
        let placed = Placed {
            placed: self.placed(),
            attempts: self.attempts.load(Ordering::SeqCst),
            made,
            created: std::mem::take(&mut *self.created.lock().unwrap()),
            answers: std::mem::take(&mut *self.answers.lock().unwrap()),
            cancelled,
            undecided,
        };
        assert!(placed.placed >= orders, "the clients could not place {orders} orders in time: {placed}");
        placed
    }
}

impl Answer {
    fn of(sent: Instant, reply: &Result<Reply, reqwest::Error>) -> Answer {
        let took = sent.elapsed();
        match reply {
            Ok(r) => Answer {
                sent,
                took,
                status: Some(r.status.as_u16()),
                retry_later: r.content_type().starts_with("application/problem+json")
                    && r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|secs| secs > 0)),
                text: r.text.clone(),
            },
            Err(e) => Answer { sent, took, status: None, retry_later: false, text: format!("no answer: {e}") },
        }
    }
}

impl Placed {
    /// The orders answered 201, and not cancelled, that are not among `orders` (a
    /// collection's items).
    pub fn lost(&self, orders: &[Value]) -> Vec<i64> {
        let listed: std::collections::HashSet<i64> =
            orders.iter().map(id).chain(self.cancelled.iter().copied()).collect();
        self.created.iter().copied().filter(|o| !listed.contains(o)).collect()
    }
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Placed { placed, attempts, made, cancelled, .. } = self;
        write!(f, "{placed} orders placed in {attempts} attempts")?;
        if !cancelled.is_empty() {
            write!(f, ", {} of them cancelled", cancelled.len())?;
        }
        write!(f, "; baristas made {made} drinks while it ran")
    }
}
