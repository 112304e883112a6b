//! SPEC §9 for drink, with real signed tokens: baristas and managers see and make the
//! drinks, no one else; a refused change leaves the drink as it was.

use axum::http::Method;
use platform::testing::signed::{answers, expect, refusals, Guarded, Signed, Who};
use serde_json::json;

use super::{ordered, spawn_behind, TestApp};
use Who::*;

const BARISTAS: &[Who] = &[Barista, Manager];

type Cafe = Guarded<TestApp>;

/// Drink with auth on, and one drink received (id 1, for order 1).
async fn cafe() -> Cafe {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    app.deliver(ordered(1)).await;
    Cafe { app, signed }
}

#[tokio::test]
async fn only_baristas_and_managers_see_the_drinks_and_the_queue() {
    let cafe = cafe().await;
    for uri in ["/drinks", "/drinks/1", "/orderinfos", "/orderinfos/1"] {
        cafe.check_table(Method::GET, uri, None, answers(Who::EVERYONE, BARISTAS, 200)).await;
    }
}

#[tokio::test]
async fn only_baristas_and_managers_change_a_drink_and_a_refusal_changes_nothing() {
    let cafe = cafe().await;
    let received = cafe.app.raised_types().await;
    let made = json!({"status": "Made"});
    let refused = refusals(Who::EVERYONE, BARISTAS);
    cafe.check_table(Method::PATCH, "/drinks/1", Some(&made), refused).await;
    let drink = cafe.call(Manager, Method::GET, "/drinks/1", None).await;
    assert_eq!(drink.body["status"], "Received", "the drink is as it was");
    assert_eq!(cafe.app.raised_types().await, received, "and nothing was raised");

    for (who, status) in [(Barista, "Receipted"), (Manager, "Made")] {
        let answer = cafe.call(who, Method::PATCH, "/drinks/1", Some(json!({ "status": status }))).await;
        expect(&answer, 200, &format!("{who:?} marks it {status}"));
        assert_eq!(answer.body["status"], status);
    }
}
