use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use platform::embedded::EmbeddedBus;
use platform::outbox::{handle_batch, Outbox};
use platform::{Ctx, Db, Event, EventBus};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub struct TestApp {
    pub ctx: Ctx,
    pub bus: Arc<EmbeddedBus>,
    router: Router,
    dir: PathBuf,
}

/// A fresh delivery service. The outbox relay is not started, so what it raises stays in
/// the outbox for [`TestApp::raised`].
pub async fn spawn_app() -> TestApp {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("delivery-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::sqlite_file(&dir, "delivery").await.expect("test database");
    db.migrate(delivery::MIGRATIONS).await.expect("migrations");
    let bus = Arc::new(EmbeddedBus::open(&dir).await.expect("test bus"));
    let ctx = Ctx {
        service: delivery::NAME,
        group: "delivery".into(),
        db,
        bus: bus.clone(),
        outbox: Outbox::default(),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    let router = delivery::start(ctx.clone());
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
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri).header("host", "delivery:8085");
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let res = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    pub async fn cancel_order(&self, order_id: i64) -> Answer {
        self.call(Method::POST, "/cancellations", Some(json!({ "orderId": order_id }))).await
    }

    pub async fn patch_status(&self, id: i64, status: &str) -> Answer {
        self.call(Method::PATCH, &format!("/deliveries/{id}"), Some(json!({ "status": status }))).await
    }

    pub fn made_event(order_id: i64) -> Event {
        Event::new("drink", "Made", &json!({ "id": 900 + order_id, "orderId": order_id, "phoneNumber": "01012345678", "status": "Made" }))
    }

    /// Hands `events` to the `Made` consumer as one batch, as the bus would.
    pub async fn consume(&self, events: &[Event]) {
        let handler = delivery::events::StartDelivery::new(self.ctx.clone());
        handle_batch(&self.ctx.db, &self.ctx.outbox, &handler, events).await.expect("batch handled");
    }

    /// Events raised so far, in order: (type, JSON).
    pub async fn raised(&self) -> Vec<(String, Value)> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT event_type, body FROM outbox ORDER BY seq")
            .fetch_all(&self.ctx.db.pool)
            .await
            .unwrap();
        rows.into_iter().map(|(t, b)| (t, serde_json::from_str(&b).unwrap())).collect()
    }

    /// Publishes to the bus the consumer started by `delivery::start` listens to.
    pub async fn publish(&self, event: &Event) {
        self.bus.publish(&[event.into()]).await.unwrap();
    }

    /// Polls `uri` until it answers 200, for at most five seconds.
    pub async fn eventually_get(&self, uri: &str) -> Answer {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let a = self.get(uri).await;
            if a.status == StatusCode::OK || tokio::time::Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
