//! Live pages: the events of the bus, fanned out to the pages open on this replica as
//! server-sent events, each page getting only what its person may see.
//!
//! One [`Hub`] per web process tails the bus ([`platform::EventBus::tail`]: every replica
//! sees every event, nothing acknowledged) and numbers what it receives. Each open page holds
//! one `GET /live` stream. For every event the page's [`Viewer`] decides what changes on
//! that page, as [`Patch`]es of server-rendered HTML (a row added, a cell replaced, a row
//! removed); the page's script applies them. A customer gets only their own orders' events
//! (known by phone from the events that carry it, and by order id for the delivery events
//! that do not); a barista the queue; a rider the deliveries; the delivery center and the
//! manager what their pages show.
//!
//! Catching up: each event goes out with the id `<replica>:<seq>`. A page that reconnects
//! sends it back (`Last-Event-ID`); if the same replica still holds what came after, it is
//! replayed, otherwise (another replica, or too long away) the page is told to re-render
//! its live part from the APIs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use contracts::{Event, Payload};
use futures::Stream;
use platform::auth::Role;
use platform::EventBus;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::chart::Chart;
use crate::pages::{self, Stage};
use crate::session::Session;
use crate::Web;

/// Events kept for pages that reconnect.
const RECENT: usize = 1024;
/// How long before a page's rendering an event it is sent anyway may have come ([`Hub::position`]).
const RENDER_MARGIN: Duration = Duration::from_secs(5);
/// Orders whose phone number and product the hub remembers (for the events that carry
/// only an order id).
const ORDERS_KEPT: usize = 100_000;

/// One event as the hub numbered it.
#[derive(Debug, Clone)]
pub struct Live {
    pub seq: u64,
    pub event: Arc<Event>,
    /// When this hub received it.
    pub at: Instant,
}

/// What the hub knows of an order from the events that carried it.
#[derive(Debug, Clone, Default)]
pub struct OrderFacts {
    pub phone: String,
    pub product: String,
    pub qty: i64,
    pub amt: i64,
}

pub struct Hub {
    /// This process, in event ids: another replica's ids mean nothing here.
    replica: String,
    sender: broadcast::Sender<Live>,
    state: Mutex<HubState>,
    pub chart: Mutex<Chart>,
}

#[derive(Default)]
struct HubState {
    next: u64,
    recent: VecDeque<Live>,
    orders: HashMap<i64, OrderFacts>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            replica: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            sender: broadcast::channel(RECENT).0,
            state: Mutex::new(HubState { next: 1, ..Default::default() }),
            chart: Mutex::new(Chart::default()),
        })
    }

    /// Tails `bus` until `cancel`, handing every event to the open pages.
    pub async fn run(self: Arc<Self>, bus: Arc<dyn EventBus>, cancel: CancellationToken) {
        let (tx, mut rx) = mpsc::channel(1024);
        let tail = tokio::spawn(bus.tail(tx, cancel.clone()));
        while let Some(envelope) = rx.recv().await {
            match envelope.decode::<Payload>() {
                Ok(event) => self.receive(event),
                Err(why) => tracing::debug!(event_id = %envelope.event_id, reason = why.reason(), "event not shown"),
            }
        }
        let _ = tail.await;
    }

    /// Numbers `event`, remembers what it says of its order, and sends it to every page.
    pub fn receive(&self, event: Event) {
        let live = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            remember(&mut state.orders, &event.payload);
            let live = Live { seq: state.next, event: Arc::new(event), at: Instant::now() };
            state.next += 1;
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back(live.clone());
            live
        };
        if let Payload::Ordered(o) = &live.event.payload {
            self.chart.lock().unwrap_or_else(|p| p.into_inner()).count(o.id, &o.create_time, o.amt);
        }
        // No page open is not an error.
        let _ = self.sender.send(live);
    }

    pub fn facts(&self, order_id: i64) -> Option<OrderFacts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).orders.get(&order_id).cloned()
    }

    /// Where a page rendered now starts its live stream: before the events received in the
    /// last [`RENDER_MARGIN`], which it is sent again. The APIs a page is rendered from (the
    /// views among them) may not show an event this hub already has, and a page must not
    /// miss it; sent twice, a patch changes nothing (a stage never moves back).
    pub fn position(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let settled = Instant::now().checked_sub(RENDER_MARGIN);
        let before_margin = state.recent.iter().rev().find(|l| settled.is_some_and(|t| l.at <= t)).map(|l| l.seq);
        let seq = before_margin.unwrap_or_else(|| state.recent.front().map_or(state.next, |l| l.seq) - 1);
        format!("{}:{}", self.replica, seq)
    }

    pub fn open_pages(&self) -> usize {
        self.sender.receiver_count()
    }

    /// From `last` (an event id a page saw): the events after it, or `None` if this hub
    /// cannot tell (another replica's id, or gone from what is kept). A subscription taken
    /// first, so nothing falls between the two.
    fn resume(&self, last: Option<&str>) -> (broadcast::Receiver<Live>, Option<Vec<Live>>) {
        let receiver = self.sender.subscribe();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = last
            .and_then(|id| id.split_once(':'))
            .filter(|(r, _)| *r == self.replica)
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let replay = after.and_then(|after| {
            let oldest = state.recent.front().map_or(state.next, |l| l.seq);
            (after + 1 >= oldest).then(|| state.recent.iter().filter(|l| l.seq > after).cloned().collect())
        });
        (receiver, replay)
    }
}

