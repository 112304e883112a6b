//! SPEC §9 for drink, with real signed tokens: baristas and managers see and make the
//! drinks, no one else; a refused change leaves the drink as it was.

use axum::http::{header, Method};
use platform::testing::Answer;
use serde_json::{json, Value};

use super::{ordered, spawn_behind, TestApp};
use platform::testing::signed::{Signed, Who};
use Who::*;

const EVERYONE: [Who; 6] = [Anonymous, Customer("01012345678"), Barista, Rider, Manager, Service];

struct Cafe {
    app: TestApp,
    signed: Signed,
}

impl Cafe {
    async fn call(&self, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed.act_as(who);
        self.app.request(method, uri, body).await
    }
}

/// Drink with auth on, and one drink received (id 1, for order 1).
async fn cafe() -> Cafe {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    app.deliver(ordered(1)).await;
    Cafe { app, signed }
}

/// What `who` is answered when the route is for baristas and managers: `allowed` or a refusal.
fn barista_route(who: Who, allowed: u16) -> u16 {
    match who {
        Barista | Manager => allowed,
        Anonymous => 401,
        _ => 403,
    }
}

/// `answer` has `status`; a 401 also challenges for a bearer token.
fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
    if status == 401 {
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{what}");
    }
}

#[tokio::test]
async fn only_baristas_and_managers_see_the_drinks_and_the_queue() {
    let cafe = cafe().await;
    for who in EVERYONE {
        for uri in ["/drinks", "/drinks/1", "/orderinfos", "/orderinfos/1"] {
            let answer = cafe.call(who, Method::GET, uri, None).await;
            expect(&answer, barista_route(who, 200), &format!("{who:?} reads {uri}"));
        }
    }
}

#[tokio::test]
async fn only_baristas_and_managers_change_a_drink_and_a_refusal_changes_nothing() {
    let cafe = cafe().await;
    let received = cafe.app.raised_types().await;
    for who in EVERYONE.into_iter().filter(|who| !matches!(who, Barista | Manager)) {
        let answer = cafe.call(who, Method::PATCH, "/drinks/1", Some(json!({"status": "Made"}))).await;
        expect(&answer, barista_route(who, 200), &format!("{who:?} makes it"));
    }
    let drink = cafe.call(Manager, Method::GET, "/drinks/1", None).await;
    assert_eq!(drink.body["status"], "Received", "the drink is as it was");
    assert_eq!(cafe.app.raised_types().await, received, "and nothing was raised");

    for (who, status) in [(Barista, "Receipted"), (Manager, "Made")] {
        let answer = cafe.call(who, Method::PATCH, "/drinks/1", Some(json!({ "status": status }))).await;
        expect(&answer, 200, &format!("{who:?} marks it {status}"));
        assert_eq!(answer.body["status"], status);
    }
}
