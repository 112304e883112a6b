//! Every error of SPEC §3 on every write endpoint, through the gateway: each answer is
//! problem+json with `type`/`title`/`status`/`detail`, never a 500, and changes nothing.

use contracts::ServiceName;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, id, order_body, TestApp};

in_both_modes!(
    bad_bodies_are_refused_with_a_problem_naming_each_field_and_change_nothing,
    unknown_ids_wrong_methods_and_bad_paging_are_refused_and_change_nothing,
    the_bounds_of_each_field_are_accepted,
    illegal_state_changes_are_conflicts_and_change_nothing,
    a_service_down_answers_503_with_retry_after_and_leaves_nothing_half_made,
    the_admin_switch_answers_a_404_problem_for_an_unknown_service_or_action,
);

/// The ids and statuses of everything that a bad request could have changed.
async fn snapshot(app: &TestApp) -> Value {
    let mut out = serde_json::Map::new();
    for collection in ["orders", "payments", "drinks", "deliveries", "cancellations"] {
        let rows: Vec<Value> =
            app.all(collection).await.iter().map(|r| json!([r["id"], r["orderId"], r["status"]])).collect();
        out.insert(collection.into(), Value::Array(rows));
    }
    Value::Object(out)
}

/// Asserts a 400 problem that names every one of `fields` (in `errors[].field` or the detail).
#[track_caller]
fn expect_fields_named(r: &crate::common::Reply, fields: &[&str], what: &str) {
    let p = r.expect_problem(400, what);
    let named: Vec<String> = p["errors"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["field"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    let detail = p["detail"].as_str().unwrap_or_default();
    for f in fields {
        assert!(named.iter().any(|n| n == f) || detail.contains(f), "{what}: field {f} not named in {}", r.text);
    }
}

/// A settled system with one order of each kind a bad request could touch: a drink still
/// Received, and a drink Made whose delivery has started.
struct Fixture {
    received_order: i64,
    received_drink: i64,
    delivery: i64,
    payment: i64,
}

async fn fixture(app: &TestApp) -> Fixture {
    let order = app.place_order().await;
    let drink = app.drink_for(id(&order)).await;
    let (_, _, delivery) = app.order_made_and_started().await;
    let payment = app.find_one("payments", id(&order)).await.expect("a payment");
    // Let the views catch up, so the snapshot holds still.
    app.wait_for_status("deliverypages", delivery["orderId"].as_i64().unwrap(), "Delivery Started").await;
    Fixture { received_order: id(&order), received_drink: id(&drink), delivery: id(&delivery), payment: id(&payment) }
}

async fn bad_bodies_are_refused_with_a_problem_naming_each_field_and_change_nothing(app: TestApp) {
    let fx = fixture(&app).await;
    let before = snapshot(&app).await;

    let drink = format!("/drinks/{}", fx.received_drink);
    let delivery = format!("/deliveries/{}", fx.delivery);
    let writes: [(Method, &str); 5] = [
        (Method::POST, "/orders"),
        (Method::PATCH, &drink),
        (Method::PATCH, &delivery),
        (Method::POST, "/cancellations"),
        (Method::POST, "/payments"),
    ];

    // Malformed JSON, and JSON that is not an object: 400.
    for (m, path) in &writes {
        for body in ["{\"status\": ", "{oops}", "", "[1, 2]", "\"Made\"", "null"] {
            let r = app.raw(m.clone(), path, "application/json", body).await;
            r.expect_problem(400, &format!("{m} {path} with body {body:?}"));
        }
    }

    // Wrong content type: 415, even when the text is valid JSON.
    let valid: [Value; 5] = [
        order_body(1, "Latte", 1, 100),
        json!({"status": "Made"}),
        json!({"status": "Delivered"}),
        json!({"orderId": 999_999}),
        json!({"orderId": 999_999, "phoneNumber": "01012345678", "amt": 100}),
    ];
    for ((m, path), body) in writes.iter().zip(&valid) {
        for ct in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
            let r = app.raw(m.clone(), path, ct, body.to_string()).await;
            r.expect_problem(415, &format!("{m} {path} as {ct}"));
        }
    }

    // Too large: 413 (a valid body padded past 16 KiB).
    for ((m, path), body) in writes.iter().zip(&valid) {
        let mut big = body.clone();
        big["padding"] = json!("x".repeat(20 * 1024));
        let r = app.raw(m.clone(), path, "application/json", big.to_string()).await;
        r.expect_problem(413, &format!("{m} {path} with a 20 KiB body"));
    }

    // POST /orders: wrong types, missing fields, out of range.
    let good = order_body(42, "Latte", 2, 5000);
    let with = |field: &str, v: Value| {
        let mut b = good.clone();
        b[field] = v;
        b
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"phoneNumber": 1012345678, "productName": 5, "qty": "2", "amt": "100"}),
            vec!["phoneNumber", "productName", "qty", "amt"],
        ),
        (with("qty", json!("2")), vec!["qty"]),
        (with("qty", json!(1.5)), vec!["qty"]),
        (with("amt", json!(true)), vec!["amt"]),
        (with("productName", json!(["Latte"])), vec!["productName"]),
        (with("phoneNumber", json!({"n": 1})), vec!["phoneNumber"]),
        (json!({}), vec!["phoneNumber", "productName", "qty", "amt"]),
        (without("phoneNumber"), vec!["phoneNumber"]),
        (without("productName"), vec!["productName"]),
        (without("qty"), vec!["qty"]),
        (without("amt"), vec!["amt"]),
        (with("qty", Value::Null), vec!["qty"]),
        (with("phoneNumber", json!("12345678")), vec!["phoneNumber"]),
        (with("phoneNumber", json!("1234567890123456")), vec!["phoneNumber"]),
        (with("phoneNumber", json!("010-1234-567a")), vec!["phoneNumber"]),
        (with("phoneNumber", json!("phone")), vec!["phoneNumber"]),
        (with("productName", json!("")), vec!["productName"]),
        (with("productName", json!("x".repeat(101))), vec!["productName"]),
        (with("qty", json!(0)), vec!["qty"]),
        (with("qty", json!(101)), vec!["qty"]),
        (with("amt", json!(-1)), vec!["amt"]),
        (with("amt", json!(10_000_001)), vec!["amt"]),
        (
            json!({"phoneNumber": "1", "productName": "", "qty": 0, "amt": -1}),
            vec!["phoneNumber", "productName", "qty", "amt"],
        ),
    ];
    for (body, fields) in &cases {
        let r = app.post_order(body).await;
        expect_fields_named(&r, fields, &format!("POST /orders {body}"));
    }

    // PATCH /drinks/{id} and /deliveries/{id}: the status field.
    for path in [&drink, &delivery] {
        for (body, what) in [
            (json!({}), "missing"),
            (json!({"status": null}), "null"),
            (json!({"status": 5}), "a number"),
            (json!({"status": ["Made"]}), "an array"),
            (json!({"status": "Baked"}), "unknown"),
            (json!({"status": ""}), "empty"),
        ] {
            let r = app.patch(path, &body).await;
            expect_fields_named(&r, &["status"], &format!("PATCH {path} with a status {what}"));
        }
    }

    // POST /cancellations.
    for (body, fields) in [
        (json!({}), vec!["orderId"]),
        (json!({"orderId": "7"}), vec!["orderId"]),
        (json!({"orderId": 1.5}), vec!["orderId"]),
        (json!({"orderId": 0}), vec!["orderId"]),
        (json!({"orderId": -5}), vec!["orderId"]),
    ] {
        let r = app.post("/cancellations", &body).await;
        expect_fields_named(&r, &fields, &format!("POST /cancellations {body}"));
    }

    // POST /payments. Its caller, order, has already checked the phone number's format
    // (SPEC §4 states it for orders only), so payment asks only for a non-empty string.
    let pay = json!({"orderId": 999_999, "phoneNumber": "01012345678", "amt": 100});
    let pay_with = |field: &str, v: Value| {
        let mut b = pay.clone();
        b[field] = v;
        b
    };
    for (body, fields) in [
        (json!({}), vec!["orderId", "phoneNumber", "amt"]),
        (json!({"orderId": "x", "phoneNumber": 5, "amt": "1"}), vec!["orderId", "phoneNumber", "amt"]),
        (pay_with("orderId", json!(0)), vec!["orderId"]),
        (pay_with("orderId", json!(-5)), vec!["orderId"]),
        (pay_with("amt", json!(-1)), vec!["amt"]),
        (pay_with("amt", json!(10_000_001)), vec!["amt"]),
        (pay_with("phoneNumber", json!("")), vec!["phoneNumber"]),
        (pay_with("phoneNumber", json!(1012345678)), vec!["phoneNumber"]),
    ] {
        let r = app.post("/payments", &body).await;
        expect_fields_named(&r, &fields, &format!("POST /payments {body}"));
    }

    let after = snapshot(&app).await;
    assert_eq!(after, before, "a refused request changed something");
    let _ = (fx.received_order, fx.payment);
}

