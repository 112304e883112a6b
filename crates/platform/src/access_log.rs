//! The access log, in the original's pattern `%h %l %u %t "%r" %s %bbyte %Dms`, one file per
//! service under `<log-dir>/<service>/`, rolled daily, 30 days kept. Lines are handed to a
//! background task that writes whatever has queued up in one go: a request never waits on
//! the disk, and under load one write carries many lines. (A writer thread woken per line
//! spent more CPU than the requests it logged.)

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{Builder, RollingFileAppender, Rotation};

pub const KEEP_DAYS: usize = 30;

/// Lines waiting for the writer at most; past that, lines are dropped (and counted) rather
/// than held: a disk that cannot keep up must not take the memory with it.
const QUEUE: usize = 65_536;

#[derive(Clone)]
pub struct AccessLog {
    lines: tokio::sync::mpsc::Sender<String>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A daily-rolled appender keeping [`KEEP_DAYS`] files: `<dir>/<prefix>.YYYY-MM-DD.log`.
pub fn daily_file(dir: &Path, prefix: &str) -> std::io::Result<(NonBlocking, WorkerGuard)> {
    Ok(tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(daily_appender(dir, prefix)?))
}

fn daily_appender(dir: &Path, prefix: &str) -> std::io::Result<RollingFileAppender> {
    std::fs::create_dir_all(dir)?;
    Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(KEEP_DAYS)
        .build(dir)
        .map_err(std::io::Error::other)
}

impl AccessLog {
    /// Opens `<log_dir>/<service>/access.YYYY-MM-DD.log` and starts its writer task, which
    /// ends once every clone of the log is dropped and the queue is written.
    pub fn open(log_dir: &Path, service: &str) -> std::io::Result<(AccessLog, tokio::task::JoinHandle<()>)> {
        let mut file = daily_appender(&log_dir.join(service), "access")?;
        let (lines, mut queue) = tokio::sync::mpsc::channel::<String>(QUEUE);
        let writer = tokio::spawn(async move {
            let mut buf = String::with_capacity(64 * 1024);
            while let Some(line) = queue.recv().await {
                buf.push_str(&line);
                while buf.len() < 60 * 1024 {
                    match queue.try_recv() {
                        Ok(more) => buf.push_str(&more),
                        Err(_) => break,
                    }
                }
                // A small append to the page cache: cheaper than a hop to a blocking thread.
                let _ = file.write_all(buf.as_bytes());
                buf.clear();
            }
        });
        Ok((AccessLog { lines, dropped: Default::default() }, writer))
    }
}

const CLF: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");

pub async fn record(State(log): State<AccessLog>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let host =
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_else(|| "-".into());
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
    log.write(entry);
    res
}

impl AccessLog {
    /// Queues `entry` for the writer, or drops it if the queue is full (warning now and then).
    fn write(&self, entry: String) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = self.lines.try_send(entry) {
            let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "the access log cannot keep up; lines dropped");
            }
        }
    }
}
