//! The disk fills up under the all-in-one cafe (`cafe up` as a child process, its data on a
//! small tmpfs of the test's own, its logs elsewhere): while it is full, placing an order
//! answers 503 with `Retry-After` (problem+json, never a 500) and half-made placements are
//! settled later, not left; once space is freed, the same process serves again, and every
//! order it acknowledged is paid, made and shown exactly once. Every database file passes
//! SQLite's integrity check after.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{require, spawn_process_on, Load, Rng};
use crate::{missing, ms, run, run_quietly};

/// Room for the cafe's databases with their write-ahead logs, and little more: the filler
/// takes whatever is left.
const TMPFS_MB: u32 = 48;
/// How long the disk stays full after the first refusal: long enough for every service's
/// writes, the relays and the consumers to meet it.
const FULL_FOR: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_once_freed_the_same_cafe_settles_every_acknowledged_order() {
    let _alone = crate::one_at_a_time().await;
    if !require("the disk-full test", &missing(true, &["mount", "umount"])) {
        return;
    }
    let disk = Tmpfs::mount(TMPFS_MB);
    // No rate limit: the clients retry quickly while the disk is full, and a 429 is not what
    // this test is about.
    let app = spawn_process_on(&disk.path().join("data"), &["--rate-limit", "0"], &[]).await;
    let app = Arc::new(app);
    let pid = app.pid();

    let load = Load {
        clients: 4,
        orders: u64::MAX,
        give_up: Duration::from_secs(150),
        retry: Duration::from_millis(50),
        barista_pause: Duration::from_millis(100),
        think_ms: 100,
        cancel_one_in: 0,
    }
    .start(&app, &mut Rng::seeded(0xd15c_f011));
    load.until_placed(30, Duration::from_secs(30), "filling the disk").await;

    let filled_at = Instant::now();
    let filler = disk.fill().await;
    eprintln!("disk full: {filler} bytes of filler after {} orders", load.placed());
    let refused = crate::common::eventually(Duration::from_secs(30), async || load.first_since(filled_at, 503))
        .await
        .unwrap_or_else(|t| panic!("no 503 for POST /orders on a full disk: {t:?}\n{}", app.stderr_tail()));
    eprintln!("first 503 {} ms after the disk filled: {}", ms(refused.came() - filled_at), refused.text);
    // Reads need no room: they go on answering (or say to retry, never a 500).
    let read = app.get("/orders?size=5").await;
    assert!(matches!(read.status.as_u16(), 200 | 503), "GET /orders on a full disk: {} {}", read.status, read.text);
    crate::common::eventually(FULL_FOR + Duration::from_secs(5), async || {
        (refused.came().elapsed() >= FULL_FOR).then_some(())
    })
    .await
    .expect("time passes");

    let placed_when_full = load.placed();
    let freed_at = Instant::now();
    disk.free().await;
    let first = crate::common::eventually(Duration::from_secs(60), async || load.first_since(freed_at, 201))
        .await
        .unwrap_or_else(|t| panic!("no 201 after the disk was freed: {t:?}\n{}", app.stderr_tail()));
    eprintln!("recovery: disk freed → first 201 in {} ms", ms(first.came() - freed_at));
    load.until_placed(placed_when_full + 30, Duration::from_secs(60), "stopping the load").await;
    let placed = load.stop().await;

    assert_eq!(app.pid(), pid, "the cafe was restarted");
    let refusals = placed.answers.iter().filter(|a| a.status == Some(503)).count();
    let wrong: Vec<String> = placed
        .answers
        .iter()
        .filter(|a| !(a.status == Some(201) || a.status == Some(503) && a.retry_later))
        .map(|a| format!("{:?} after {} ms: {}", a.status, ms(a.took), a.text))
        .collect();
    eprintln!("{} attempts: {} refused with 503, {} otherwise wrong", placed.answers.len(), refusals, wrong.len());
    assert!(wrong.is_empty(), "answers other than 201 or 503 with Retry-After (problem+json):\n{}", wrong.join("\n"));

    let took = crate::settle(&app, Duration::from_secs(60)).await;
    eprintln!("settled {} ms after the load stopped", ms(took));
    crate::assert_none_lost(&app, &placed).await;
    assert_eq!(app.pid(), pid, "the cafe was restarted");
    for db in databases(&disk.path().join("data")) {
        assert_intact(&db).await;
    }
}

/// Every SQLite database under `dir`.
fn databases(dir: &Path) -> Vec<PathBuf> {
    let files = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut dbs: Vec<PathBuf> =
        files.filter_map(|f| Some(f.ok()?.path())).filter(|p| p.extension().is_some_and(|e| e == "db")).collect();
    dbs.sort();
    assert!(dbs.len() >= 7, "the services' databases in {}: {dbs:?}", dir.display());
    dbs
}

/// SQLite's own integrity check of `db`, read-only beside the running cafe, says "ok".
async fn assert_intact(db: &Path) {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let conn = platform::db::Db::connect(&url).await.unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(conn.pool())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    assert_eq!(check, ["ok"], "{} is damaged", db.display());
    conn.pool().close().await;
}

/// A tmpfs of its own, mounted on a fresh directory; unmounted and removed on drop, whatever
/// happened (after the cafe on it is gone: declare it before the cafe).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mb: u32) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("cafe-faults-disk-").tempdir().expect("temp dir");
        let path = dir.path().to_str().expect("a UTF-8 path");
        run("mount", &["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700"), "tmpfs", path]);
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Writes a file until the file system is full (`ENOSPC`); how many bytes it took.
    async fn fill(&self) -> u64 {
        let filler = self.filler();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::create(&filler).expect("the filler file");
            let chunk = vec![0xa5u8; 1 << 20];
            let mut written = 0u64;
            loop {
                match file.write(&chunk) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", filler.display()),
                }
            }
            written
        })
        .await
        .expect("the filling thread")
    }

    /// Deletes the filler: the space is back.
    async fn free(&self) {
        let filler = self.filler();
        tokio::task::spawn_blocking(move || std::fs::remove_file(&filler))
            .await
            .expect("the freeing thread")
            .expect("the filler removed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path().to_string_lossy().into_owned();
        // Lazily if something still holds a file there: it is detached now and freed when
        // the last holder goes.
        if !run_quietly("umount", &[&path]) {
            run_quietly("umount", &["-l", &path]);
        }
    }
}
