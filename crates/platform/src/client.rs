//! Calls to another service: JSON over HTTP with a timeout and a circuit breaker, every
//! failure sorted into "the dependency could not answer" (retry later: 503 to our client)
//! or "it answered no" (a 4xx we pass on). A 4xx is a healthy answer to the breaker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Credential;
use crate::breaker::Breaker;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Down, slow, broken, or behind an open circuit. The request may or may not have been
    /// processed (except when `sent` is false).
    #[error("{dependency} unavailable: {reason}")]
    Unavailable { dependency: &'static str, reason: String, sent: bool },
    /// The circuit is open: nothing was sent.
    #[error("{dependency} circuit open; retry in {retry_after:?}")]
    CircuitOpen { dependency: &'static str, retry_after: Duration },
    /// The dependency answered with a 4xx; `detail` is its problem's detail, if it gave one.
    #[error("{dependency} refused with {status}")]
    Refused { dependency: &'static str, status: StatusCode, detail: Option<String> },
}

/// A dependency's instances, tried round-robin; a refused connection moves on to the next
/// instance (nothing was sent, so that is always safe).
#[derive(Clone)]
pub struct ServiceClient {
    pub dependency: &'static str,
    bases: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    http: reqwest::Client,
    timeout: Duration,
    pub breaker: Arc<Breaker>,
    /// This service's own credential, sent with every call (none when auth is off).
    credential: Option<Arc<Credential>>,
}

impl ServiceClient {
    /// `bases`: one or more comma-separated instance URLs.
    pub fn new(dependency: &'static str, bases: &str, timeout: Duration, breaker: Arc<Breaker>) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with default TLS-less settings");
        let bases: Vec<String> =
            bases.split(',').map(|b| b.trim().trim_end_matches('/').to_string()).filter(|b| !b.is_empty()).collect();
        ServiceClient {
            dependency,
            bases: Arc::new(bases),
            next: Arc::new(AtomicUsize::new(0)),
            http,
            timeout,
            breaker,
            credential: None,
        }
    }

    /// Calls carry `credential`: the dependency's internal endpoints refuse calls without it.
    pub fn with_credential(mut self, credential: Option<Arc<Credential>>) -> Self {
        self.credential = credential;
        self
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` to `path` through the breaker; a 2xx answer's body, read as an `A`. An
    /// answer that is not an `A` is a broken answer: the dependency is unavailable.
    pub async fn post<B: Serialize + ?Sized, A: DeserializeOwned>(&self, path: &str, body: &B) -> Result<A, CallError> {
        self.post_retrying(path, body, 0).await
    }

    /// Like [`Self::post_json`], but an attempt that timed out or broke after it was sent is
    /// repeated up to `retries` times: only for idempotent calls. The breaker counts the call
    /// once, by its final outcome, so a slow first attempt that its retry rescues is not a
    /// failure. If a later attempt could not be sent, the error says an earlier one was.
    pub async fn post_retrying<B: Serialize + ?Sized, A: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retries: u32,
    ) -> Result<A, CallError> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| CallError::Unavailable {
            dependency: self.dependency,
            reason: format!("unwritable request: {e}"),
            sent: false,
        })?);
        if let Err(r) = self.breaker.try_acquire() {
            return Err(CallError::CircuitOpen { dependency: self.dependency, retry_after: r.retry_after });
        }
        // Whatever happens to this future, the breaker hears how the call ended: a call
        // dropped halfway counts as failed, so a half-open trial is never left hanging.
        let mut outcome = Outcome { breaker: &self.breaker, success: None };
        let mut sent_before = None;
        let mut attempt = 0;
        let mut start = None;
        let result = loop {
            let (result, at) = self.call(path, &body, start).await;
            match result {
                // A retry goes first to the next instance: the one that broke may just have died.
                Err(e @ CallError::Unavailable { sent: true, .. }) if attempt < retries => {
                    attempt += 1;
                    sent_before = Some(e);
                    start = Some(at + 1);
                }
                Err(e @ CallError::Unavailable { sent: false, .. }) => break Err(sent_before.take().unwrap_or(e)),
                other => break other,
            }
        };
        let result = result.and_then(|answer| {
            serde_json::from_slice(&answer).map_err(|e| CallError::Unavailable {
                dependency: self.dependency,
                reason: format!("unreadable answer: {e}"),
                sent: true,
            })
        });
        outcome.success = Some(!matches!(result, Err(CallError::Unavailable { .. })));
        result
    }

    /// Tries the instances from `start` (or the next in round-robin order) until one takes the
    /// request; returns its outcome and the index of the instance that gave it.
    async fn call(&self, path: &str, body: &Bytes, start: Option<usize>) -> (Result<Bytes, CallError>, usize) {
        let n = self.bases.len();
        let start = start.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let mut last = CallError::Unavailable {
            dependency: self.dependency,
            reason: "no instances configured".into(),
            sent: false,
        };
        for i in 0..n {
            let at = (start + i) % n;
            match self.call_one(&self.bases[at], path, body).await {
                Err(e @ CallError::Unavailable { sent: false, .. }) => last = e,
                other => return (other, at),
            }
        }
        (Err(last), start)
    }

    /// One attempt at one instance; a 2xx answer's body.
    async fn call_one(&self, base: &str, path: &str, body: &Bytes) -> Result<Bytes, CallError> {
        // The caller's span goes along as the parent of the dependency's server span.
        let mut headers = reqwest::header::HeaderMap::new();
        crate::trace::inject_http(&mut headers);
        let unavailable =
            |reason: String, sent: bool| CallError::Unavailable { dependency: self.dependency, reason, sent };
        let mut req = self.http.post(format!("{base}{path}")).headers(headers);
        if let Some(credential) = &self.credential {
            req = req.header(reqwest::header::AUTHORIZATION, credential.header());
        }
        let res = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                let sent = !e.is_connect();
                let reason =
                    if e.is_timeout() { format!("no answer within {:?}", self.timeout) } else { e.to_string() };
                unavailable(reason, sent)
            })?;
        let status = res.status();
        let answer = tokio::time::timeout(self.timeout, res.bytes())
            .await
            .map_err(|_| unavailable("body timed out".into(), true))?
            .map_err(|e| unavailable(format!("broken answer: {e}"), true))?;
        if status.is_success() {
            Ok(answer)
        } else if status.is_client_error() {
            /// What a refusal says: its problem+json `detail`, if any.
            #[derive(Deserialize)]
            struct Refusal {
                detail: Option<String>,
            }
            let detail = serde_json::from_slice::<Refusal>(&answer).ok().and_then(|r| r.detail);
            Err(CallError::Refused { dependency: self.dependency, status, detail })
        } else {
            Err(unavailable(format!("answered {status}"), true))
        }
    }
}

struct Outcome<'a> {
    breaker: &'a Breaker,
    success: Option<bool>,
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        self.breaker.record(self.success.unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Settings;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// An instance that takes each request and dies without answering, as one killed mid-call.
    async fn breaking_instance() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
            }
        });
        format!("http://{addr}")
    }

    async fn answering_instance() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let created = || async { (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"id": 1}))) };
        let app = axum::Router::new().route("/payments", axum::routing::post(created));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_retry_after_a_broken_attempt_goes_to_the_next_instance() {
        let bases = format!("{},{}", breaking_instance().await, answering_instance().await);
        let breaker = Arc::new(Breaker::new(Settings::default()));
        let client = ServiceClient::new("payment", &bases, Duration::from_secs(2), breaker);
        let body = serde_json::json!({"orderId": 1});
        // Two calls at once: the first starts at the breaking instance, the second takes the
        // next turn, so round-robin order alone would send the first one's retry back to it.
        let (first, second) = tokio::join!(
            client.post_retrying::<_, serde_json::Value>("/payments", &body, 1),
            client.post_retrying::<_, serde_json::Value>("/payments", &body, 1)
        );
        assert_eq!(first.expect("the retry reached the answering instance")["id"], 1);
        assert_eq!(second.expect("the second call's turn is the answering instance")["id"], 1);
    }
}
