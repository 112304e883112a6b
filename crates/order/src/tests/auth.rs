//! SPEC §9 for order, with real signed tokens: who may read, place and cancel which orders,
//! and prices from the menu. Every refusal leaves the orders as they were.

use axum::http::{Method, StatusCode};
use contracts::EventType;
use platform::testing::signed::{expect, Signed, Who};
use platform::testing::Answer;
use serde_json::{json, Value};

use super::{cancellation, down, payment, spawn_app, spawn_behind, stand_in, Calls, TestApp};
use Who::*;

const ANN: &str = "01011112222";
const BOB: &str = "01033334444";

struct Cafe {
    app: TestApp,
    signed: Signed,
    charged: Calls,
    recorded: Calls,
}

/// Order with auth on, payment approving every charge and delivery recording every
/// cancellation.
async fn cafe() -> Cafe {
    let (payment_base, charged) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let (delivery_base, recorded) = stand_in(vec![("/cancellations", StatusCode::CREATED, cancellation(1))]).await;
    let signed = Signed::new();
    let app = spawn_behind(&payment_base, &delivery_base, |router| signed.guard(router)).await;
    Cafe { app, signed, charged, recorded }
}

impl Cafe {
    async fn call(&self, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed.send(&self.app, who, method, uri, body).await
    }

    /// A latte for `phone`, placed by a manager: its id.
    async fn order_for(&self, phone: &str) -> i64 {
        let body = json!({"phoneNumber": phone, "productName": "latte", "qty": 1});
        let placed = self.call(Manager, Method::POST, "/orders", Some(body)).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
        placed.body["id"].as_i64().unwrap()
    }

    /// The ids of every order, as a manager lists them.
    async fn orders(&self) -> Vec<i64> {
        self.call(Manager, Method::GET, "/orders", None).await.listed("orders", "id")
    }
}

#[tokio::test]
async fn reading_orders_needs_a_sign_in_and_a_customer_sees_only_their_own() {
    let cafe = cafe().await;
    let (ann, bob) = (cafe.order_for(ANN).await, cafe.order_for(BOB).await);
    let everything = vec![ann, bob];
    // who, then the status of: the list, Ann's order, Bob's order; and the ids listed.
    for (who, statuses, listed) in [
        (Anonymous, [401, 401, 401], vec![]),
        (Customer(ANN), [200, 200, 404], vec![ann]),
        (Customer(BOB), [200, 404, 200], vec![bob]),
        (Barista, [200; 3], everything.clone()),
        (Rider, [200; 3], everything.clone()),
        (Manager, [200; 3], everything.clone()),
        (Service, [403; 3], vec![]),
    ] {
        let list = cafe.call(who, Method::GET, "/orders", None).await;
        expect(&list, statuses[0], &format!("{who:?} lists"));
        assert_eq!(list.listed("orders", "id"), listed, "{who:?} lists");
        if statuses[0] == 200 {
            assert_eq!(list.body["page"]["totalElements"], listed.len(), "{who:?} counts");
        }
        for (id, status) in [(ann, statuses[1]), (bob, statuses[2])] {
            expect(
                &cafe.call(who, Method::GET, &format!("/orders/{id}"), None).await,
                status,
                &format!("{who:?} reads {id}"),
            );
        }
    }
}

#[tokio::test]
async fn customers_and_managers_place_orders_and_no_one_else() {
    let cafe = cafe().await;
    let latte = json!({"productName": "latte", "qty": 1});
    let latte_for_bob = json!({"phoneNumber": BOB, "productName": "latte", "qty": 1});
    for (who, body, status) in [
        (Anonymous, &latte, 401),
        (Barista, &latte, 403),
        (Rider, &latte, 403),
        (Service, &latte_for_bob, 403),
        (Customer(ANN), &latte_for_bob, 403),
        (Manager, &latte, 400),
    ] {
        let answer = cafe.call(who, Method::POST, "/orders", Some(body.clone())).await;
        expect(&answer, status, &format!("{who:?} places {body}"));
        if status == 400 {
            assert_eq!(answer.body["errors"][0]["field"], "phoneNumber", "a manager says whose order it is");
        }
    }
    assert_eq!(cafe.orders().await, Vec::<i64>::new(), "nothing refused was placed");
    assert!(cafe.charged.lock().unwrap().is_empty(), "nor charged");

    for (who, body, phone) in [
        (Customer(ANN), json!({"productName": "latte", "qty": 1}), ANN),
        (Customer(ANN), json!({"phoneNumber": "010-1111-2222", "productName": "latte", "qty": 1}), ANN),
        (Manager, latte_for_bob, BOB),
    ] {
        let answer = cafe.call(who, Method::POST, "/orders", Some(body.clone())).await;
        expect(&answer, 201, &format!("{who:?} places {body}"));
        assert_eq!(answer.body["phoneNumber"], phone, "{who:?} places {body}");
    }
}

