//! Application logs: to stderr, to `<log-dir>/cafe/cafe.YYYY-MM-DD.log` (everything), and to
//! `<log-dir>/<service>/<service>.YYYY-MM-DD.log` (that service's own crate), rolled daily
//! and kept 30 days. `RUST_LOG` filters (default `info`).

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::access_log::daily_file;

/// Installs the global subscriber. `process` names the combined log (`cafe` for the
/// all-in-one, the service name for `cafe serve`). Keep the guards until exit.
pub fn init(log_dir: &Path, process: &str, services: &[&'static str]) -> std::io::Result<Vec<WorkerGuard>> {
    let mut guards = Vec::new();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let env = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));

    layers.push(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(env()).boxed());

    let (w, g) = daily_file(&log_dir.join(process), process)?;
    guards.push(g);
    layers.push(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(w).with_filter(env()).boxed());

    for &svc in services {
        if svc == process {
            continue;
        }
        let (w, g) = daily_file(&log_dir.join(svc), svc)?;
        guards.push(g);
        let only_svc = filter_fn(move |meta| meta.target().split("::").next() == Some(svc));
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(w)
                .with_filter(only_svc)
                .with_filter(env())
                .boxed(),
        );
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(guards)
}