fn remember(orders: &mut HashMap<i64, OrderFacts>, payload: &Payload) {
    if orders.len() >= ORDERS_KEPT {
        orders.clear();
    }
    match payload {
        Payload::Ordered(o) => {
            orders.insert(
                o.id,
                OrderFacts { phone: o.phone_number.clone(), product: o.product_name.clone(), qty: o.qty, amt: o.amt },
            );
        }
        Payload::OrderCanceled(o) => {
            orders.entry(o.id).or_insert_with(|| OrderFacts {
                phone: o.phone_number.clone(),
                product: o.product_name.clone(),
                qty: o.qty,
                amt: o.amt,
            });
        }
        Payload::OrderInfoReceived(d) => {
            let facts = orders.entry(d.order_id).or_default();
            facts.phone.clone_from(&d.phone_number);
            facts.product.clone_from(&d.product_name);
            facts.qty = d.qty;
        }
        Payload::PaymentApproved(p) | Payload::PaymentCanceled(p) => {
            orders.entry(p.order_id).or_default().phone.clone_from(&p.phone_number);
        }
        Payload::Receipted(d) | Payload::Made(d) | Payload::DrinkCanceled(d) => {
            orders.entry(d.order_id).or_default().phone.clone_from(&d.phone_number);
        }
        Payload::DeliveryStarted(_) | Payload::DeliveryCanceled(_) | Payload::Delivered(_) => {}
    }
}

/// One change to an open page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Patch {
    /// Replace the element `id` with `html`, or if there is none, add `html` to the list
    /// `into` (at its start or end).
    Upsert {
        id: String,
        html: String,
        into: String,
        first: bool,
    },
    /// Replace the element `id`, if the page has it.
    Replace {
        id: String,
        html: String,
    },
    Remove {
        id: String,
    },
    /// Re-render the live part from the APIs: what was missed cannot be replayed.
    Reload,
}

/// The page a stream feeds, as `GET /live?page=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    Customer,
    Barista,
    Rider,
    Center,
    Manager,
}

impl PageKind {
    /// Who may follow this page's stream: as who may open the page.
    pub fn roles(self) -> &'static [Role] {
        match self {
            PageKind::Customer => &[Role::Customer],
            PageKind::Barista => pages::BARISTA_PAGE,
            PageKind::Rider | PageKind::Center => pages::RIDER_PAGE,
            PageKind::Manager => pages::MANAGER_PAGE,
        }
    }
}

/// One open page and what it has been shown.
pub struct Viewer {
    pub kind: PageKind,
    pub session: Session,
    /// A customer's orders by id, with the furthest stage shown, so a late event never
    /// moves a status back.
    pub stages: HashMap<i64, Stage>,
    /// A customer's order ids known from the API when the stream opened.
    pub own: HashSet<i64>,
    /// The delivery center page's filter and whether it shows the newest orders.
    pub center: Option<(Option<String>, bool)>,
}

