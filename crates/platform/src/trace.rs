//! Distributed traces with OpenTelemetry: one order is one trace, from the gateway through
//! every service it touches.
//!
//! Spans are `tracing` spans, turned into OpenTelemetry ones by `tracing-opentelemetry`: one
//! per request ([`crate::server`], continuing the caller's context) and one per event handled
//! ([`crate::outbox::consumer_span`], continuing the context the event was raised in). The
//! context crosses services through the global W3C propagator: [`inject_http`] into calls and
//! the gateway's forwarded requests, [`inject`] into an event's headers, [`extract`] back out.
//!
//! Spans exist only while exporting ([`enabled`]): without an endpoint no span is made and
//! no header written, so a request or an event costs nothing more.
//!
//! One process may be several services (`cafe up`), and a tracer provider has one resource.
//! So every span names its service in a `service.name` field, and the exporter
//! (`PerService`) groups each batch by it and hands each group to an OTLP exporter whose
//! resource is that service's (one per service, made for its first span).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{global, Context};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::event::Headers;

/// The W3C header that names a trace and the span to continue.
pub const TRACEPARENT: &str = "traceparent";

/// The target of the spans that make up traces, enabled whatever `RUST_LOG` says while
/// exporting (see [`crate::logging`]).
pub const SPANS: &str = "platform::trace";

/// The span field naming the service a span belongs to; exported as the resource's
/// `service.name`, not as the span's attribute.
const SERVICE: &str = "service.name";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

thread_local! {
    /// Spans are made on this thread for a test ([`record_here`]).
    static RECORDING_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Are spans being made (an exporter is installed)?
pub fn enabled() -> bool {
    PROVIDER.get().is_some() || RECORDING_HERE.with(Cell::get)
}

/// Makes the W3C trace context (`traceparent`, `tracestate`) the global propagator.
pub fn propagate_w3c() {
    global::set_text_map_propagator(TraceContextPropagator::new());
}

#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {reason}")]
pub struct ExportError {
    endpoint: String,
    reason: String,
}

/// Starts exporting spans to `<endpoint>/v1/traces` (OTLP over HTTP, JSON bodies) in batches,
/// and gives the layer that makes them, for the process's subscriber. Spans that name no
/// service are `process`'s. Once per process: `None` if it exports already. Call it on the
/// runtime: exports run there.
pub fn layer<S>(endpoint: &str, process: &str) -> Result<Option<OpenTelemetryLayer<S, SdkTracer>>, ExportError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    propagate_w3c();
    if enabled() {
        return Ok(None);
    }
    let exporter = PerService::new(endpoint, process)?;
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    if PROVIDER.set(provider.clone()).is_err() {
        return Ok(None);
    }
    Ok(Some(spans_of(&provider)))
}

fn spans_of<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cafe"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// [`layer`] for a process that has no subscriber (a cafe built in a test's process): spans
/// are then its only subscriber. A process with a subscriber decided when it installed it
/// (`cafe up` and `cafe serve` hand the endpoint to [`crate::logging::init`]).
pub fn export_to(endpoint: &str, process: &str) -> Result<(), ExportError> {
    if tracing::dispatcher::has_been_set() {
        return Ok(());
    }
    if let Some(layer) = layer(endpoint, process)? {
        let _ = tracing_subscriber::registry().with(layer).try_init();
        tracing::info!(endpoint, "exporting traces");
    }
    Ok(())
}

/// Exports the spans still queued and stops exporting.
pub async fn shutdown() {
    if let Some(provider) = PROVIDER.get().cloned() {
        // Blocks until the last export, which runs on this runtime: not on one of its threads.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// Spans made and continued on this thread (only) while it lives, exported nowhere: for tests
/// of what carries a trace.
pub fn record_here() -> Recording {
    propagate_w3c();
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans_of(&provider)));
    RECORDING_HERE.set(true);
    Recording { _subscriber: subscriber, _provider: provider }
}

/// What [`record_here`] set up: spans stop being made when it is dropped.
///
/// Only on this thread: a test's spans must not turn spans on for the tests running beside
/// it, since with one thread-local subscriber in the process, a span first met on another
/// thread (where nothing listens) would be disabled for good.
pub struct Recording {
    _subscriber: tracing::subscriber::DefaultGuard,
    _provider: SdkTracerProvider,
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDING_HERE.set(false);
    }
}

/// Writes the current span's context into a call's `headers`, as its parent.
pub fn inject_http(headers: &mut HeaderMap) {
    if enabled() {
        let cx = Span::current().context();
        global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
    }
}

