//! Application logs: to stderr, to `<log-dir>/<process>/<process>.YYYY-MM-DD.log` (everything),
//! and to `<log-dir>/<service>/<service>.YYYY-MM-DD.log` (that service's own crate), rolled
//! daily and kept 30 days. `RUST_LOG` filters (default `info`).
//!
//! One filter sits on the whole subscriber, and the per-service files are chosen by the
//! writer from each event's target, not by per-layer filters: per-layer filters can drop
//! the next event on a thread after a library asks whether a level is enabled without
//! logging (tokio-rs/tracing#2519), and lost log lines are worse than no log at all.
//!
//! With an OTLP endpoint the same subscriber also makes the spans of traces and exports them
//! ([`crate::trace`]); their target is enabled whatever `RUST_LOG` says.

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

/// Installs the global subscriber, and the W3C propagator. `process` names the combined log
/// (`cafe` for the all-in-one, the service name for `cafe serve`). With `otlp_endpoint`,
/// spans are exported there (see [`crate::trace::layer`]). Keep the guards until exit.
pub fn init(
    log_dir: &Path,
    process: &str,
    services: &[&'static str],
    otlp_endpoint: Option<&str>,
) -> io::Result<Vec<WorkerGuard>> {
    crate::trace::propagate_w3c();
    let mut guards = Vec::new();
    let mut env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let traces = match otlp_endpoint {
        Some(endpoint) => crate::trace::layer(endpoint, process)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
        None => None,
    };
    let exporting = traces.is_some();
    if exporting {
        env = env.add_directive(format!("{}=info", crate::trace::SPANS).parse().expect("a valid directive"));
    }

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
        .with(traces)
        .with(tracing_subscriber::fmt::layer().with_writer(io::stderr))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(all))
        .with(per_service)
        .try_init();
    if let (true, Some(endpoint)) = (exporting, otlp_endpoint) {
        tracing::info!(endpoint, "exporting traces");
    }
    Ok(guards)
}
