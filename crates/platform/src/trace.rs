//! Distributed tracing: W3C `traceparent` carried over every HTTP call and inside every
//! event, so that one order is one trace from the gateway through every service it touches.
//!
//! The current span's context lives in a task-local: the server layer opens a span per
//! request (continuing the caller's `traceparent`), [`crate::client`] and the gateway send
//! the current span as the next hop's parent, [`crate::event::Event::new`] stamps the context into the
//! event, and a consumer handles each event inside a child of that context.
//!
//! Finished spans are exported as OTLP/HTTP JSON to `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`<endpoint>/v1/traces`) when it is set; otherwise nothing is recorded. The exporter
//! batches in the background and drops spans rather than slow a request.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
}

fn random_u128() -> u128 {
    u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes())
}

impl TraceContext {
    /// A new trace.
    pub fn root() -> TraceContext {
        TraceContext { trace_id: random_u128(), span_id: random_u128() as u64 | 1 }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext { trace_id: self.trace_id, span_id: random_u128() as u64 | 1 }
    }

    /// Parses `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 || version == "ff" {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        Some(TraceContext { trace_id, span_id })
    }

    pub fn header(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the span this task is in, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `fut` as the span `ctx`.
pub async fn scope<F: Future>(ctx: TraceContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// `fut`, still in the current span when polled elsewhere (say on a spawned task, where
/// the task-local would otherwise be lost).
pub fn carry<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let ctx = current();
    async move {
        match ctx {
            Some(ctx) => scope(ctx, fut).await,
            None => fut.await,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Server = 2,
    Consumer = 5,
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub kind: Kind,
    pub ctx: TraceContext,
    pub parent: Option<u64>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub error: bool,
}

static EXPORT: OnceLock<tokio::sync::mpsc::Sender<Span>> = OnceLock::new();

/// Are spans being recorded?
pub fn enabled() -> bool {
    EXPORT.get().is_some()
}

/// Hands a finished span to the exporter (if any). Never blocks: a full queue drops it.
pub fn record(span: Span) {
    if let Some(tx) = EXPORT.get() {
        let _ = tx.try_send(span);
    }
}

/// Starts exporting to `<endpoint>/v1/traces` (OTLP over HTTP, JSON encoding). Once per
/// process; later calls are ignored.
pub fn export_to(endpoint: &str) {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Span>(65_536);
    if EXPORT.set(tx).is_err() {
        return;
    }
    tracing::info!(%url, "exporting traces");
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut batch = Vec::new();
        while let Some(span) = rx.recv().await {
            batch.push(span);
            // Gather what arrives in the next moment, then send it in one request.
            let _ = tokio::time::timeout(Duration::from_millis(100), async {
                while batch.len() < 1024 {
                    match rx.recv().await {
                        Some(s) => batch.push(s),
                        None => break,
                    }
                }
            })
            .await;
            let body = otlp_json(&batch);
            batch.clear();
            if let Err(e) = http.post(&url).json(&body).timeout(Duration::from_secs(5)).send().await {
                tracing::debug!(error = %e, "trace export failed; spans dropped");
            }
        }
    });
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_string()
}

/// The OTLP/JSON body for `spans`, grouped by service (`service.name`).
pub fn otlp_json(spans: &[Span]) -> Value {
    let mut by_service: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for s in spans {
        let mut span = json!({
            "traceId": format!("{:032x}", s.ctx.trace_id),
            "spanId": format!("{:016x}", s.ctx.span_id),
            "name": s.name,
            "kind": s.kind as u8,
            "startTimeUnixNano": nanos(s.start),
            "endTimeUnixNano": nanos(s.end),
            "status": { "code": if s.error { 2 } else { 1 } },
        });
        if let Some(p) = s.parent {
            span["parentSpanId"] = json!(format!("{p:016x}"));
        }
        by_service.entry(&s.service).or_default().push(span);
    }
    let resource_spans: Vec<Value> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": { "attributes": [ { "key": "service.name", "value": { "stringValue": service } } ] },
                "scopeSpans": [ { "scope": { "name": "cafe" }, "spans": spans } ],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// Runs `fut` as a new span `name` of `service`, child of `parent` (or a new trace), and
/// records it when it ends. `failed` tells from the output whether it failed.
pub async fn in_span<F: Future>(
    service: &str,
    name: impl FnOnce() -> String,
    kind: Kind,
    parent: Option<TraceContext>,
    fut: F,
    failed: impl FnOnce(&F::Output) -> bool,
) -> F::Output {
    let ctx = parent.map(|p| p.child()).unwrap_or_else(TraceContext::root);
    if !enabled() {
        return scope(ctx, fut).await;
    }
    let start = SystemTime::now();
    let out = scope(ctx, fut).await;
    record(Span {
        service: service.to_string(),
        name: name(),
        kind,
        ctx,
        parent: parent.map(|p| p.span_id),
        start,
        end: SystemTime::now(),
        error: failed(&out),
    });
    out
}

/// Server layer: one span per request, continuing the caller's `traceparent`.
pub async fn server_span(
    axum::extract::State(service): axum::extract::State<String>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let name = format!("{} {}", req.method(), route);
    in_span(&service, || name, Kind::Server, parent, next.run(req), |res| res.status().is_server_error()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let c = TraceContext::root();
        assert_eq!(TraceContext::parse(&c.header()), Some(c));
        let child = c.child();
        assert_eq!(child.trace_id, c.trace_id);
        assert_ne!(child.span_id, c.span_id);
        for bad in ["", "00-abc-def-01", "00-00000000000000000000000000000000-0000000000000001-01", "zz"] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        assert_eq!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(TraceContext { trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736, span_id: 0x00f067aa0ba902b7 })
        );
    }

    #[tokio::test]
    async fn the_current_context_is_task_local() {
        assert_eq!(current(), None);
        let c = TraceContext::root();
        assert_eq!(scope(c, async { current() }).await, Some(c));
    }
}

#[cfg(test)]
mod layer_tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn handlers_run_inside_the_request_span() {
        let app = crate::server::app(
            axum::Router::new()
                .route("/t", axum::routing::get(|| async { format!("{:?}", super::current().is_some()) })),
            &crate::health::Health::default(),
            &crate::metrics::Metrics::new("t"),
            None,
            &crate::auth::Auth::Off,
        );
        let res = app.oneshot(Request::get("/t").body(Body::empty()).unwrap()).await.unwrap();
        let body = axum::body::to_bytes(res.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"true");
    }
}