/// The context a request's `headers` carry (an empty one if none).
pub fn extract_http(headers: &HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract_with_context(&Context::new(), &HeaderExtractor(headers)))
}

/// Writes the current span's context into an event's `headers`.
pub fn inject(headers: &mut Headers) {
    if enabled() {
        inject_context(&Span::current().context(), headers);
    }
}

fn inject_context(cx: &Context, headers: &mut Headers) {
    global::get_text_map_propagator(|p| p.inject_context(cx, &mut HeadersMut(headers)));
}

/// The context an event's `headers` carry (an empty one if none).
pub fn extract(headers: &Headers) -> Context {
    global::get_text_map_propagator(|p| p.extract_with_context(&Context::new(), &HeadersRef(headers)))
}

/// The current span's `traceparent` as the propagator writes it, to continue its trace
/// later; `None` when not exporting.
pub fn traceparent() -> Option<String> {
    let mut headers = Headers::new();
    inject(&mut headers);
    headers.remove(TRACEPARENT)
}

/// Event headers that continue the trace a kept [`traceparent`] names; none if the
/// propagator cannot read it.
pub fn continuing(traceparent: &str) -> Headers {
    let kept = Headers::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let mut headers = Headers::new();
    inject_context(&extract(&kept), &mut headers);
    headers
}

struct HeadersMut<'a>(&'a mut Headers);

impl Injector for HeadersMut<'_> {
    /// An empty value (a `tracestate` with no entries) says nothing: not stored with the event.
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key.to_string(), value);
        }
    }
}

struct HeadersRef<'a>(&'a Headers);

impl Extractor for HeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Exports each span with the resource of the service it names: one OTLP/HTTP JSON exporter
/// per service, all on one HTTP client.
#[derive(Debug)]
struct PerService {
    url: String,
    http: reqwest::Client,
    /// Whose the spans that name no service are.
    fallback: String,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
    /// The SDK's batch processor exports from a thread of its own; reqwest's client needs
    /// the runtime, so each export runs there.
    runtime: tokio::runtime::Handle,
}

impl PerService {
    fn new(endpoint: &str, process: &str) -> Result<PerService, ExportError> {
        let error = |reason: String| ExportError { endpoint: endpoint.to_string(), reason };
        let exporter = PerService {
            url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
            http: reqwest::Client::new(),
            fallback: process.to_string(),
            exporters: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().map_err(|e| error(e.to_string()))?,
        };
        // A bad endpoint fails now rather than at the first export.
        exporter.of(process).map_err(error)?;
        Ok(exporter)
    }

