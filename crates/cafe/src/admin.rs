//! The dead letters of every service, from the admin listener of `cafe up` and of
//! `cafe cluster` (127.0.0.1 only, a manager's token when auth is on), and from the command
//! line (`cafe dead-letters list|retry`), which calls that listener.
//!
//! Each service keeps what it parked in its own database and serves it on its own listener
//! (`platform::dead_letter::router`); the admin listener asks every service and answers for
//! all of them, passing the manager's `Authorization` on, so a service checks the caller
//! itself:
//!
//! - `GET /admin/dead-letters`: `{"count", "deadLetters": [{"service", "eventId", ...}],
//!   "unreachable": [services that did not answer]}`;
//! - `POST /admin/dead-letters/{service}/{eventId}/retry`: the service's answer (204 once
//!   handled, 404 not parked, 409 still failing), or 503 when it is down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::ServiceName;
use platform::auth::{allow, Role};
use platform::Problem;
use serde_json::{json, Value};

use crate::cli::{DeadLettersArgs, DeadLettersCommand};

/// Where each service listens now (every instance; none when it is stopped).
pub type Locate = Arc<dyn Fn(ServiceName) -> Vec<String> + Send + Sync>;

#[derive(Clone)]
struct Admin {
    locate: Locate,
    http: reqwest::Client,
}

/// The dead-letter routes of an admin listener, asking the services `locate` finds.
pub fn dead_letters(locate: Locate) -> Router {
    const MANAGER: &[Role] = &[Role::Manager];
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    Router::new()
        .route("/admin/dead-letters", get(list).route_layer(allow(MANAGER)))
        .route("/admin/dead-letters/{service}/{event_id}/retry", post(retry).route_layer(allow(MANAGER)))
        .with_state(Admin { locate, http })
}

/// The services that consume events, and so may park them.
fn consumers() -> impl Iterator<Item = ServiceName> {
    ServiceName::BEHIND_GATEWAY.into_iter().filter(|s| !crate::services::consumes(*s).is_empty())
}

fn forward(req: reqwest::RequestBuilder, headers: &HeaderMap) -> reqwest::RequestBuilder {
    match headers.get(header::AUTHORIZATION) {
        Some(auth) => req.header(header::AUTHORIZATION, auth),
        None => req,
    }
}

async fn list(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let (mut parked, mut unreachable) = (Vec::new(), Vec::new());
    for service in consumers() {
        let mut answered = false;
        // Replicas share a database: the first that answers speaks for all.
        for url in (admin.locate)(service) {
            let reply = forward(admin.http.get(format!("{url}/admin/dead-letters")), &headers).send().await;
            let Ok(reply) = reply else { continue };
            if !reply.status().is_success() {
                // A refusal (401, 403) is the caller's answer, as the service gave it.
                return relay(reply).await;
            }
            let Ok(body) = reply.json::<Value>().await else { continue };
            for mut item in body["deadLetters"].as_array().cloned().unwrap_or_default() {
                item["service"] = json!(service.as_str());
                parked.push(item);
            }
            answered = true;
            break;
        }
        if !answered {
            unreachable.push(service.as_str());
        }
    }
    Json(json!({ "count": parked.len(), "deadLetters": parked, "unreachable": unreachable })).into_response()
}

async fn retry(
    State(admin): State<Admin>,
    Path((service, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(service) = service.parse::<ServiceName>().ok().filter(|s| consumers().any(|c| c == *s)) else {
        return Problem::not_found(format!("no service '{service}' that consumes events")).into_response();
    };
    for url in (admin.locate)(service) {
        let call = admin.http.post(format!("{url}/admin/dead-letters/{}/retry", encode(&event_id)));
        if let Ok(reply) = forward(call, &headers).send().await {
            return relay(reply).await;
        }
    }
    Problem::unavailable(format!("{service} is not running: start it, then retry"), 1).into_response()
}

/// A service's answer, as it gave it.
async fn relay(reply: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(reply.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = reply.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let body = reply.bytes().await.unwrap_or_default();
    let mut response = (status, body).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// An event id as one path segment.
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `cafe dead-letters list|retry`: asks the admin listener, prints what it says.
pub async fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let with_token = |req: reqwest::RequestBuilder| match &args.token {
        Some(token) => req.bearer_auth(token),
        None => req,
    };
    let admin = args.admin.trim_end_matches('/');
    match &args.command {
        DeadLettersCommand::List => {
            let reply = with_token(http.get(format!("{admin}/admin/dead-letters"))).send().await?;
            let body = answer(reply).await?;
            let items = body["deadLetters"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no dead letters");
            }
            for item in &items {
                println!(
                    "{}\t{}\t{}\t{} tries\t{}\t{}",
                    item["service"].as_str().unwrap_or("?"),
                    item["eventId"].as_str().unwrap_or("?"),
                    item["eventType"].as_str().unwrap_or("?"),
                    item["attempts"],
                    item["parkedAt"].as_str().unwrap_or("?"),
                    item["error"].as_str().unwrap_or("?"),
                );
            }
            for service in body["unreachable"].as_array().into_iter().flatten() {
                eprintln!("cafe: {} did not answer; its dead letters are not listed", service.as_str().unwrap_or("?"));
            }
        }
        DeadLettersCommand::Retry { service, event_id } => {
            let url = format!("{admin}/admin/dead-letters/{service}/{}/retry", encode(event_id));
            answer(with_token(http.post(url)).send().await?).await?;
            println!("{event_id} handled and unparked");
        }
    }
    Ok(())
}

/// The JSON of a successful answer, or the problem's detail as the error.
async fn answer(reply: reqwest::Response) -> anyhow::Result<Value> {
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    anyhow::bail!("{status}: {}", body["detail"].as_str().unwrap_or("no detail"))
}
