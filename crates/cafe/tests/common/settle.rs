//! Settling after chaos: drive the baristas by hand and check that every service and both
//! views agree, order by order (SPEC §5, §6): one approved payment, one drink, one delivery
//! and its two view rows per order, and no approved payment without its order.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{id, TestApp};

/// PATCHes every queued drink to Made; returns how many it made. Errors are ignored: the
/// process may be down.
pub async fn make_queued_drinks(app: &TestApp) -> u64 {
    let Ok(queue) = app.try_all("orderinfos").await else { return 0 };
    let mut made = 0;
    for drink in queue {
        let Some(drink_id) = drink["id"].as_i64() else { continue };
        let body = json!({"status": "Made"});
        if let Ok(r) = app.try_request(Method::PATCH, &format!("/drinks/{drink_id}"), Some(&body)).await {
            if r.status == StatusCode::OK {
                made += 1;
            }
        }
    }
    made
}

fn by_order(rows: &[Value]) -> HashMap<i64, Vec<&Value>> {
    let mut m: HashMap<i64, Vec<&Value>> = HashMap::new();
    for r in rows {
        m.entry(r["orderId"].as_i64().unwrap_or(-1)).or_default().push(r);
    }
    m
}

/// `Ok` once everything agrees; otherwise why not (yet).
pub async fn check_settled(app: &TestApp) -> Result<(), String> {
    let orders = app.try_all("orders").await?;
    let payments = app.try_all("payments").await?;
    let drinks = app.try_all("drinks").await?;
    let deliveries = app.try_all("deliveries").await?;
    let pages = app.try_all("deliverypages").await?;
    let mypages = app.try_all("mypages").await?;
    let (payments_of, drinks_of, deliveries_of, pages_of, mine_of) =
        (by_order(&payments), by_order(&drinks), by_order(&deliveries), by_order(&pages), by_order(&mypages));
    let none = Vec::new();

    for o in &orders {
        let oid = id(o);
        if o["status"] != "Ordered" {
            return Err(format!("order {oid} listed with status {}", o["status"]));
        }
        let ps = payments_of.get(&oid).unwrap_or(&none);
        if ps.len() != 1 || ps[0]["status"] != "Approved" {
            return Err(format!("order {oid}: payments {ps:?}"));
        }
        if ps[0]["amt"] != o["amt"] {
            return Err(format!("order {oid}: paid {} for {}", ps[0]["amt"], o["amt"]));
        }
        let ds = drinks_of.get(&oid).unwrap_or(&none);
        if ds.len() != 1 || ds[0]["status"] != "Made" {
            return Err(format!("order {oid}: drinks {ds:?}"));
        }
        let ls = deliveries_of.get(&oid).unwrap_or(&none);
        if ls.len() > 1 {
            return Err(format!("order {oid}: {} deliveries {ls:?}", ls.len()));
        }
        let Some(delivery) = ls.first() else { return Err(format!("order {oid}: no delivery yet")) };
        if delivery["status"] != "Delivery Started" {
            return Err(format!("order {oid}: delivery {delivery}"));
        }
        let page = pages_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no delivery page row"))?;
        if page["status"] != "Delivery Started" || page["deliveryId"] != delivery["id"] || page["amt"] != o["amt"] {
            return Err(format!("order {oid}: delivery page {page} vs delivery {delivery}"));
        }
        let mine = mine_of.get(&oid).and_then(|p| p.first()).ok_or(format!("order {oid}: no my page row"))?;
        if mine["status"] != "Delivery Started"
            || mine["deliveryId"] != delivery["id"]
            || mine["paymentId"] != ps[0]["id"]
            || mine["drinkId"] != ds[0]["id"]
        {
            return Err(format!("order {oid}: my page {mine}"));
        }
    }

    let order_ids: std::collections::HashSet<i64> = orders.iter().map(id).collect();
    for p in &payments {
        if p["status"] == "Approved" && !order_ids.contains(&p["orderId"].as_i64().unwrap_or(-1)) {
            return Err(format!("approved payment without its order: {p}"));
        }
    }
    for (what, rows) in [("drink", &drinks), ("delivery", &deliveries), ("delivery page", &pages)] {
        if let Some(r) = rows.iter().find(|r| !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))) {
            return Err(format!("{what} without its order: {r}"));
        }
    }
    if pages.len() != orders.len() {
        return Err(format!("{} delivery page rows for {} orders", pages.len(), orders.len()));
    }
    // My page hears of payments too, so a placement voided by a kill may show there, but
    // only as what it is: a cancelled payment with no drink and no delivery.
    for r in &mypages {
        if !order_ids.contains(&r["orderId"].as_i64().unwrap_or(-1))
            && (r["status"] != "Payment Canceled" || !r["drinkId"].is_null() || !r["deliveryId"].is_null())
        {
            return Err(format!("my page row without its order: {r}"));
        }
    }
    Ok(())
}
