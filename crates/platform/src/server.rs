//! Serving one service: the common layers (health, problem+json fallbacks, body limit,
//! access log), bound before anything runs, stopped gracefully by the shared token.
//!
//! Stopping: the token is cancelled and readiness turns DOWN at once; the server keeps
//! answering for `drain` (so load balancers polling readiness move away first), then the
//! listener closes and in-flight requests get up to `grace` to finish.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access_log::AccessLog;
use crate::auth::Auth;
use crate::health::Health;
use crate::json::MAX_BODY_BYTES;
use crate::metrics::Metrics;
use crate::problem::{method_not_allowed_fallback, not_found_fallback};

/// Adds what every service has to its own routes: health, metrics, problem+json
/// fallbacks, the body limit, request metrics, the access log, and finding out who calls
/// (`auth`), which the role rules beside the routes then read.
pub fn app(routes: Router, health: &Health, metrics: &Metrics, access: Option<AccessLog>, auth: &Auth) -> Router {
    let router = routes
        .merge(health.routes())
        .route("/actuator/prometheus", axum::routing::get(crate::metrics::scrape).with_state(metrics.clone()))
        .method_not_allowed_fallback(method_not_allowed_fallback)
        .fallback(not_found_fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(metrics.clone(), crate::metrics::record))
        .route_layer(axum::middleware::from_fn_with_state(metrics.service(), crate::trace::server_span))
        .layer(axum::middleware::from_fn_with_state(auth.clone(), crate::auth::identify));
    match access {
        Some(log) => router.layer(axum::middleware::from_fn_with_state(log, crate::access_log::record)),
        None => router,
    }
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