async fn unknown_ids_wrong_methods_and_bad_paging_are_refused_and_change_nothing(app: TestApp) {
    let fx = fixture(&app).await;
    let before = snapshot(&app).await;

    // Unknown ids: 404.
    for (m, path, body) in [
        (Method::DELETE, "/orders/999999", None),
        (Method::DELETE, "/orders/0", None),
        (Method::DELETE, "/orders/-5", None),
        (Method::DELETE, "/orders/abc", None),
        (Method::PATCH, "/drinks/999999", Some(json!({"status": "Made"}))),
        (Method::PATCH, "/drinks/abc", Some(json!({"status": "Made"}))),
        (Method::PATCH, "/deliveries/999999", Some(json!({"status": "Delivered"}))),
        (Method::GET, "/orders/999999", None),
        (Method::GET, "/orders/abc", None),
        (Method::GET, "/payments/999999", None),
        (Method::GET, "/drinks/999999", None),
        (Method::GET, "/deliveries/999999", None),
        (Method::GET, "/cancellations/999999", None),
        (Method::GET, "/deliverypages/999999", None),
        (Method::GET, "/mypages/999999", None),
        (Method::GET, "/nowhere", None),
    ] {
        let r = app.request(m.clone(), path, body.as_ref()).await;
        r.expect_problem(404, &format!("{m} {path}"));
    }

    // Wrong method: 405.
    let order = format!("/orders/{}", fx.received_order);
    let drink = format!("/drinks/{}", fx.received_drink);
    for (m, path, body) in [
        (Method::PUT, "/orders", Some(order_body(1, "Latte", 1, 100))),
        (Method::PUT, order.as_str(), Some(order_body(1, "Latte", 1, 100))),
        (Method::PATCH, order.as_str(), Some(json!({"qty": 3}))),
        (Method::DELETE, "/orders", None),
        (Method::DELETE, drink.as_str(), None),
        (Method::DELETE, "/drinks/1", None),
        (Method::POST, "/drinks", Some(json!({"orderId": 1}))),
        (Method::PUT, drink.as_str(), Some(json!({"status": "Made"}))),
        (Method::DELETE, &format!("/payments/{}", fx.payment), None),
        (Method::DELETE, &format!("/deliveries/{}", fx.delivery), None),
        (Method::POST, "/deliverypages", Some(json!({"orderId": 1}))),
        (Method::POST, "/mypages", Some(json!({"orderId": 1}))),
    ] {
        let r = app.request(m.clone(), path, body.as_ref()).await;
        r.expect_problem(405, &format!("{m} {path}"));
    }

    // Bad paging and searches: 400.
    for collection in
        ["orders", "payments", "drinks", "orderinfos", "deliveries", "cancellations", "deliverypages", "mypages"]
    {
        for q in ["size=0", "size=5000", "size=x", "page=-1", "sort=nope", "sort=id,sideways"] {
            let r = app.get(&format!("/{collection}?{q}")).await;
            r.expect_problem(400, &format!("GET /{collection}?{q}"));
        }
        let ok = app.get(&format!("/{collection}?size=1000&page=3")).await;
        ok.expect(200, &format!("GET /{collection}?size=1000&page=3"));
        // Pages start at most 100,000 rows deep: the deepest is served (empty), one page
        // further is refused before the database is asked to skip the rows.
        let deepest = app.get(&format!("/{collection}?size=1000&page=100")).await;
        deepest.expect(200, &format!("GET /{collection}?size=1000&page=100"));
        for q in ["size=1000&page=101", "page=1000000000"] {
            let r = app.get(&format!("/{collection}?{q}")).await;
            expect_fields_named(&r, &["page"], &format!("GET /{collection}?{q}"));
        }
    }
    for path in [
        "/payments/search/findByOrderId",
        "/payments/search/findByOrderId?orderId=abc",
        "/payments/search/findByOrderId?orderId=0",
        "/deliveries/search/findByOrderId?orderId=abc",
        "/cancellations/search/findByOrderId",
        "/deliverypages/search/findByOrderId?orderId=x",
        "/mypages/search/findByOrderId",
        "/mypages/search/findByPhoneNumber",
    ] {
        app.get(path).await.expect_problem(400, &format!("GET {path}"));
    }

    let after = snapshot(&app).await;
    assert_eq!(after, before, "a refused request changed something");
}

