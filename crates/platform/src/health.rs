//! Health as Spring Boot Actuator shows it: `/actuator/health` with components, liveness
//! (the process answers) and readiness (its database and broker are reachable and it is not
//! shutting down). Kubernetes and the gateway both act on readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

pub type Check = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// What a component shows under `components`, read when health is asked.
pub type Detail = Arc<dyn Fn() -> Value + Send + Sync>;

#[derive(Clone, Default)]
pub struct Health {
    stopping: Arc<AtomicBool>,
    checks: Vec<(&'static str, Check)>,
    /// Extra details shown under `components` (e.g. circuit breakers), not affecting status.
    details: Vec<(&'static str, Detail)>,
}

impl Health {
    pub fn with_check(mut self, name: &'static str, check: Check) -> Self {
        self.checks.push((name, check));
        self
    }

    pub fn with_detail(mut self, name: &'static str, detail: Detail) -> Self {
        self.details.push((name, detail));
        self
    }

    /// Readiness goes DOWN from now on: the start of a graceful stop.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    async fn components(&self) -> (bool, Map<String, Value>) {
        let results = futures::future::join_all(self.checks.iter().map(|(_, c)| c())).await;
        let mut all_up = true;
        let mut comps = Map::new();
        for ((name, _), up) in self.checks.iter().zip(results) {
            all_up &= up;
            comps.insert((*name).into(), json!({ "status": if up { "UP" } else { "DOWN" } }));
        }
        for (name, d) in &self.details {
            comps.insert((*name).into(), d());
        }
        (all_up, comps)
    }

    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/actuator/health", get(health))
            .route("/actuator/health/liveness", get(liveness))
            .route("/actuator/health/readiness", get(readiness))
            .route("/liveness", get(liveness))
            .route("/readiness", get(readiness))
            .with_state(self.clone())
    }
}

fn answer(up: bool, components: Option<Map<String, Value>>) -> Response {
    let status = if up { "UP" } else { "DOWN" };
    let code = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = match components {
        Some(c) => json!({ "status": status, "components": c }),
        None => json!({ "status": status }),
    };
    (code, Json(body)).into_response()
}

async fn health(State(h): State<Health>) -> Response {
    let (up, mut comps) = h.components().await;
    let ready = up && !h.is_stopping();
    comps.insert("readinessState".into(), json!({ "status": if ready { "UP" } else { "OUT_OF_SERVICE" } }));
    answer(ready, Some(comps))
}

async fn liveness() -> Response {
    answer(true, None)
}

async fn readiness(State(h): State<Health>) -> Response {
    if h.is_stopping() {
        return answer(false, None);
    }
    let (up, comps) = h.components().await;
    answer(up, Some(comps))
}
