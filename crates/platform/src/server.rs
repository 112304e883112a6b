//! Serving one service: the common layers (health, problem+json fallbacks, body limit,
//! access log), bound before anything runs, stopped gracefully by the shared token.
//!
//! Stopping: the token is cancelled and readiness turns DOWN at once; the server keeps
//! answering for `drain` (so load balancers polling readiness move away first), then the
//! listener closes and in-flight requests get up to `grace` to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::access_log::AccessLog;
use crate::auth::Auth;
use crate::health::Health;
use crate::json::MAX_BODY_BYTES;
use crate::metrics::Metrics;
use crate::problem::{method_not_allowed_fallback, not_found_fallback};

/// Adds what every service has to its own routes: health, metrics, problem+json
/// fallbacks (and the framework's plain-text refusals as problems), the body limit, request metrics, the request's span, the access log, and
/// finding out who calls (`auth`), which the role rules beside the routes then read.
pub fn app(routes: Router, health: &Health, metrics: &Metrics, access: Option<AccessLog>, auth: &Auth) -> Router {
    let router = routes
        .merge(health.routes())
        .route("/actuator/prometheus", axum::routing::get(crate::metrics::scrape).with_state(metrics.clone()))
        .method_not_allowed_fallback(method_not_allowed_fallback)
        .fallback(not_found_fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::problem::plain_rejections))
        .route_layer(axum::middleware::from_fn_with_state(metrics.clone(), crate::metrics::record))
        .route_layer(axum::middleware::from_fn_with_state(Arc::<str>::from(metrics.service()), request_span))
        .layer(axum::middleware::from_fn_with_state(auth.clone(), crate::auth::identify));
    match access {
        Some(log) => router.layer(axum::middleware::from_fn_with_state(log, crate::access_log::record)),
        None => router,
    }
}

/// One span per request while traces are exported: a server span of `service` named after the
/// route it matched (`POST /orders`), the child of the caller's context, failed on a 5xx.
async fn request_span(State(service): State<Arc<str>>, req: Request, next: Next) -> Response {
    if !crate::trace::enabled() {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| req.uri().path(), |p| p.as_str());
    let span = tracing::info_span!(
        target: crate::trace::SPANS,
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        service.name = &*service,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(crate::trace::extract_http(req.headers()));
    let res = next.run(req).instrument(span.clone()).await;
    if res.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    res
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// How a server stops.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Keep answering this long after readiness went DOWN.
    pub drain: Duration,
    /// Then give in-flight requests at most this long.
    pub grace: Duration,
}

/// Serves until `cancel`, then drains as `stop` says.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    health: Health,
    cancel: CancellationToken,
    stop: Stop,
) -> std::io::Result<()> {
    let token = cancel.clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(
        async move {
            token.cancelled().await;
            health.stopping();
            tokio::time::sleep(stop.drain).await;
        },
    );
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r.unwrap_or(Ok(())),
        _ = cancel.cancelled() => {}
    }
    let grace = stop.drain + stop.grace;
    match tokio::time::timeout(grace, &mut server).await {
        Ok(r) => r.unwrap_or(Ok(())),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
            server.abort();
            Ok(())
        }
    }
}