async fn the_bounds_of_each_field_are_accepted(app: TestApp) {
    for body in [
        json!({"phoneNumber": "123456789", "productName": "x", "qty": 1, "amt": 0}),
        json!({"phoneNumber": "123456789012345", "productName": "y".repeat(100), "qty": 100, "amt": 10_000_000}),
        json!({"phoneNumber": "010-1234-5678", "productName": "Latte", "qty": 50, "amt": 4500}),
    ] {
        let r = app.post_order(&body).await;
        let o = r.expect(201, &format!("POST /orders {body}"));
        assert_eq!(o["status"], "Ordered");
        assert_eq!(o["qty"], body["qty"]);
        assert_eq!(o["amt"], body["amt"]);
    }
    assert_eq!(app.count("orders").await, 3);
    assert_eq!(app.count("payments").await, 3);
}

/// Illegal state changes: 409, and the state stays as it was.
async fn illegal_state_changes_are_conflicts_and_change_nothing(app: TestApp) {
    let app = &app;

    // A drink's life: Received → Receipted → Made; repeats are no-ops; going back is a 409.
    let order = app.place_order().await;
    let drink = app.drink_for(id(&order)).await;
    let drink_id = id(&drink);
    let path = format!("/drinks/{drink_id}");
    assert_eq!(app.patch_drink(drink_id, "Receipted").await.expect(200, "Received → Receipted")["status"], "Receipted");
    assert_eq!(app.patch_drink(drink_id, "Receipted").await.expect(200, "Receipted again")["status"], "Receipted");
    assert_eq!(app.patch_drink(drink_id, "Made").await.expect(200, "Receipted → Made")["status"], "Made");
    assert_eq!(app.patch_drink(drink_id, "Made").await.expect(200, "Made again")["status"], "Made");
    app.patch_drink(drink_id, "Receipted").await.expect_problem(409, "Made → Receipted");
    assert_eq!(app.get_json(&path).await["status"], "Made");
    let delivery = app.wait_for_status("deliveries", id(&order), "Delivery Started").await;
    assert_eq!(
        app.find_by_order_id("deliveries", id(&order)).await.len(),
        1,
        "a repeated Made starts no second delivery"
    );

    // A cancelled drink cannot be made.
    let order2 = app.place_order().await;
    let drink2 = app.drink_for(id(&order2)).await;
    app.cancel_order(id(&order2)).await.expect(204, "cancel");
    app.wait_for_drink(id(&drink2), "Canceled").await;
    app.patch_drink(id(&drink2), "Made").await.expect_problem(409, "Canceled → Made");
    app.patch_drink(id(&drink2), "Receipted").await.expect_problem(409, "Canceled → Receipted");
    assert_eq!(app.get_json(&format!("/drinks/{}", id(&drink2))).await["status"], "Canceled");

    // A cancelled delivery cannot be delivered.
    app.cancel_order(id(&order)).await.expect(204, "cancel a made order");
    let cancelled = app.wait_for_status("deliveries", id(&order), "Delivery Cancelled").await;
    assert_eq!(id(&cancelled), id(&delivery));
    app.patch_delivery(id(&delivery), "Delivered").await.expect_problem(409, "Delivered after cancel");
    assert_eq!(app.get_json(&format!("/deliveries/{}", id(&delivery))).await["status"], "Delivery Cancelled");

    // A delivered order cannot be cancelled: 409, and it stays.
    let (order3, drink3, delivery3) = app.order_made_and_started().await;
    let r = app.patch_delivery(id(&delivery3), "Delivered").await;
    assert_eq!(r.expect(200, "PATCH Delivered")["status"], "Delivered");
    let before = app.get_json(&format!("/orders/{}", id(&order3))).await;
    let cancellations = app.count("cancellations").await;
    app.cancel_order(id(&order3)).await.expect_problem(409, "cancel a delivered order");
    assert_eq!(app.get_json(&format!("/orders/{}", id(&order3))).await, before, "the order stays");
    assert_eq!(app.count("cancellations").await, cancellations, "no cancellation recorded");
    assert_eq!(app.get_json(&format!("/deliveries/{}", id(&delivery3))).await["status"], "Delivered");
    assert_eq!(app.get_json(&format!("/drinks/{}", id(&drink3))).await["status"], "Made");
    let payment3 = app.find_one("payments", id(&order3)).await.expect("payment");
    assert_eq!(payment3["status"], "Approved");
    app.wait_for_status("deliverypages", id(&order3), "Delivered").await;
}