    /// The exporter of `service`'s spans.
    fn of(&self, service: &str) -> Result<Arc<opentelemetry_otlp::SpanExporter>, String> {
        let mut exporters = self.exporters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(exporter) = exporters.get(service) {
            return Ok(exporter.clone());
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(&self.url)
            .with_http_client(self.http.clone())
            .build()
            .map_err(|e| e.to_string())?;
        exporter.set_resource(&Resource::builder_empty().with_service_name(service.to_string()).build());
        let exporter = Arc::new(exporter);
        exporters.insert(service.to_string(), exporter.clone());
        Ok(exporter)
    }
}

/// `batch` by the service each span names (the name taken out of its attributes).
fn by_service(batch: Vec<SpanData>, fallback: &str) -> HashMap<String, Vec<SpanData>> {
    let mut groups: HashMap<String, Vec<SpanData>> = HashMap::new();
    for mut span in batch {
        let service = match span.attributes.iter().position(|a| a.key.as_str() == SERVICE) {
            Some(at) => span.attributes.swap_remove(at).value.as_str().into_owned(),
            None => fallback.to_string(),
        };
        groups.entry(service).or_default().push(span);
    }
    groups
}

impl SpanExporter for PerService {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut exports = Vec::new();
        for (service, spans) in by_service(batch, &self.fallback) {
            let exporter = self.of(&service).map_err(OTelSdkError::InternalFailure)?;
            exports.push(self.runtime.spawn(async move { exporter.export(spans).await }));
        }
        let mut result = Ok(());
        for export in exports {
            match export.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(OTelSdkError::InternalFailure(e.to_string())),
            }
        }
        result
    }

    // The provider's own resource is ignored: each service's exporter has its own.
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use opentelemetry::trace::{TraceContextExt, TraceId};
    use tower::ServiceExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_id(headers: &Headers) -> TraceId {
        extract(headers).span().span_context().trace_id()
    }

    fn app() -> axum::Router {
        crate::server::app(
            axum::Router::new()
                .route("/t", axum::routing::get(|| async { traceparent().unwrap_or_default() }))
                .route("/fail", axum::routing::get(|| async { StatusCode::INTERNAL_SERVER_ERROR })),
            &crate::health::Health::default(),
            &crate::metrics::Metrics::new("t"),
            None,
            &crate::auth::Auth::Off,
        )
    }

    async fn traceparent_seen_by_handler(request: Request<Body>) -> String {
        let res = app().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1000).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_request_span_is_the_child_of_the_callers() {
        let _spans = record_here();
        let seen =
            traceparent_seen_by_handler(Request::get("/t").header(TRACEPARENT, PARENT).body(Body::empty()).unwrap())
                .await;
        let (caller, handler) = (Headers::from([(TRACEPARENT.into(), PARENT.into())]), continuing(&seen));
        assert_eq!(trace_id(&handler), trace_id(&caller), "{seen}");
        assert!(!seen.contains("00f067aa0ba902b7"), "a span of its own: {seen}");

        // Without a caller's context, a new trace.
        let fresh = traceparent_seen_by_handler(Request::get("/t").body(Body::empty()).unwrap()).await;
        let fresh = trace_id(&continuing(&fresh));
        assert!(fresh != TraceId::INVALID && fresh != trace_id(&caller));
    }

    #[tokio::test]
    async fn a_call_carries_the_current_span_as_parent() {
        let _spans = record_here();
        let span = tracing::info_span!("call");
        let _ = span.set_parent(extract(&Headers::from([(TRACEPARENT.into(), PARENT.into())])));
        let mut headers = HeaderMap::new();
        span.in_scope(|| inject_http(&mut headers));
        let sent = headers[TRACEPARENT].to_str().unwrap();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !sent.contains("00f067aa0ba902b7"),
            "{sent}"
        );
        assert_eq!(extract_http(&headers).span().span_context().trace_id(), trace_id(&continuing(PARENT)));
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    #[serde(tag = "eventType")]
    enum Said {
        Hello,
    }

    impl crate::event::Payload for Said {
        fn event_type(&self) -> &'static str {
            "Hello"
        }

        fn order_id(&self) -> i64 {
            1
        }

        fn knows(event_type: &str) -> bool {
            event_type == "Hello"
        }
    }

    #[tokio::test]
    async fn an_event_carries_the_context_it_was_raised_in_to_its_consumer() {
        let _spans = record_here();
        let span = tracing::info_span!("raise");
        let event = span.in_scope(|| crate::event::Event::new("t", Said::Hello));
        let headers = &event.headers;
        assert_eq!(headers.len(), 1, "{headers:?}");
        let (raised, raiser) =
            (extract(headers).span().span_context().clone(), span.context().span().span_context().clone());
        assert_eq!((raised.trace_id(), raised.span_id()), (raiser.trace_id(), raiser.span_id()));
        assert!(raised.is_remote());

        // Its consumer's span is a child: the same trace, a span of its own.
        let consumer = crate::outbox::read_in_span("t", &event, traceparent).await.expect("a consumer span");
        let consumer = extract(&continuing(&consumer)).span().span_context().clone();
        assert_eq!(consumer.trace_id(), raised.trace_id());
        assert_ne!(consumer.span_id(), raised.span_id());

        // Kept as a `traceparent` and continued later, it is the same context.
        assert_eq!(&continuing(&headers[TRACEPARENT]), headers);
        assert!(continuing("not a traceparent").is_empty());
        assert!(continuing("00-00000000000000000000000000000000-0000000000000001-01").is_empty());
    }

    fn span(attributes: Vec<opentelemetry::KeyValue>) -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /t".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn a_span_goes_with_the_service_it_names_and_loses_the_attribute() {
        use opentelemetry::KeyValue;
        let route = KeyValue::new("http.route", "/t");
        let batch = vec![
            span(vec![KeyValue::new(SERVICE, "order"), route.clone()]),
            span(vec![route.clone()]),
            span(vec![route.clone(), KeyValue::new(SERVICE, "drink")]),
            span(vec![KeyValue::new(SERVICE, "order")]),
        ];
        let groups = by_service(batch, "cafe");
        let sizes: std::collections::BTreeMap<&str, usize> =
            groups.iter().map(|(s, g)| (s.as_str(), g.len())).collect();
        assert_eq!(sizes, [("cafe", 1), ("drink", 1), ("order", 2)].into());
        assert!(groups.values().flatten().all(|s| s.attributes.iter().all(|a| a.key.as_str() != SERVICE)));
        assert_eq!(groups["drink"][0].attributes, [route]);
    }
}
