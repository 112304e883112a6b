//! Prometheus metrics of one service, Prometheus text (0.0.4) at `GET /actuator/prometheus`.
//!
//! Kept by `prometheus-client`, the official Rust client: each service has its own registry
//! with a constant `service` label (`cafe up` runs every service in one process, so a
//! process-global recorder, as the `metrics` facade has, would not do), and gauges that are
//! read when scraped are a collector built at each scrape.
//!
//! - `http_server_requests_seconds{service,method,route,status}`: histogram of requests;
//! - `http_server_requests_in_flight{service}`: requests being served now;
//! - `cafe_events_published_total{service,type}`, `cafe_events_handled_total{service,type}`,
//!   `cafe_events_rejected_total{service,type}` (`type` is `unknown` for an unknown type);
//! - gauges read at scrape time, registered with [`Metrics::gauge`]: `cafe_outbox_backlog`
//!   (events committed, not yet published), `cafe_consumer_lag` (events on the bus this
//!   service has not handled yet), `cafe_circuit_breaker_state{dependency}` (0 closed, 1
//!   open, 2 half-open).
//!
//! No label value comes from the client: a series lives as long as the process, so a value
//! a client could invent would let it grow the set without end. The method is one of the
//! standard ones or `other`, the route is the matched route's template.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The methods that get a series of their own; any other is counted as `other`.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// The route of a request that matched none (a fixed value: never the raw path).
const UNMATCHED: &str = "unmatched";

