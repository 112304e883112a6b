//! Races a real client can cause: two cancels of one order, and a cancel against a barista's
//! Made. Whatever wins, the outcome is one of the allowed ones and every service agrees.

use serde_json::Value;

use crate::common::{eventually, id, TestApp};

in_both_modes!(
    two_concurrent_cancels_of_one_order_cancel_it_once,
    a_cancel_racing_a_barista_never_leaves_a_delivery_running,
);

/// Waits until the cancellation chain of `order_id` has run everywhere.
async fn wait_cancelled_everywhere(app: &TestApp, order_id: i64, drink_id: i64) {
    eventually(app.deadline, async || {
        let cancellations = app.try_search(&format!("/cancellations/search/findByOrderId?orderId={order_id}")).await?;
        if cancellations.len() != 1 || cancellations[0]["status"] != "Delivery Cancelled" {
            return Err(format!("cancellations {cancellations:?}"));
        }
        let drink = app.get(&format!("/drinks/{drink_id}")).await;
        if drink.json["status"] != "Canceled" {
            return Err(format!("drink {}", drink.text));
        }
        let payments = app.try_search(&format!("/payments/search/findByOrderId?orderId={order_id}")).await?;
        if payments.len() != 1 || payments[0]["status"] != "Canceled" {
            return Err(format!("payments {payments:?}"));
        }
        let pages = app.try_search(&format!("/deliverypages/search/findByOrderId?orderId={order_id}")).await?;
        if pages.len() != 1 || pages[0]["status"] != "Delivery Cancelled" {
            return Err(format!("delivery pages {pages:?}"));
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|t| panic!("order {order_id} cancelled everywhere: {t:?}"));
}

async fn two_concurrent_cancels_of_one_order_cancel_it_once(app: TestApp) {
    let app = &app;
    for round in 0..5 {
        let order = app.place_order().await;
        let order_id = id(&order);
        let drink = app.drink_for(order_id).await;
        if round % 2 == 1 {
            app.patch_drink(id(&drink), "Made").await.expect(200, "PATCH Made");
        }

        let (a, b) = tokio::join!(app.cancel_order(order_id), app.cancel_order(order_id));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert!(
            statuses == [204, 404] || statuses == [204, 204],
            "round {round}: two cancels answered {statuses:?}: {} / {}",
            a.text,
            b.text
        );
        for r in [&a, &b] {
            if r.status == 404 {
                r.expect_problem(404, "the losing cancel");
            }
        }

        app.get(&format!("/orders/{order_id}")).await.expect_problem(404, "GET the cancelled order");
        wait_cancelled_everywhere(app, order_id, id(&drink)).await;
        let drinks: Vec<Value> =
            app.all("drinks").await.into_iter().filter(|d| d["orderId"].as_i64() == Some(order_id)).collect();
        assert_eq!(drinks.len(), 1, "one drink: {drinks:?}");
        let deliveries = app.find_by_order_id("deliveries", order_id).await;
        assert!(deliveries.iter().all(|d| d["status"] == "Delivery Cancelled"), "{deliveries:?}");
        app.wait_for_status("mypages", order_id, "Payment Canceled").await;
    }
}

async fn a_cancel_racing_a_barista_never_leaves_a_delivery_running(app: TestApp) {
    let app = &app;
    const ROUNDS: usize = 20;

    let mut raced = Vec::new();
    for _ in 0..ROUNDS {
        let order = app.place_order().await;
        raced.push(id(&order));
    }
    let mut drinks = Vec::new();
    for &order_id in &raced {
        drinks.push(id(&app.drink_for(order_id).await));
    }

    for (round, (&order_id, &drink_id)) in raced.iter().zip(&drinks).enumerate() {
        // Alternate which request leaves first.
        let (cancel, made) = if round % 2 == 0 {
            tokio::join!(app.cancel_order(order_id), app.patch_drink(drink_id, "Made"))
        } else {
            let (m, c) = tokio::join!(app.patch_drink(drink_id, "Made"), app.cancel_order(order_id));
            (c, m)
        };
        cancel.expect(204, &format!("round {round}: cancel racing Made"));
        match made.status.as_u16() {
            200 => assert_eq!(made.json["status"], "Made"),
            409 => {
                made.expect_problem(409, "Made after the drink was cancelled");
            }
            s => panic!("round {round}: PATCH Made racing a cancel answered {s}: {}", made.text),
        }
    }

    // A barrier: one more order made after all of the above. Events flow in order, so once
    // its delivery has started and shows on the delivery page, every Made above has been
    // seen by delivery and every delivery event above by the delivery center.
    let (sentinel, _, _) = app.order_made_and_started().await;
    app.wait_for_status("deliverypages", id(&sentinel), "Delivery Started").await;

    for (&order_id, &drink_id) in raced.iter().zip(&drinks) {
        wait_cancelled_everywhere(app, order_id, drink_id).await;
    }
    let deliveries = app.all("deliveries").await;
    let pages = app.all("deliverypages").await;
    for &order_id in &raced {
        for d in deliveries.iter().filter(|d| d["orderId"].as_i64() == Some(order_id)) {
            assert_eq!(d["status"], "Delivery Cancelled", "a cancelled order's delivery: {d}");
        }
        let page = pages.iter().find(|p| p["orderId"].as_i64() == Some(order_id)).expect("a delivery page row");
        assert_eq!(page["status"], "Delivery Cancelled", "{page}");
        let orders = app.get(&format!("/orders/{order_id}")).await;
        orders.expect_problem(404, "a cancelled order");
    }
    let started: Vec<&Value> = deliveries.iter().filter(|d| d["status"] == "Delivery Started").collect();
    assert_eq!(started.len(), 1, "only the sentinel's delivery runs: {started:?}");
    assert_eq!(started[0]["orderId"].as_i64(), Some(id(&sentinel)));
}
