use axum::http::Method;
use axum::Router;
use contracts::calls::RecordCancellation;
use contracts::events::DrinkChanged;
use contracts::{DrinkStatus, Event, Payload};
use platform::testing::{Answer, TestService};
use serde_json::json;

platform::test_app!(
    /// The delivery service under test, with the calls its tests make.
    pub TestApp
);

/// A fresh delivery service, answering as `delivery:8085`. The outbox relay is not started,
/// so what it raises stays in the outbox for [`TestService::raised`].
pub async fn spawn_app() -> TestApp {
    spawn_behind(platform::testing::signed::open).await
}

/// The service, its router wrapped in `guard` (which decides who is calling).
pub async fn spawn_behind(guard: impl FnOnce(Router) -> Router) -> TestApp {
    let start = |ctx| guard(delivery::start(ctx));
    TestApp(TestService::start(delivery::NAME, "delivery:8085", delivery::MIGRATIONS, start).await)
}

impl TestApp {
    pub async fn cancel_order(&self, order_id: i64) -> Answer {
        let call = serde_json::to_value(RecordCancellation { order_id }).unwrap();
        self.request(Method::POST, "/cancellations", Some(call)).await
    }

    pub async fn patch_status(&self, id: i64, status: &str) -> Answer {
        self.request(Method::PATCH, &format!("/deliveries/{id}"), Some(json!({ "status": status }))).await
    }

    pub fn made_event(order_id: i64) -> Event {
        let made = DrinkChanged {
            id: 900 + order_id,
            order_id,
            phone_number: "01012345678".into(),
            status: DrinkStatus::Made,
        };
        Event::new("drink", Payload::Made(made))
    }

    /// Order `order_id`'s drink is made: the id of the delivery that starts.
    pub async fn start(&self, order_id: i64) -> i64 {
        self.deliver(&[TestApp::made_event(order_id)]).await;
        let started = self.get(&format!("/deliveries/search/findByOrderId?orderId={order_id}")).await;
        started.body["id"].as_i64().expect("a delivery started")
    }

    /// What the service raised so far, in order.
    pub async fn raised_payloads(&self) -> Vec<Payload> {
        self.raised::<Payload>().await.into_iter().map(|e| e.payload).collect()
    }

    /// Hands `events` to the `Made` consumer as one batch, as the bus would.
    pub async fn deliver(&self, events: &[Event]) {
        self.consume(&delivery::events::StartDelivery::new(self.ctx.clone()), events).await;
    }
}