impl Viewer {
    /// What `live` changes on this page.
    pub fn patches(&mut self, hub: &Hub, live: &Live) -> Vec<Patch> {
        let p = &live.event.payload;
        let order_id = platform::Payload::order_id(p);
        match self.kind {
            PageKind::Customer => {
                let phone = self.session.phone().unwrap_or_default();
                let mine = self.own.contains(&order_id)
                    || event_phone(p).is_some_and(|ph| ph == phone)
                    || hub.facts(order_id).is_some_and(|f| f.phone == phone);
                if !mine {
                    return vec![];
                }
                self.own.insert(order_id);
                let Some(stage) = Stage::of_event(p) else { return vec![] };
                if let Payload::Ordered(o) = p {
                    self.stages.insert(order_id, stage);
                    let row = pages::order_row(&self.session, o.id, &o.product_name, o.qty, o.amt, stage);
                    return vec![Patch::Upsert {
                        id: format!("order-{}", o.id),
                        html: row,
                        into: "orders".into(),
                        first: true,
                    }];
                }
                let shown = self.stages.get(&order_id).copied();
                if shown.is_some_and(|s| s.rank() >= stage.rank()) {
                    return vec![];
                }
                self.stages.insert(order_id, stage);
                vec![
                    Patch::Replace {
                        id: format!("order-{order_id}-status"),
                        html: pages::order_status_cell(order_id, stage),
                    },
                    Patch::Replace {
                        id: format!("order-{order_id}-action"),
                        html: pages::order_action_cell(&self.session, order_id, stage),
                    },
                ]
            }
            PageKind::Barista => match p {
                Payload::OrderInfoReceived(d) => vec![Patch::Upsert {
                    id: format!("drink-{}", d.id),
                    html: pages::drink_row(&self.session, d.id, d.order_id, &d.product_name, d.qty, d.status.as_str()),
                    into: "queue".into(),
                    first: false,
                }],
                Payload::Receipted(d) => {
                    let facts = hub.facts(d.order_id).unwrap_or_default();
                    vec![Patch::Upsert {
                        id: format!("drink-{}", d.id),
                        html: pages::drink_row(
                            &self.session,
                            d.id,
                            d.order_id,
                            &facts.product,
                            facts.qty,
                            d.status.as_str(),
                        ),
                        into: "queue".into(),
                        first: false,
                    }]
                }
                Payload::Made(d) | Payload::DrinkCanceled(d) => vec![Patch::Remove { id: format!("drink-{}", d.id) }],
                _ => vec![],
            },
            PageKind::Rider => match p {
                Payload::DeliveryStarted(d) => {
                    let facts = hub.facts(d.order_id).unwrap_or_default();
                    vec![Patch::Upsert {
                        id: format!("delivery-order-{}", d.order_id),
                        html: pages::delivery_row(
                            &self.session,
                            d.id,
                            d.order_id,
                            &facts.product,
                            facts.qty,
                            &facts.phone,
                        ),
                        into: "deliveries".into(),
                        first: false,
                    }]
                }
                // Rows are by order: a cancellation's id is the ledger entry's, not the delivery's.
                Payload::Delivered(d) | Payload::DeliveryCanceled(d) => {
                    vec![Patch::Remove { id: format!("delivery-order-{}", d.order_id) }]
                }
                _ => vec![],
            },
            PageKind::Center => {
                let Some(status) = center_status(p) else { return vec![] };
                let (filter, newest) = self.center.clone().unwrap_or((None, true));
                match p {
                    Payload::Ordered(o) if newest && filter.as_deref().is_none_or(|f| f == "Ordered") => {
                        vec![Patch::Upsert {
                            id: format!("center-{}", o.id),
                            html: pages::center_row(o.id, None, &o.product_name, o.qty, o.amt, &o.phone_number, status),
                            into: "center".into(),
                            first: true,
                        }]
                    }
                    _ => vec![Patch::Replace {
                        id: format!("center-{order_id}-status"),
                        html: pages::center_status_cell(order_id, status),
                    }],
                }
            }
            PageKind::Manager => match p {
                Payload::Ordered(_) => {
                    let svg = hub.chart.lock().unwrap_or_else(|p| p.into_inner()).svg(time::OffsetDateTime::now_utc());
                    vec![Patch::Replace { id: "chart".into(), html: svg }]
                }
                _ => vec![],
            },
        }
    }
}

