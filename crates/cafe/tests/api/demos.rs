//! The original's demonstrations (SPEC §8, 1–4), end to end through the gateway, and the
//! HAL conventions of §3 as a client sees them.

use contracts::ServiceName;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, id, order_body, TestApp};

in_both_modes!(
    an_order_made_by_a_barista_starts_its_delivery_and_shows_on_both_pages,
    cancelling_records_the_cancellation_deletes_the_order_and_refunds,
    a_drink_is_made_while_delivery_is_down_and_delivered_once_it_is_back,
    cancelling_while_delivery_is_down_answers_503_and_keeps_the_order,
    collections_and_items_are_hal_with_absolute_links_through_the_gateway,
    links_carry_the_host_the_client_called,
);

/// Demonstration 1: order → drink → Made → delivery started → on the delivery page and my page.
async fn an_order_made_by_a_barista_starts_its_delivery_and_shows_on_both_pages(app: TestApp) {
    let order = app.place_order_with(&order_body(1234_5678, "Caffe Latte", 3, 15000)).await;
    let order_id = id(&order);
    assert_eq!(order["status"], "Ordered");
    assert_eq!(order["phoneNumber"], "01012345678", "hyphens are stripped");
    assert_eq!(order["productName"], "Caffe Latte");
    assert_eq!((order["qty"].as_i64(), order["amt"].as_i64()), (Some(3), Some(15000)));
    assert!(order["createTime"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('.')), "createTime: {order}");

    // The paid order reaches the baristas' queue.
    let drink = app.drink_for(order_id).await;
    assert_eq!(drink["status"], "Received");
    assert_eq!(drink["productName"], "Caffe Latte");
    assert_eq!(drink["qty"].as_i64(), Some(3));
    let queue = app.all("orderinfos").await;
    assert!(queue.iter().any(|d| d["orderId"].as_i64() == Some(order_id)), "drink not in /orderinfos: {queue:?}");

    // Exactly one approved payment for it.
    let payments = app.find_by_order_id("payments", order_id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["status"], "Approved");
    assert_eq!(payments[0]["amt"].as_i64(), Some(15000));

    let r = app.patch_drink(id(&drink), "Receipted").await;
    assert_eq!(r.expect(200, "PATCH Receipted")["status"], "Receipted");
    let queue = app.all("orderinfos").await;
    assert!(queue.iter().any(|d| d["orderId"].as_i64() == Some(order_id)), "a Receipted drink is still queued");
    let r = app.patch_drink(id(&drink), "Made").await;
    assert_eq!(r.expect(200, "PATCH Made")["status"], "Made");
    let queue = app.all("orderinfos").await;
    assert!(!queue.iter().any(|d| d["orderId"].as_i64() == Some(order_id)), "a Made drink left the queue: {queue:?}");

    let delivery = app.wait_for_status("deliveries", order_id, "Delivery Started").await;
    assert_eq!(delivery["orderId"].as_i64(), Some(order_id));

    let page = app.wait_for_status("deliverypages", order_id, "Delivery Started").await;
    assert_eq!(page["orderId"].as_i64(), Some(order_id));
    assert_eq!(page["id"].as_i64(), Some(order_id), "view rows have id = orderId");
    assert_eq!(page["deliveryId"].as_i64(), Some(id(&delivery)));
    assert_eq!(page["amt"].as_i64(), Some(15000));
    assert_eq!(page["productName"], "Caffe Latte");
    assert_eq!(page["qty"].as_i64(), Some(3));
    assert_eq!(page["phoneNumber"], "01012345678");
    let by_id = app.get_json(&format!("/deliverypages/{order_id}")).await;
    assert_eq!(by_id["status"], "Delivery Started");

    let mine = app.wait_for_status("mypages", order_id, "Delivery Started").await;
    assert_eq!(mine["id"].as_i64(), Some(order_id));
    assert_eq!(mine["paymentId"].as_i64(), Some(id(&payments[0])));
    assert_eq!(mine["drinkId"].as_i64(), Some(id(&drink)));
    assert_eq!(mine["deliveryId"].as_i64(), Some(id(&delivery)));
    assert_eq!(mine["productName"], "Caffe Latte");
    assert_eq!(mine["amt"].as_i64(), Some(15000));
    let by_phone = app.search("/mypages/search/findByPhoneNumber?phoneNumber=01012345678").await;
    assert!(by_phone.iter().any(|m| m["orderId"].as_i64() == Some(order_id)), "findByPhoneNumber: {by_phone:?}");
}

