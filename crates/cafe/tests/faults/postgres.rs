//! PostgreSQL restarts under a loaded cluster: a server of the test's own (never the
//! machine's, which other tests share) stops at once (`pg_ctl stop -m immediate`, as a crash
//! would), so every service loses its database in the middle of its work. Meanwhile placing
//! an order answers 503 with `Retry-After` (problem+json) within a few seconds, never a 500
//! and never a hang; once the server is back the same processes serve again, and every order
//! acknowledged before, during or after is paid, made and shown exactly once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    check_infra, cluster::free_port_range, eventually, require, spawn_cluster_on, Infra, Load, Rng, NATS_ADDR,
};
use crate::{missing, ms, run};

/// How long the database stays down after the first refusal: long enough for every
/// service's pooled connections, relays and consumers to meet it.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The longest a client may wait for its answer while the database is down.
const PROMPTLY: Duration = Duration::from_secs(7);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_costs_prompt_503s_and_no_order_is_lost_or_doubled() {
    let _alone = crate::one_at_a_time().await;
    let Some(bin) = PostgresBin::find() else { return };
    let mut needs = missing(false, &["runuser", "psql"]);
    if check_infra(&[NATS_ADDR], false) != Ok(true) {
        needs.push(format!("NATS at {NATS_ADDR}"));
    }
    if !require("the PostgreSQL restart test", &needs) {
        return;
    }
    let postgres = PrivatePostgres::start(bin).await;
    let infra = Infra { postgres_url: postgres.url(), ..Infra::shared() };
    let app = Arc::new(spawn_cluster_on(infra, &[], &[("CAFE_SETTLE_AFTER_MS", "1000")]).await);
    let pids: Vec<u32> = app.instances().iter().map(|i| i.pid).collect();

    let load = Load {
        clients: 4,
        orders: u64::MAX,
        give_up: Duration::from_secs(150),
        retry: Duration::from_millis(100),
        barista_pause: Duration::from_millis(200),
        think_ms: 200,
        cancel_one_in: 0,
    }
    .start(&app, &mut Rng::seeded(0x9057_9e55));
    load.until_placed(30, Duration::from_secs(60), "stopping PostgreSQL").await;

    let stopped_at = Instant::now();
    postgres.stop_immediately().await;
    eprintln!("PostgreSQL stopped after {} orders", load.placed());
    let refused = eventually(Duration::from_secs(30), async || load.first_since(stopped_at, 503))
        .await
        .unwrap_or_else(|t| panic!("no 503 for POST /orders without PostgreSQL: {t:?}\n{}", app.stderr_tail()));
    eprintln!("first 503 {} ms after PostgreSQL stopped: {}", ms(refused.came() - stopped_at), refused.text);
    eventually(DOWN_FOR + Duration::from_secs(5), async || (refused.came().elapsed() >= DOWN_FOR).then_some(()))
        .await
        .expect("time passes");

    let placed_when_down = load.placed();
    postgres.start_again().await;
    let back_at = Instant::now();
    let first = eventually(Duration::from_secs(60), async || load.first_since(back_at, 201))
        .await
        .unwrap_or_else(|t| panic!("no 201 after PostgreSQL came back: {t:?}\n{}", app.stderr_tail()));
    eprintln!("recovery: PostgreSQL back → first 201 in {} ms", ms(first.came() - back_at));
    load.until_placed(placed_when_down + 30, Duration::from_secs(60), "stopping the load").await;
    let placed = load.stop().await;

    let during: Vec<_> = placed.answers.iter().filter(|a| a.sent >= stopped_at && a.sent < back_at).collect();
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!("{} attempts while PostgreSQL was down, the slowest answered in {} ms", during.len(), ms(slowest));
    let wrong: Vec<String> = placed
        .answers
        .iter()
        .filter(|a| !(a.status == Some(201) || a.status == Some(503) && a.retry_later) || a.took > PROMPTLY)
        .map(|a| format!("{:?} after {} ms: {}", a.status, ms(a.took), a.text))
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than 201 or a prompt 503 with Retry-After (problem+json):\n{}",
        wrong.join("\n")
    );

    let took = crate::settle(&app, Duration::from_secs(90)).await;
    eprintln!("settled {} ms after the load stopped", ms(took));
    crate::assert_none_lost(&app, &placed).await;
    let now: Vec<u32> = app.instances().iter().map(|i| i.pid).collect();
    assert_eq!(now, pids, "a service process was restarted: it should have waited for its database");
}

/// The PostgreSQL server programs (`initdb`, `pg_ctl`), of the version `pg_ctl` on the
/// path is.
struct PostgresBin(PathBuf);

impl PostgresBin {
    /// `None` (the test skipped, or failed under CI) when they are not installed.
    fn find() -> Option<PostgresBin> {
        let dirs = ["/usr/local/bin/pg_ctl", "/usr/bin/pg_ctl"]
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok()?.parent().map(Path::to_path_buf))
            .chain(
                std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .filter_map(|d| Some(d.ok()?.path().join("bin"))),
            );
        let found = dirs.into_iter().find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists());
        if found.is_none() {
            require("the PostgreSQL restart test", &["the PostgreSQL server programs (initdb, pg_ctl)".into()]);
        }
        found.map(PostgresBin)
    }
}

/// A PostgreSQL server of the test's own: a fresh cluster (`initdb`, trust authentication)
/// on a free port of 127.0.0.1. Stopped and removed on drop, whatever happened (after the
/// cafe on it is gone: declare it before the cafe).
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    async fn start(bin: PostgresBin) -> PrivatePostgres {
        let dir = tempfile::Builder::new().prefix("cafe-faults-pg-").tempdir().expect("temp dir");
        // PostgreSQL refuses to run as root: as root, its files and processes are the
        // `postgres` user's.
        if crate::is_root() {
            run("chown", &["postgres:postgres", dir.path().to_str().expect("a UTF-8 path")]);
        }
        let pg = PrivatePostgres { bin: bin.0, dir, port: free_port_range(1) };
        let initdb = ["-D", &pg.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"];
        pg.pg("initdb", initdb.map(String::from).to_vec()).await;
        pg.start_again().await;
        eprintln!("PostgreSQL of the test's own on 127.0.0.1:{}", pg.port);
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Starts the server again and waits until it accepts connections.
    async fn start_again(&self) {
        self.pg("pg_ctl", self.start_args()).await;
    }

    /// Stops the server at once, as a crash would: its processes quit without a checkpoint,
    /// and the next start recovers from the log.
    async fn stop_immediately(&self) {
        self.pg("pg_ctl", vec!["-D".into(), self.data(), "-m".into(), "immediate".into(), "-w".into(), "stop".into()])
            .await;
    }

    /// `pg_ctl start`, waiting until the server accepts connections (`-w`).
    fn start_args(&self) -> Vec<String> {
        // No fsync: only the machine crashing would lose what it has not flushed, and this
        // test crashes the server, not the machine. Sockets in its own directory.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").to_string_lossy().into_owned();
        ["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"].map(String::from).to_vec()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if crate::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Runs a server program to its end, without holding up the test's runtime (whose two
    /// threads serve the load meanwhile); panics unless it succeeds.
    async fn pg(&self, program: &str, args: Vec<String>) {
        let mut cmd = tokio::process::Command::from(self.command(program, &[]));
        cmd.args(&args);
        let out = cmd.output().await.unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        if Path::new(&data).join("postmaster.pid").exists() {
            let stop = self.command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]).output();
            if !stop.is_ok_and(|o| o.status.success()) {
                eprintln!("cleaning up: could not stop the test's PostgreSQL in {data}");
            }
        }
    }
}
