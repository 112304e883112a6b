use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use platform::embedded::EmbeddedBus;
use platform::outbox::{handle_batch, Outbox};
use platform::{Ctx, Db, Event, EventBus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub struct TestApp {
    pub ctx: Ctx,
    pub bus: Arc<EmbeddedBus>,
    router: Router,
    dir: PathBuf,
}

pub async fn spawn_app() -> TestApp {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("deliverycenter-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::sqlite_file(&dir, "deliverycenter").await.expect("test database");
    db.migrate(deliverycenter::MIGRATIONS).await.expect("migrations");
    let bus = Arc::new(EmbeddedBus::open(&dir).await.expect("test bus"));
    let ctx = Ctx {
        service: deliverycenter::NAME,
        group: "deliverycenter".into(),
        db,
        bus: bus.clone(),
        outbox: Outbox::default(),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    let router = deliverycenter::start(ctx.clone());
    TestApp { ctx, bus, router, dir }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.ctx.cancel.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn get(&self, uri: &str) -> Answer {
        let req = Request::builder().uri(uri).header("host", "deliverycenter:8086").body(Body::empty()).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// Hands `events` to the view's consumer as one batch, as the bus would.
    pub async fn consume(&self, events: &[Event]) {
        handle_batch(&self.ctx.db, &self.ctx.outbox, &deliverycenter::events::UpdateDeliveryPage, events)
            .await
            .expect("batch handled");
    }

    pub async fn publish(&self, events: &[Event]) {
        let batch: Vec<_> = events.iter().map(Into::into).collect();
        self.bus.publish(&batch).await.unwrap();
    }

    /// Polls `uri` until `done` holds for its answer, for at most five seconds.
    pub async fn eventually(&self, uri: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let a = self.get(uri).await;
            if done(&a) || tokio::time::Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
