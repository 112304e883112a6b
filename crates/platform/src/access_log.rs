//! The access log, in the original's pattern `%h %l %u %t "%r" %s %bbyte %Dms`, one file per
//! service under `<log-dir>/<service>/`, rolled daily, 30 days kept. Lines are handed to a
//! background writer so a slow disk never slows a request.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{Builder, Rotation};

pub const KEEP_DAYS: usize = 30;

#[derive(Clone)]
pub struct AccessLog {
    writer: NonBlocking,
}

/// A daily-rolled appender keeping [`KEEP_DAYS`] files: `<dir>/<prefix>.YYYY-MM-DD.log`.
pub fn daily_file(dir: &Path, prefix: &str) -> std::io::Result<(NonBlocking, WorkerGuard)> {
    std::fs::create_dir_all(dir)?;
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(KEEP_DAYS)
        .build(dir)
        .map_err(std::io::Error::other)?;
    Ok(tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(appender))
}

impl AccessLog {
    /// Opens `<log_dir>/<service>/access.YYYY-MM-DD.log`. Keep the guard until exit.
    pub fn open(log_dir: &Path, service: &str) -> std::io::Result<(AccessLog, WorkerGuard)> {
        let (writer, guard) = daily_file(&log_dir.join(service), "access")?;
        Ok((AccessLog { writer }, guard))
    }
}

const CLF: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
);

pub async fn record(State(log): State<AccessLog>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let host = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "-".into());
    let line = format!(
        "{} {} {:?}",
        req.method(),
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        req.version()
    );
    let res = next.run(req).await;
    let bytes = match res.body().size_hint().exact() {
        Some(n) => n.to_string(),
        None => res
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string(),
    };
    let when = time::OffsetDateTime::now_utc().format(CLF).unwrap_or_default();
    let entry = format!(
        "{host} - - [{when}] \"{line}\" {} {bytes}byte {}ms\n",
        res.status().as_u16(),
        started.elapsed().as_millis()
    );
    let _ = log.writer.clone().write_all(entry.as_bytes());
    res
}