/// The phone number an event carries, if any.
fn event_phone(p: &Payload) -> Option<&str> {
    match p {
        Payload::Ordered(o) => Some(&o.phone_number),
        Payload::OrderCanceled(o) => Some(&o.phone_number),
        Payload::PaymentApproved(x) | Payload::PaymentCanceled(x) => Some(&x.phone_number),
        Payload::OrderInfoReceived(d) => Some(&d.phone_number),
        Payload::Receipted(d) | Payload::Made(d) | Payload::DrinkCanceled(d) => Some(&d.phone_number),
        Payload::DeliveryStarted(_) | Payload::DeliveryCanceled(_) | Payload::Delivered(_) => None,
    }
}

/// The delivery page's status after `p` (SPEC §4 deliverycenter), for the events it follows.
fn center_status(p: &Payload) -> Option<&'static str> {
    Some(match p {
        Payload::Ordered(_) => "Ordered",
        Payload::DeliveryStarted(_) => "Delivery Started",
        Payload::DeliveryCanceled(_) => "Delivery Cancelled",
        Payload::Delivered(_) => "Delivered",
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    page: PageKind,
    /// The hub position the page was rendered at.
    since: Option<String>,
    /// The delivery center's filter and page number.
    status: Option<String>,
    #[serde(default)]
    n: u32,
}

/// `GET /live?page=...`: the page's stream of patches.
pub async fn stream(
    State(web): State<Arc<Web>>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    if !q.page.roles().contains(&session.role()) {
        return pages::forbidden(&session, q.page.roles());
    }
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string).or(q.since.clone());
    let (receiver, replay) = web.hub.resume(last.as_deref());
    let mut viewer =
        Viewer { kind: q.page, session: session.clone(), stages: HashMap::new(), own: HashSet::new(), center: None };
    match q.page {
        PageKind::Customer => {
            // The customer's orders as the API knows them now: the delivery events name only
            // the order.
            if let Some(phone) = session.phone() {
                if let Ok(rows) = crate::pages::my_orders(&web, &session, phone).await {
                    // Only which orders are theirs: the page shows the stages it was rendered
                    // with, which may be older than the API's now, so every later event is sent
                    // (the page keeps the furthest stage it has shown).
                    viewer.own.extend(rows.iter().map(|row| row.order_id));
                }
            }
        }
        PageKind::Center => viewer.center = Some((q.status.clone().filter(|s| !s.is_empty()), q.n == 0)),
        _ => {}
    }
    let health_every = (q.page == PageKind::Manager).then_some(Duration::from_secs(2));
    let events = patches(web, viewer, receiver, replay, last.is_some(), health_every);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn patches(
    web: Arc<Web>,
    viewer: Viewer,
    receiver: broadcast::Receiver<Live>,
    replay: Option<Vec<Live>>,
    resumed: bool,
    health_every: Option<Duration>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct St {
        web: Arc<Web>,
        viewer: Viewer,
        receiver: broadcast::Receiver<Live>,
        backlog: VecDeque<Live>,
        last_seq: u64,
        reload: bool,
        health: Option<tokio::time::Interval>,
    }
    let reload = resumed && replay.is_none();
    let backlog: VecDeque<Live> = replay.unwrap_or_default().into();
    let health = health_every.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        i
    });
    let st = St { web, viewer, receiver, backlog, last_seq: 0, reload, health };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if std::mem::take(&mut st.reload) {
                return Some((Ok(message(&st.web.hub, None, &[Patch::Reload])), st));
            }
            let live = match st.backlog.pop_front() {
                Some(live) => live,
                None => {
                    let next = tokio::select! {
                        r = st.receiver.recv() => Some(r),
                        _ = tick(&mut st.health) => None,
                    };
                    match next {
                        Some(Ok(live)) => live,
                        Some(Err(broadcast::error::RecvError::Lagged(n))) => {
                            tracing::debug!(missed = n, "a page fell behind; it re-renders");
                            st.reload = true;
                            continue;
                        }
                        Some(Err(broadcast::error::RecvError::Closed)) => return None,
                        None => {
                            let html = pages::manager_status(&st.web).await;
                            let patch = Patch::Replace { id: "status".into(), html };
                            return Some((Ok(message(&st.web.hub, None, &[patch])), st));
                        }
                    }
                }
            };
            // Replayed events may also arrive live: each once.
            if live.seq <= st.last_seq {
                continue;
            }
            st.last_seq = live.seq;
            let out = st.viewer.patches(&st.web.hub, &live);
            if !out.is_empty() {
                return Some((Ok(message(&st.web.hub, Some(live.seq), &out)), st));
            }
        }
    })
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => futures::future::pending().await,
    }
}