#[tokio::test]
async fn a_customer_cancels_only_their_own_orders_and_only_managers_cancel_anyones() {
    let cafe = cafe().await;
    let (ann, bob) = (cafe.order_for(ANN).await, cafe.order_for(BOB).await);
    let refused = [(Anonymous, 401), (Customer(BOB), 404), (Barista, 403), (Rider, 403), (Service, 403)];
    cafe.signed.check_table(&cafe.app, Method::DELETE, &format!("/orders/{ann}"), None, refused).await;
    assert_eq!(cafe.orders().await, [ann, bob], "every order is still there");
    assert!(cafe.recorded.lock().unwrap().is_empty(), "delivery was never asked");
    assert_eq!(cafe.app.raised_types().await, [EventType::Ordered, EventType::Ordered]);

    expect(&cafe.call(Customer(ANN), Method::DELETE, &format!("/orders/{ann}"), None).await, 204, "Ann cancels hers");
    expect(&cafe.call(Manager, Method::DELETE, &format!("/orders/{bob}"), None).await, 204, "a manager cancels Bob's");
    assert_eq!(cafe.orders().await, Vec::<i64>::new());
}

#[tokio::test]
async fn prices_come_from_the_menu_and_a_sent_amt_must_agree() {
    let cafe = cafe().await;
    let place = |body: Value| cafe.call(Customer(ANN), Method::POST, "/orders", Some(body));

    let placed = place(json!({"productName": " Latte ", "qty": 2})).await;
    expect(&placed, 201, "a latte, no amt");
    assert_eq!((&placed.body["productName"], &placed.body["amt"]), (&json!("latte"), &json!(9000)));
    assert_eq!(cafe.charged.lock().unwrap()[0].1, json!({"orderId": 1, "phoneNumber": ANN, "amt": 9000}));
    expect(&place(json!({"productName": "americano", "qty": 3, "amt": 12000})).await, 201, "an amt that agrees");

    for (body, field) in [
        (json!({"productName": "caviar", "qty": 1}), "productName"),
        (json!({"productName": "caviar", "qty": 1, "amt": 100}), "productName"),
        (json!({"productName": "latte", "qty": 2, "amt": 100}), "amt"),
        (json!({"productName": "latte", "qty": 2, "amt": 0}), "amt"),
    ] {
        let refused = place(body.clone()).await;
        expect(&refused, 422, &body.to_string());
        assert_eq!(refused.body["errors"][0]["field"], field, "{body}");
    }
    let refused = place(json!({"productName": "latte", "qty": 0, "amt": "9000"})).await;
    expect(&refused, 400, "malformed fields");
    assert_eq!(refused.body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(cafe.orders().await, [1, 2], "only the priced orders were placed");
}

#[tokio::test]
async fn the_menu_is_open_to_everyone() {
    let cafe = cafe().await;
    for who in [Anonymous, Customer(ANN), Barista, Rider, Manager, Service] {
        let menu = cafe.call(who, Method::GET, "/menu", None).await;
        expect(&menu, 200, &format!("{who:?}"));
        let items = menu.body["_embedded"]["menu"].as_array().unwrap();
        assert!(items.contains(&json!({"productName": "latte", "price": 4500})), "{who:?}: {items:?}");
        assert_eq!(menu.body["_links"]["self"]["href"], "http://order:8081/menu");
    }
}

#[tokio::test]
async fn with_auth_off_the_client_still_sends_amt_for_any_product() {
    let (payment_base, _) = stand_in(vec![("/payments", StatusCode::CREATED, payment(4, 1, "Approved"))]).await;
    let app = spawn_app(&payment_base, &down().await).await;
    let body = json!({"phoneNumber": "010-1234-5678", "productName": "caviar", "qty": 1, "amt": 1});
    let placed = app.request(Method::POST, "/orders", Some(body)).await;
    assert_eq!((placed.status, &placed.body["amt"]), (StatusCode::CREATED, &json!(1)));
    let refused = app
        .request(
            Method::POST,
            "/orders",
            Some(json!({"phoneNumber": "010-1234-5678", "productName": "latte", "qty": 1})),
        )
        .await;
    assert_eq!((refused.status, &refused.body["errors"][0]["field"]), (StatusCode::BAD_REQUEST, &json!("amt")));
    assert_eq!(app.get("/menu").await.status, StatusCode::OK);
}
