//! Settling after chaos: drive the baristas by hand and check that every service and both
//! views agree, order by order (SPEC §5, §6): one approved payment, one drink, one delivery
//! and its two view rows per order, and no approved payment without its order; a cancelled
//! order gone, with its cancellation recorded once and its drink, payment and delivery
//! cancelled (the compensation).

use std::collections::{HashMap, HashSet};

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
    check_settled_with_cancelled(app, &[]).await
}

/// Like [`check_settled`], where the orders `cancelled` were cancelled: each is gone, and
/// was compensated once: one cancellation, its drink and its one payment cancelled, its
/// delivery (if one started) cancelled, both views saying so.
pub async fn check_settled_with_cancelled(app: &TestApp, cancelled: &[i64]) -> Result<(), String> {
    let cancelled: HashSet<i64> = cancelled.iter().copied().collect();
    let orders = app.try_all("orders").await?;
    let payments = app.try_all("payments").await?;
    let drinks = app.try_all("drinks").await?;
    let deliveries = app.try_all("deliveries").await?;
    let pages = app.try_all("deliverypages").await?;
    let mypages = app.try_all("mypages").await?;
    let cancellations = if cancelled.is_empty() { vec![] } else { app.try_all("cancellations").await? };
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

    let cancellations_of = by_order(&cancellations);
    for &oid in &cancelled {
        let one = |what: &str, rows: Option<&Vec<&Value>>, status: &str| match rows.map(Vec::as_slice) {
            Some([row]) if row["status"] == status => Ok(()),
            rows => Err(format!("cancelled order {oid}: {what} {rows:?}, not one {status:?}")),
        };
        one("cancellations", cancellations_of.get(&oid), "Delivery Cancelled")?;
        one("payments", payments_of.get(&oid), "Canceled")?;
        one("drinks", drinks_of.get(&oid), "Canceled")?;
        one("delivery pages", pages_of.get(&oid), "Delivery Cancelled")?;
        one("my pages", mine_of.get(&oid), "Payment Canceled")?;
        let ls = deliveries_of.get(&oid).unwrap_or(&none);
        if ls.len() > 1 || ls.iter().any(|d| d["status"] != "Delivery Cancelled") {
            return Err(format!("cancelled order {oid}: deliveries {ls:?}"));
        }
    }

    let order_ids: HashSet<i64> = orders.iter().map(id).collect();
    if let Some(oid) = order_ids.intersection(&cancelled).next() {
        return Err(format!("cancelled order {oid} still listed"));
    }
    if let Some(c) = cancellations.iter().find(|c| !cancelled.contains(&c["orderId"].as_i64().unwrap_or(-1))) {
        return Err(format!("a cancellation of an order not cancelled: {c}"));
    }
    for p in &payments {
        if p["status"] == "Approved" && !order_ids.contains(&p["orderId"].as_i64().unwrap_or(-1)) {
            return Err(format!("approved payment without its order: {p}"));
        }
    }
    let known = |r: &Value| r["orderId"].as_i64().is_some_and(|o| order_ids.contains(&o) || cancelled.contains(&o));
    for (what, rows) in [("drink", &drinks), ("delivery", &deliveries), ("delivery page", &pages)] {
        if let Some(r) = rows.iter().find(|r| !known(r)) {
            return Err(format!("{what} without its order: {r}"));
        }
    }
    if pages.len() != orders.len() + cancelled.len() {
        return Err(format!(
            "{} delivery page rows for {} orders and {} cancelled",
            pages.len(),
            orders.len(),
            cancelled.len()
        ));
    }
    // My page hears of payments too, so a placement voided by a kill may show there, but
    // only as what it is: a cancelled payment with no drink and no delivery.
    for r in &mypages {
        if !known(r) && (r["status"] != "Payment Canceled" || !r["drinkId"].is_null() || !r["deliveryId"].is_null()) {
            return Err(format!("my page row without its order: {r}"));
        }
    }
    Ok(())
}
