//! Application logs: to stderr, to `<log-dir>/<process>/<process>.YYYY-MM-DD.log` (everything),
//! and to `<log-dir>/<service>/<service>.YYYY-MM-DD.log` (that service's own crate), rolled
//! daily and kept 30 days. `RUST_LOG` filters (default `info`).
//!
//! One filter sits on the whole subscriber, and the per-service files are chosen by the
//! writer from each event's target, not by per-layer filters: per-layer filters can drop
//! the next event on a thread after a library asks whether a level is enabled without
//! logging (tokio-rs/tracing#2519), and lost log lines are worse than no log at all.

use std::io;
use std::path::Path;

use tracing::Metadata;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::access_log::daily_file;

/// Routes an event to its service's file by the first segment of its target (the crate).
struct ByService {
    files: Vec<(&'static str, NonBlocking)>,
}

impl<'a> MakeWriter<'a> for ByService {
    type Writer = EitherWriter<NonBlocking, io::Sink>;

    fn make_writer(&'a self) -> Self::Writer {
        EitherWriter::B(io::sink())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let head = meta.target().split("::").next();
        match self.files.iter().find(|(svc, _)| Some(*svc) == head) {
            Some((_, w)) => EitherWriter::A(w.clone()),
            None => EitherWriter::B(io::sink()),
        }
    }
}

/// Installs the global subscriber. `process` names the combined log (`cafe` for the
/// all-in-one, the service name for `cafe serve`). Keep the guards until exit.
pub fn init(log_dir: &Path, process: &str, services: &[&'static str]) -> io::Result<Vec<WorkerGuard>> {
    let mut guards = Vec::new();
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));

    let (all, g) = daily_file(&log_dir.join(process), process)?;
    guards.push(g);
    let mut files = Vec::new();
    for &svc in services.iter().filter(|s| **s != process) {
        let (w, g) = daily_file(&log_dir.join(svc), svc)?;
        guards.push(g);
        files.push((svc, w));
    }
    let per_service =
        (!files.is_empty()).then(|| tracing_subscriber::fmt::layer().with_ansi(false).with_writer(ByService { files }));
    let _ = tracing_subscriber::registry()
        .with(env)
        .with(tracing_subscriber::fmt::layer().with_writer(io::stderr))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(all))
        .with(per_service)
        .try_init();
    Ok(guards)
}
