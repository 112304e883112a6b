//! The cafe's public API as the pages call it: through the gateway, with the signed-in
//! person's token, like any other client. What comes back is JSON or one of the failures a
//! person is shown ([`Failure`]).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// Why a call did not give what was asked, in the words a page uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401: the session's token is no longer accepted.
    SignedOut,
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: the change is not allowed in the current state.
    Conflict(String),
    /// 400 or 422: what the person typed is not accepted.
    Invalid(String),
    /// 429 or 503 with `Retry-After`: try again in that many seconds.
    Busy { detail: String, retry_after: u64 },
    /// The service (or the gateway) could not be reached or failed.
    Down(String),
}

impl Failure {
    /// One sentence for a person.
    pub fn message(&self) -> String {
        match self {
            Failure::SignedOut => "Your session has ended. Please sign in again.".into(),
            Failure::Forbidden(d) | Failure::NotFound(d) | Failure::Conflict(d) | Failure::Invalid(d) => d.clone(),
            Failure::Busy { detail, retry_after } => format!("{detail} Try again in {retry_after} s."),
            Failure::Down(d) => d.clone(),
        }
    }
}

impl Api {
    pub fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default settings");
        Api { http, base: base.trim_end_matches('/').to_string() }
    }

    /// The gateway's URL, as the web calls it.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, token, path, None).await
    }

    pub async fn send(&self, method: Method, token: Option<&str>, path: &str, body: Value) -> Result<Value, Failure> {
        self.call(method, token, path, Some(body)).await
    }

    pub async fn delete(&self, token: Option<&str>, path: &str) -> Result<Value, Failure> {
        self.call(Method::DELETE, token, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let what = service_of(path);
        let res = req.send().await.map_err(|e| {
            tracing::warn!(path, error = %e, "API call failed");
            Failure::Down(format!("The {what} service cannot be reached right now."))
        })?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = res.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) });
        }
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let detail = problem["detail"].as_str().unwrap_or("").to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::SignedOut,
            StatusCode::FORBIDDEN => Failure::Forbidden(or(detail, "You may not do this.")),
            StatusCode::NOT_FOUND => Failure::NotFound(or(detail, "Not found.")),
            StatusCode::CONFLICT => Failure::Conflict(or(detail, "This cannot be done now.")),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Failure::Invalid(invalid_detail(&problem).unwrap_or(or(detail, "Please check what you entered.")))
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE if retry_after.is_some() => Failure::Busy {
                detail: or(detail, &format!("The {what} service is busy.")),
                retry_after: retry_after.unwrap_or(1),
            },
            _ => Failure::Down(format!("The {what} service is not answering right now.")),
        })
    }
}

fn or(detail: String, default: &str) -> String {
    if detail.is_empty() {
        default.to_string()
    } else {
        sentence(&detail)
    }
}

/// A problem's detail as a sentence: capitalised, with a full stop.
fn sentence(detail: &str) -> String {
    let mut chars = detail.chars();
    let mut s: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// The fields a validation problem names.
fn invalid_detail(problem: &Value) -> Option<String> {
    let fields = problem["invalidParams"].as_array().or_else(|| problem["errors"].as_array())?;
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str().or_else(|| f["field"].as_str())?;
            let reason = f["reason"].as_str().or_else(|| f["message"].as_str()).unwrap_or("is not valid");
            Some(format!("{name}: {reason}"))
        })
        .collect();
    (!parts.is_empty()).then(|| sentence(&parts.join("; ")))
}

/// The service a path belongs to, for messages.
fn service_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split(['/', '?']).next().unwrap_or("");
    match first {
        "orders" | "menu" => "order",
        "payments" => "payment",
        "drinks" | "orderinfos" => "drink",
        "mypages" => "customer center",
        "deliveries" | "cancellations" => "delivery",
        "deliverypages" => "delivery center",
        "auth" | "customers" => "sign-in",
        _ => "cafe",
    }
}

/// The items of a HAL collection (`_embedded.<name>`, or its one list), or none.
pub fn embedded<'v>(page: &'v Value, name: &str) -> &'v [Value] {
    let lists = &page["_embedded"];
    lists[name]
        .as_array()
        .or_else(|| lists.as_object().and_then(|o| o.values().find_map(Value::as_array)))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}
