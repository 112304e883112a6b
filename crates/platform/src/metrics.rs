//! Prometheus metrics, text format at `GET /actuator/prometheus`, without a metrics crate:
//! a few counters, one latency histogram and gauges read at scrape time are all we need.
//!
//! - `http_server_requests_seconds{service,method,route,status}`: histogram of requests;
//! - `cafe_events_published_total{service,type}`, `cafe_events_handled_total{service,type}`;
//! - `http_server_requests_in_flight{service}`: requests being served now;
//! - `cafe_outbox_backlog{service}`: events committed, not yet published;
//! - `cafe_consumer_lag{service}`: events on the bus this service has not handled yet;
//! - `cafe_circuit_breaker_state{service,dependency}` (0 closed, 1 open, 2 half-open) with
//!   `cafe_circuit_breaker_calls` and `_failures` over the rolling window.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A gauge read when scraped: its name, help, and a reader giving `(labels, value)` rows.
type Reader = Arc<dyn Fn() -> BoxFuture<'static, Vec<(String, f64)>> + Send + Sync>;

#[derive(Default)]
struct Inner {
    service: String,
    // std Mutexes: held for a map update, never across an await.
    http: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    gauges: Mutex<Vec<(&'static str, &'static str, Reader)>>,
    in_flight: std::sync::atomic::AtomicI64,
}

#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn new(service: &str) -> Metrics {
        Metrics { inner: Arc::new(Inner { service: service.to_string(), ..Default::default() }) }
    }

    pub fn service(&self) -> String {
        self.inner.service.clone()
    }

    /// Adds `n` to counter `name{type=...}`.
    pub fn count(&self, name: &'static str, event_type: &str, n: u64) {
        *lock(&self.inner.counters).entry((name, event_type.to_string())).or_default() += n;
    }

    /// Registers a gauge read at scrape time; each row is `(extra labels, value)`.
    pub fn gauge(&self, name: &'static str, help: &'static str, read: Reader) {
        lock(&self.inner.gauges).push((name, help, read));
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut http = lock(&self.inner.http);
        let h = http.entry((route.to_string(), method.to_string(), status)).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The text exposition.
    pub async fn render(&self) -> String {
        let svc = &self.inner.service;
        let mut out = String::new();
        let http = lock(&self.inner.http).clone();
        let _ = writeln!(out, "# HELP http_server_requests_seconds HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE http_server_requests_seconds histogram");
        for ((route, method, status), h) in &http {
            let labels =
                format!("service=\"{svc}\",method=\"{method}\",route=\"{}\",status=\"{status}\"", escape(route));
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "http_server_requests_seconds_bucket{{{labels},le=\"{le}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "http_server_requests_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "http_server_requests_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "http_server_requests_seconds_count{{{labels}}} {}", h.count);
        }
        let _ = writeln!(out, "# HELP http_server_requests_in_flight Requests being served now.");
        let _ = writeln!(out, "# TYPE http_server_requests_in_flight gauge");
        let in_flight = self.inner.in_flight.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "http_server_requests_in_flight{{service=\"{svc}\"}} {in_flight}");
        let counters = lock(&self.inner.counters).clone();
        for name in ["cafe_events_published_total", "cafe_events_handled_total"] {
            let _ = writeln!(out, "# HELP {name} Events by type.");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((n, t), v) in counters.iter().filter(|((n, _), _)| *n == name) {
                let _ = writeln!(out, "{n}{{service=\"{svc}\",type=\"{}\"}} {v}", escape(t));
            }
        }
        let gauges: Vec<_> = lock(&self.inner.gauges).iter().map(|(n, h, r)| (*n, *h, r.clone())).collect();
        let mut seen = Vec::new();
        for (name, help, read) in gauges {
            if !seen.contains(&name) {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                seen.push(name);
            }
            for (labels, value) in read().await {
                let sep = if labels.is_empty() { "" } else { "," };
                let _ = writeln!(out, "{name}{{service=\"{svc}\"{sep}{labels}}} {value}");
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: one histogram observation per request, by matched route (not raw path, so
/// ids do not explode the label set).
pub async fn record(State(m): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let in_flight = InFlight::enter(&m);
    let res = next.run(req).await;
    drop(in_flight);
    m.observe(&method, &route, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// Counts a request as in flight until dropped, however the request ends.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(m: &'a Metrics) -> Self {
        m.inner.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inner.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub async fn scrape(State(m): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render().await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_histograms_counters_and_gauges() {
        let m = Metrics::new("order");
        m.observe("POST", "/orders", 201, 0.003);
        m.count("cafe_events_published_total", "Ordered", 2);
        m.gauge(
            "cafe_outbox_backlog",
            "Events not yet published.",
            Arc::new(|| Box::pin(async { vec![(String::new(), 3.0)] })),
        );
        let text = m.render().await;
        assert!(text.contains(r#"http_server_requests_seconds_bucket{service="order",method="POST",route="/orders",status="201",le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"http_server_requests_seconds_bucket{service="order",method="POST",route="/orders",status="201",le="0.001"} 0"#));
        assert!(text.contains(r#"cafe_events_published_total{service="order",type="Ordered"} 2"#));
        assert!(text.contains(r#"cafe_outbox_backlog{service="order"} 3"#));
    }
}