/// Demonstration 2 and its compensation: cancel → 204 → ledger → delivery page → 404, then
/// the drink and the payment are cancelled by events.
async fn cancelling_records_the_cancellation_deletes_the_order_and_refunds(app: TestApp) {
    let (order, drink, delivery) = app.order_made_and_started().await;
    let order_id = id(&order);
    let payment = app.find_one("payments", order_id).await.expect("a payment");

    let r = app.cancel_order(order_id).await;
    r.expect(204, "DELETE /orders/{id}");
    assert!(r.text.is_empty(), "204 has no body: {}", r.text);

    let cancellation = app.wait_for_status("cancellations", order_id, "Delivery Cancelled").await;
    assert_eq!(cancellation["orderId"].as_i64(), Some(order_id));
    app.wait_for_status("deliverypages", order_id, "Delivery Cancelled").await;
    app.get(&format!("/orders/{order_id}")).await.expect_problem(404, "GET a cancelled order");
    let orders = app.all("orders").await;
    assert!(!orders.iter().any(|o| id(o) == order_id), "cancelled order still listed");

    // The delivery that had started is cancelled too.
    let d = app.get_json(&format!("/deliveries/{}", id(&delivery))).await;
    assert_eq!(d["status"], "Delivery Cancelled");

    // Compensation: OrderCanceled → DrinkCanceled → PaymentCanceled.
    app.wait_for_compensation(order_id, id(&drink), id(&payment)).await;
}

/// Demonstration 3: with delivery down a barista still makes the drink; the delivery starts
/// when delivery is back.
async fn a_drink_is_made_while_delivery_is_down_and_delivered_once_it_is_back(app: TestApp) {
    let order = app.place_order().await;
    let order_id = id(&order);
    let drink = app.drink_for(order_id).await;

    app.stop_service(ServiceName::Delivery).await;
    let r = app.patch_drink(id(&drink), "Made").await;
    assert_eq!(r.expect(200, "PATCH Made while delivery is down")["status"], "Made");
    // Made reaches the customer's page, but no delivery can have started.
    app.wait_for_status("mypages", order_id, "Made").await;
    let page = app.find_one("deliverypages", order_id).await.expect("a delivery page row");
    assert_eq!(page["status"], "Ordered", "no delivery while delivery is down: {page}");

    app.start_service(ServiceName::Delivery).await;
    let delivery = app.wait_for_status("deliveries", order_id, "Delivery Started").await;
    let page = app.wait_for_status("deliverypages", order_id, "Delivery Started").await;
    assert_eq!(page["deliveryId"].as_i64(), Some(id(&delivery)));
    let deliveries = app.find_by_order_id("deliveries", order_id).await;
    assert_eq!(deliveries.len(), 1, "one delivery per order: {deliveries:?}");
}

/// Demonstration 4: with delivery down, cancelling answers 503 and the order stays, reading
/// exactly as it was; once delivery is back, cancelling works (the customer's retry, or the
/// reconciler asking delivery again, whichever comes first) and the chain runs.
async fn cancelling_while_delivery_is_down_answers_503_and_keeps_the_order(app: TestApp) {
    let order = app.place_order().await;
    let order_id = id(&order);
    let drink = app.drink_for(order_id).await;
    let before = app.get_json(&format!("/orders/{order_id}")).await;

    app.stop_service(ServiceName::Delivery).await;
    let r = app.cancel_order(order_id).await;
    r.expect_problem(503, "DELETE while delivery is down");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("503 without a numeric Retry-After: {:?}", r.headers));
    assert!(retry >= 1);
    let after = app.get_json(&format!("/orders/{order_id}")).await;
    assert_eq!(after, before, "the order reads as it was");
    assert_eq!(app.get_json(&format!("/drinks/{}", id(&drink))).await["status"], "Received");

    app.start_service(ServiceName::Delivery).await;
    // Delivery answers as soon as its start returned; a client still honours 503s.
    let r = eventually(app.deadline, async || {
        let r = app.cancel_order(order_id).await;
        (r.status != 503).then_some(r)
    })
    .await
    .expect("DELETE to stop answering 503");
    // 404: the reconciler finished the cancellation first.
    assert!(r.status == 204 || r.status == 404, "DELETE once delivery is back: {} {}", r.status, r.text);
    app.wait_for_status("cancellations", order_id, "Delivery Cancelled").await;
    app.wait_for_status("deliverypages", order_id, "Delivery Cancelled").await;
    app.get(&format!("/orders/{order_id}")).await.expect_problem(404, "GET the cancelled order");
    app.wait_for_drink(id(&drink), "Canceled").await;
    eventually(app.deadline, async || {
        let p = app.find_one("payments", order_id).await?;
        (p["status"] == "Canceled").then_some(())
    })
    .await
    .expect("the payment to be Canceled");
}

#[track_caller]
fn assert_href_under(v: &Value, base: &str, what: &str) {
    let href = v["href"].as_str().unwrap_or_else(|| panic!("{what}: no href in {v}"));
    assert!(href.starts_with(base), "{what}: {href} does not start with {base}");
}