/// A dependency down: 503 with Retry-After at once, and nothing half-made.
async fn a_service_down_answers_503_with_retry_after_and_leaves_nothing_half_made(app: TestApp) {
    let app = &app;
    app.place_order().await;

    app.stop_service(ServiceName::Payment).await;
    for n in 0..3 {
        let r = app.post_order(&order_body(n, "Latte", 1, 100)).await;
        r.expect_problem(503, "POST /orders while payment is down");
        assert!(r.header("retry-after").is_some(), "503 without Retry-After: {:?}", r.headers);
    }
    // The gateway itself answers for a service that is down.
    let r = app.get("/payments").await;
    r.expect_problem(503, "GET /payments through the gateway while payment is down");
    assert!(r.header("retry-after").is_some(), "503 without Retry-After: {:?}", r.headers);
    assert_eq!(app.count("orders").await, 1, "no order without its payment");

    app.start_service(ServiceName::Payment).await;
    let r = eventually(app.deadline, async || {
        let r = app.post_order(&order_body(9, "Latte", 1, 100)).await;
        (r.status != 503).then_some(r)
    })
    .await
    .expect("POST /orders to work again");
    r.expect(201, "POST /orders once payment is back");
    let orders = app.all("orders").await;
    let payments = app.all("payments").await;
    let approved: Vec<_> = payments.iter().filter(|p| p["status"] == "Approved").collect();
    assert_eq!(orders.len(), 2);
    assert_eq!(approved.len(), 2, "every order has one approved payment, nothing else approved: {payments:?}");
}

/// The admin switch knows the services by name: a name that is none of them (or is the
/// gateway, which is no service behind itself) is a 404 problem, and so is an action other
/// than stop or start; the refused requests stop nothing.
async fn the_admin_switch_answers_a_404_problem_for_an_unknown_service_or_action(app: TestApp) {
    for (name, action) in [("kitchen", "stop"), ("gateway", "stop"), ("Payment", "stop"), ("payment", "restart")] {
        let r = app.admin(name, action).await;
        r.expect_problem(404, &format!("POST /admin/services/{name}/{action}"));
    }
    app.place_order().await;
}
