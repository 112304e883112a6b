//! RFC 9457 problem details: the one error shape every service answers with.
//!
//! Handlers return `Result<_, Problem>`. Anything a client can get wrong maps to a 4xx here;
//! a storage failure becomes a 500 whose cause is logged once and never sent to the client,
//! or a 503 with `Retry-After` when a retry may well succeed (the database unreachable, out
//! of disk space or shutting down, or a lock or statement timeout).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One offending field of a failed validation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds a client should wait before retrying (503 only).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("https://cafe.example/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut p = Self::new(StatusCode::BAD_REQUEST, "validation", format!("invalid fields: {}", names.join(", ")));
        p.title = "Validation failed".into();
        p.errors = errors;
        p
    }

    /// A body that is well formed but cannot be accepted as it stands: 422, naming `field`.
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        let mut p = Self::validation(vec![FieldError { field: field.into(), message: message.into() }]);
        p.status = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// A dependency is down, slow, or behind an open circuit: the client may retry.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after = Some(retry_after_secs.max(1));
        p
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this resource does not support that method")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; the request may be retried")
    }

    /// The names of the offending fields, in the order the validation found them.
    pub fn fields(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.field.as_str()).collect()
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (self.status(), body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Storage failures are ours, not the client's: log the cause, answer 500 (or 503 when the
/// database is unreachable, out of service (its disk full, shutting down) or gave up waiting
/// for a lock, which a client may retry: the statement changed nothing).
impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if crate::db::gave_up_waiting(db.as_ref()) => {
                tracing::warn!(error = %e, "database busy: a lock or statement timeout");
                Problem::unavailable("the database is busy, please retry shortly", 1)
            }
            e if crate::db::is_transient(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Problem::unavailable("the database is unavailable, please retry shortly", 1)
            }
            _ => {
                tracing::error!(error = %e, "database error");
                Problem::internal()
            }
        }
    }
}

/// Fallback for unknown paths.
pub async fn not_found_fallback() -> Problem {
    Problem::not_found("no such resource")
}

/// Fallback for a known path with a method it does not support.
pub async fn method_not_allowed_fallback() -> Problem {
    Problem::method_not_allowed()
}

/// Turns the framework's own refusals, which are plain text (a path parameter that is not
/// UTF-8, say), into problems: every error a service answers is problem+json. Answers that
/// are already problems, or not errors of the client's, pass as they are.
pub async fn plain_rejections(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !res.status().is_client_error() || !plain {
        return res;
    }
    let status = res.status();
    // The framework's refusals are a line or two; anything longer is cut.
    let detail = match axum::body::to_bytes(res.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("the request was refused").to_string(),
    };
    let slug = if status == StatusCode::BAD_REQUEST { "bad-request" } else { "refused" };
    Problem::new(status, slug, detail).into_response()
}