/// §3: HAL items and collections, absolute links through the gateway, Location, paging and
/// sorting.
async fn collections_and_items_are_hal_with_absolute_links_through_the_gateway(app: TestApp) {
    let base = app.gateway();
    let amts = [300, 100, 500, 200, 400];
    let mut ids = vec![];
    for (i, amt) in amts.iter().enumerate() {
        let r = app.post_order(&order_body(5000 + i as u64, "Mocha", 1, *amt)).await;
        let created = r.expect(201, "POST /orders").clone();
        let loc = r.header("location").unwrap_or_else(|| panic!("201 without Location: {:?}", r.headers));
        assert_eq!(loc, format!("{base}/orders/{}", id(&created)), "Location");
        assert!(
            r.content_type().starts_with("application/hal+json") || r.content_type().starts_with("application/json")
        );
        assert_href_under(&created["_links"]["self"], &base, "created self");
        ids.push(id(&created));
    }

    let item = app.get(&format!("/orders/{}", ids[0])).await;
    let v = item.expect(200, "GET /orders/{id}");
    assert_eq!(v["_links"]["self"]["href"], format!("{base}/orders/{}", ids[0]));
    assert_eq!(v["_links"]["order"]["href"], format!("{base}/orders/{}", ids[0]));

    let r = app.get("/orders").await;
    let v = r.expect(200, "GET /orders").clone();
    assert!(r.content_type().starts_with("application/hal+json"), "collection content type {}", r.content_type());
    let embedded = v["_embedded"]["orders"].as_array().unwrap_or_else(|| panic!("no _embedded.orders: {v}"));
    assert_eq!(embedded.len(), 5);
    for o in embedded {
        assert_href_under(&o["_links"]["self"], &base, "item self");
        assert_href_under(&o["_links"]["order"], &base, "item order");
    }
    assert_href_under(&v["_links"]["self"], &base, "collection self");
    assert_href_under(&v["_links"]["profile"], &base, "collection profile");
    assert_eq!(v["page"], json!({"size": 20, "totalElements": 5, "totalPages": 1, "number": 0}));

    let v = app.get_json("/orders?size=2&page=1").await;
    assert_eq!(v["page"], json!({"size": 2, "totalElements": 5, "totalPages": 3, "number": 1}));
    let got: Vec<i64> = v["_embedded"]["orders"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(got, ids[2..4].to_vec(), "second page of two, by id");

    let v = app.get_json("/orders?sort=amt,desc").await;
    let got: Vec<i64> =
        v["_embedded"]["orders"].as_array().unwrap().iter().map(|o| o["amt"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![500, 400, 300, 200, 100]);
    let v = app.get_json("/orders?sort=amt,asc&size=2").await;
    let got: Vec<i64> =
        v["_embedded"]["orders"].as_array().unwrap().iter().map(|o| o["amt"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![100, 200]);

    // Every service's collection is HAL with links through the gateway.
    app.drink_for(ids[4]).await;
    for collection in ["payments", "drinks", "orderinfos", "deliveries", "cancellations", "deliverypages", "mypages"] {
        let v = app.get_json(&format!("/{collection}")).await;
        assert!(v["_embedded"].is_object(), "/{collection}: no _embedded: {v}");
        assert!(v["page"]["totalElements"].is_i64(), "/{collection}: no page: {v}");
        assert_href_under(&v["_links"]["self"], &base, &format!("/{collection} self"));
        for item in crate::common::items(&v) {
            assert_href_under(&item["_links"]["self"], &base, &format!("/{collection} item"));
        }
    }
}

/// Links point where the client called: a client's Host reaches the services as
/// X-Forwarded-Host.
async fn links_carry_the_host_the_client_called(app: TestApp) {
    let order = app.place_order().await;
    let path = format!("/orders/{}", id(&order));
    let res = app
        .client
        .request(Method::GET, app.url(&path))
        .header("host", "cafe.example:9999")
        .send()
        .await
        .expect("GET with Host");
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["_links"]["self"]["href"], format!("http://cafe.example:9999{path}"), "{v}");

    let res = app
        .client
        .request(Method::GET, app.url("/orders"))
        .header("host", "cafe.example:9999")
        .send()
        .await
        .expect("GET with Host");
    let v: Value = res.json().await.unwrap();
    let href = v["_links"]["self"]["href"].as_str().unwrap_or_default();
    assert!(href.starts_with("http://cafe.example:9999/orders"), "{v}");

    // Behind a proxy in front of the gateway, the proxy's X-Forwarded-* win.
    let res = app
        .client
        .request(Method::GET, app.url(&path))
        .header("x-forwarded-host", "shop.example")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .send()
        .await
        .expect("GET with X-Forwarded-Host");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["_links"]["self"]["href"], format!("https://shop.example{path}"), "{v}");
}