fn message(hub: &Hub, seq: Option<u64>, patches: &[Patch]) -> SseEvent {
    let data = serde_json::to_string(patches).unwrap_or_else(|_| "[]".into());
    let event = SseEvent::default().data(data);
    match seq {
        Some(seq) => event.id(format!("{}:{seq}", hub.replica)),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::events::examples;

    fn session(role: Role, phone: Option<&str>) -> Session {
        Session {
            token: "t".into(),
            csrf: "c".into(),
            claims: Arc::new(platform::auth::Claims {
                sub: phone.unwrap_or("staff").into(),
                role,
                phone: phone.map(Into::into),
                iss: "cafe".into(),
                iat: 0,
                exp: u64::MAX,
            }),
        }
    }

    fn viewer(kind: PageKind, s: Session) -> Viewer {
        Viewer { kind, session: s, stages: HashMap::new(), own: HashSet::new(), center: None }
    }

    fn feed(hub: &Hub, v: &mut Viewer) -> Vec<Vec<Patch>> {
        let mut out = Vec::new();
        let mut rx = hub.sender.subscribe();
        for p in examples() {
            hub.receive(Event::new("test", p));
            let live = rx.try_recv().expect("sent");
            out.push(v.patches(hub, &live));
        }
        out
    }

    #[test]
    fn a_customer_sees_their_own_orders_events_and_nobody_elses() {
        let hub = Hub::new();
        let mut mine = viewer(PageKind::Customer, session(Role::Customer, Some("01012345678")));
        let seen = feed(&hub, &mut mine);
        assert!(matches!(&seen[0][..], [Patch::Upsert { .. }]), "Ordered adds the row: {:?}", seen[0]);
        assert!(seen.iter().skip(1).any(|p| !p.is_empty()), "later stages move it");
        let hub = Hub::new();
        let mut other = viewer(PageKind::Customer, session(Role::Customer, Some("01099999999")));
        assert!(feed(&hub, &mut other).iter().all(Vec::is_empty), "another customer's page gets nothing");
    }

    #[test]
    fn a_late_event_never_moves_a_customers_status_back() {
        let hub = Hub::new();
        let mut v = viewer(PageKind::Customer, session(Role::Customer, Some("01012345678")));
        v.stages.insert(8, Stage::Delivered);
        v.own.insert(8);
        let mut rx = hub.sender.subscribe();
        let made = examples().into_iter().find(|p| matches!(p, Payload::Made(_))).unwrap();
        hub.receive(Event::new("test", made));
        assert!(v.patches(&hub, &rx.try_recv().unwrap()).is_empty());
    }

    #[test]
    fn the_barista_queue_gains_a_paid_order_and_loses_a_made_one() {
        let hub = Hub::new();
        let mut v = viewer(PageKind::Barista, session(Role::Barista, None));
        let seen = feed(&hub, &mut v);
        let kinds: Vec<_> = examples().iter().map(|p| p.kind()).collect();
        let at = |t| kinds.iter().position(|k| *k == t).unwrap();
        use contracts::EventType as T;
        assert!(matches!(&seen[at(T::OrderInfoReceived)][..], [Patch::Upsert { .. }]));
        assert!(matches!(&seen[at(T::Made)][..], [Patch::Remove { .. }]));
        assert!(seen[at(T::Ordered)].is_empty(), "an order not yet a drink is not in the queue");
    }

    #[test]
    fn a_page_from_another_replica_or_too_far_back_is_told_to_reload() {
        let hub = Hub::new();
        hub.receive(Event::new("test", examples().remove(0)));
        let here = hub.position();
        assert_eq!(
            hub.resume(Some(&here)).1.map(|r| r.len()),
            Some(1),
            "a page rendered now gets the last seconds' events"
        );
        assert!(hub.resume(Some("someone-else:1")).1.is_none());
        let before = format!("{}:0", hub.replica);
        assert_eq!(hub.resume(Some(&before)).1.map(|r| r.len()), Some(1));
    }
}