/// Labels of a gauge row beyond `service`, e.g. `[("dependency", "payment")]`.
pub type Labels = Vec<(&'static str, String)>;

/// One series of a gauge read at scrape time: its labels and its value.
pub type Row = (Labels, i64);

/// A gauge read at scrape time: its rows. A reader that cannot read returns no rows, and the
/// series are left out of that scrape rather than given a value nobody measured.
pub type Reader = Arc<dyn Fn() -> BoxFuture<'static, Vec<Row>> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// `type="<event type>"`. Event types are this system's own names, not a client's.
type EventLabels = [(&'static str, String); 1];

type Events = Family<EventLabels, Counter>;

struct Inner {
    service: String,
    registry: Registry,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    published: Events,
    handled: Events,
    rejected: Events,
    // A std Mutex: held to push or copy the list, never across an await.
    gauges: Mutex<Vec<(&'static str, &'static str, Reader)>>,
}

/// The per-type event counters: `cafe_events_published_total`, `cafe_events_handled_total`
/// and `cafe_events_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCounter {
    Published,
    Handled,
    Rejected,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new("")
    }
}

impl Metrics {
    pub fn new(service: &str) -> Metrics {
        let mut registry = Registry::with_labels(service_label(service));
        let http: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register_with_unit(
            "http_server_requests",
            "HTTP requests by route, method and status",
            Unit::Seconds,
            Declared(http.clone()),
        );
        let in_flight = Gauge::default();
        registry.register("http_server_requests_in_flight", "Requests being served now", in_flight.clone());
        let (published, handled, rejected) = (Events::default(), Events::default(), Events::default());
        registry.register("cafe_events_published", "Events published to the bus, by type", Declared(published.clone()));
        registry.register("cafe_events_handled", "Events handled by this service, by type", Declared(handled.clone()));
        registry.register(
            "cafe_events_rejected",
            "Events this service could not read (unknown type or unreadable payload), by type",
            Declared(rejected.clone()),
        );
        let inner = Inner {
            service: service.to_string(),
            registry,
            http,
            in_flight,
            published,
            handled,
            rejected,
            gauges: Mutex::default(),
        };
        Metrics { inner: Arc::new(inner) }
    }

    pub fn service(&self) -> String {
        self.inner.service.clone()
    }

    /// Adds `n` to the counter of `events` of `event_type`.
    pub fn count(&self, events: EventCounter, event_type: &str, n: u64) {
        let events = match events {
            EventCounter::Published => &self.inner.published,
            EventCounter::Handled => &self.inner.handled,
            EventCounter::Rejected => &self.inner.rejected,
        };
        events.get_or_create(&[("type", event_type.to_string())]).inc_by(n);
    }

    /// Registers a gauge read at scrape time. Readers of the same `name` share its help and
    /// type lines; each gives its own rows.
    pub fn gauge(&self, name: &'static str, help: &'static str, read: Reader) {
        lock(&self.inner.gauges).push((name, help, read));
    }

    fn observe(&self, method: &Method, route: &str, status: u16, secs: f64) {
        let labels = HttpLabels { method: method_label(method), route: route.to_string(), status };
        self.inner.http.get_or_create(&labels).observe(secs);
    }

    /// The text exposition: the registry's metrics, then the gauges, read now.
    pub async fn render(&self) -> String {
        let gauges = lock(&self.inner.gauges).clone();
        let rows = futures::future::join_all(gauges.iter().map(|(_, _, read)| read())).await;
        let mut read = ReadAtScrape::default();
        for ((name, help, _), rows) in gauges.into_iter().zip(rows) {
            read.add(name, help, rows);
        }
        let mut scraped = Registry::with_labels(service_label(&self.inner.service));
        scraped.register_collector(Box::new(read));
        let mut out = String::new();
        for registry in [&self.inner.registry, &scraped] {
            // Writing to a String cannot fail; an encoder could only if a metric were malformed.
            if prometheus_text::encode(&mut out, registry).is_err() {
                tracing::error!(service = %self.inner.service, "metrics could not be encoded");
            }
        }
        out
    }
}

/// A family whose help and type lines are written before its first series too (the client
/// leaves an empty family out): a scrape shows what a service measures from its start.
#[derive(Debug)]
struct Declared<M>(M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

fn service_label(service: &str) -> impl Iterator<Item = (Cow<'static, str>, Cow<'static, str>)> {
    std::iter::once((Cow::Borrowed("service"), Cow::Owned(service.to_string())))
}

fn method_label(method: &Method) -> &'static str {
    METHODS.iter().find(|m| **m == method.as_str()).copied().unwrap_or("other")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gauges of one scrape, with their rows as read, one entry per name.
#[derive(Debug, Default)]
struct ReadAtScrape(Vec<GaugeRows>);

#[derive(Debug)]
struct GaugeRows {
    name: &'static str,
    help: &'static str,
    rows: Vec<Row>,
}

impl ReadAtScrape {
    fn add(&mut self, name: &'static str, help: &'static str, rows: Vec<Row>) {
        match self.0.iter_mut().find(|g| g.name == name) {
            Some(gauge) => gauge.rows.extend(rows),
            None => self.0.push(GaugeRows { name, help, rows }),
        }
    }
}

impl Collector for ReadAtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for GaugeRows { name, help, rows } in &self.0 {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, value) in rows {
                ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// Middleware: one histogram observation per request, by matched route (not raw path, so
/// ids do not explode the label set) and by standard method.
pub async fn record(State(m): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let in_flight = InFlight::enter(&m);
    let res = next.run(req).await;
    drop(in_flight);
    let route = route.as_deref().unwrap_or(UNMATCHED);
    m.observe(&method, route, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// Counts a request as in flight until dropped, however the request ends.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(m: &'a Metrics) -> Self {
        m.inner.in_flight.inc();
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inner.in_flight.dec();
    }
}

pub async fn scrape(State(m): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], m.render().await).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::health::Health;

    #[tokio::test]
    async fn renders_histograms_counters_and_gauges() {
        let m = Metrics::new("order");
        m.observe(&Method::POST, "/orders", 201, 0.003);
        m.count(EventCounter::Published, "Ordered", 2);
        m.gauge("cafe_outbox_backlog", "Events not yet published.", Arc::new(|| Box::pin(async { vec![(vec![], 3)] })));
        for dependency in ["payment", "delivery"] {
            m.gauge(
                "cafe_circuit_breaker_state",
                "0 closed, 1 open, 2 half-open.",
                Arc::new(move || Box::pin(async move { vec![(vec![("dependency", dependency.to_string())], 1)] })),
            );
        }
        let text = m.render().await;
        for line in [
            "# TYPE http_server_requests_seconds histogram",
            r#"http_server_requests_seconds_bucket{service="order",method="POST",route="/orders",status="201",le="0.005"} 1"#,
            r#"http_server_requests_seconds_bucket{service="order",method="POST",route="/orders",status="201",le="0.001"} 0"#,
            r#"http_server_requests_seconds_bucket{service="order",method="POST",route="/orders",status="201",le="5"} 1"#,
            r#"http_server_requests_seconds_count{service="order",method="POST",route="/orders",status="201"} 1"#,
            r#"http_server_requests_in_flight{service="order"} 0"#,
            "# TYPE cafe_events_published_total counter",
            r#"cafe_events_published_total{service="order",type="Ordered"} 2"#,
            "# TYPE cafe_events_handled_total counter",
            "# TYPE cafe_events_rejected_total counter",
            "# HELP cafe_outbox_backlog Events not yet published.",
            "# TYPE cafe_outbox_backlog gauge",
            r#"cafe_outbox_backlog{service="order"} 3"#,
            r#"cafe_circuit_breaker_state{service="order",dependency="payment"} 1"#,
            r#"cafe_circuit_breaker_state{service="order",dependency="delivery"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE cafe_circuit_breaker_state gauge").count(), 1, "{text}");
    }

    #[tokio::test]
    async fn a_gauge_that_cannot_be_read_is_left_out() {
        let m = Metrics::new("order");
        m.gauge("cafe_outbox_backlog", "Events not yet published.", Arc::new(|| Box::pin(async { vec![] })));
        let text = m.render().await;
        assert!(text.contains("# TYPE http_server_requests_seconds histogram"), "{text}");
        assert!(text.contains("# TYPE cafe_outbox_backlog gauge"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("cafe_outbox_backlog")), "{text}");
    }

    #[tokio::test]
    async fn the_outbox_backlog_is_left_out_while_the_database_fails() {
        let dir = std::env::temp_dir().join(format!("cafe-metrics-test-{}", std::process::id()));
        let db = crate::db::Db::sqlite_file(&dir, "order").await.unwrap();
        let bus = Arc::new(crate::embedded::EmbeddedBus::open(&dir).await.unwrap());
        let (cancel, tracker) = (tokio_util::sync::CancellationToken::new(), tokio_util::task::TaskTracker::new());
        let ctx = crate::Ctx::start("order", "order".into(), db.clone(), &[], bus, cancel.clone(), tracker.clone())
            .await
            .unwrap();
        let text = ctx.metrics().render().await;
        assert!(text.lines().any(|l| l == r#"cafe_outbox_backlog{service="order"} 0"#), "{text}");
        db.pool().close().await;
        let text = ctx.metrics().render().await;
        assert!(text.contains("# TYPE cafe_outbox_backlog gauge"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("cafe_outbox_backlog{")), "no made-up value: {text}");
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The lines that are samples, one per series and bucket.
    fn samples(text: &str) -> usize {
        text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count()
    }

    #[tokio::test]
    async fn invented_methods_and_random_paths_add_no_series() {
        let m = Metrics::new("order");
        let routes = Router::new().route("/orders/{id}", get(|| async { "an order" }));
        let app = crate::server::app(routes, &Health::default(), &m, None, &crate::auth::Auth::Off);
        let call = |method: &str, uri: String| {
            let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
            app.clone().oneshot(req)
        };
        // One of each kind first: the series they add are the only ones there may be.
        call("GET", "/orders/1".into()).await.unwrap();
        call("BREW", "/orders/1".into()).await.unwrap();
        call("GET", "/random/1".into()).await.unwrap();
        let before = samples(&m.render().await);
        for i in 0..100 {
            let res = call(&format!("BREW{i}"), format!("/orders/{i}")).await.unwrap();
            assert_eq!(res.status(), 405);
            call(&format!("X-{i}"), format!("/random/{i}/path?q={i}")).await.unwrap();
            call("GET", format!("/orders/{i}")).await.unwrap();
        }
        let text = m.render().await;
        assert_eq!(samples(&text), before, "{text}");
        assert!(!text.contains("BREW") && !text.contains("/random"), "{text}");
        assert!(text.contains(r#"method="other",route="/orders/{id}",status="405""#), "{text}");
    }

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
