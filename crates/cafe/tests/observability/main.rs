//! Seeing inside the cafe. One order, one trace: placing an order and making its drink give
//! a single trace id that spans the gateway and every service the order touched, as exported
//! over OTLP/HTTP to a receiver in the test. And every service and the gateway expose their
//! metrics in Prometheus text format.
//!
//! The cafe is built in the test's process, with `--otlp-endpoint` as `cafe up` takes it. The
//! trace exporter is one per process, so this binary holds this one test.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use contracts::ServiceName;
use serde_json::{json, Value};

use common::{eventually, spawn_app_with};

/// How long a wait here may take.
const DEADLINE: Duration = Duration::from_secs(20);

type Spans = Arc<Mutex<Vec<(String, String, String)>>>; // (trace id, service, span name)

/// An OTLP/HTTP (JSON) receiver on a free port, collecting every span it is sent.
async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                    let service = rs["resource"]["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "service.name")
                        .and_then(|a| a["value"]["stringValue"].as_str())
                        .unwrap_or("")
                        .to_string();
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for span in ss["spans"].as_array().into_iter().flatten() {
                            let trace = span["traceId"].as_str().unwrap_or("").to_string();
                            let name = span["name"].as_str().unwrap_or("").to_string();
                            sink.lock().unwrap().push((trace, service.clone(), name));
                        }
                    }
                }
                Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

#[tokio::test]
async fn an_order_is_one_trace_across_every_service_and_every_service_has_metrics() {
    let (collector, spans) = receiver().await;
    let cafe = spawn_app_with(&["--otlp-endpoint", &collector]).await;
    let gw = cafe.gateway();
    let http = reqwest::Client::new();

    let order = cafe
        .post("/orders", &json!({"phoneNumber": "010-1234-5678", "productName": "latte", "qty": 1, "amt": 4500}))
        .await
        .json;
    let order_id = order["id"].as_i64().expect("an order id");
    let drink_id = eventually(DEADLINE, async || {
        let page: Value = http.get(format!("{gw}/drinks?size=1000")).send().await.ok()?.json().await.ok()?;
        page["_embedded"]["drinks"].as_array()?.iter().find(|d| d["orderId"] == order_id)?["id"].as_i64()
    })
    .await
    .expect("the drink");
    let made = http.patch(format!("{gw}/drinks/{drink_id}")).json(&json!({"status": "Made"})).send().await.unwrap();
    assert_eq!(made.status(), 200);
    eventually(DEADLINE, async || {
        let row: Value = http.get(format!("{gw}/deliverypages/{order_id}")).send().await.ok()?.json().await.ok()?;
        (row["status"] == "Delivery Started").then_some(())
    })
    .await
    .expect("the delivery page");

    let everyone: BTreeSet<&str> =
        ["gateway", "order", "payment", "drink", "delivery", "customercenter", "deliverycenter"].into();
    let (trace, seen) = eventually(DEADLINE, async || {
        let spans = spans.lock().unwrap().clone();
        let place = spans.iter().find(|(_, svc, name)| svc == "order" && name == "POST /orders");
        let Some(place) = place else { return Err(format!("no span of POST /orders at order in {spans:#?}")) };
        let seen: BTreeSet<String> =
            spans.iter().filter(|(t, _, _)| *t == place.0).map(|(_, s, _)| s.clone()).collect();
        let all = everyone.iter().all(|s| seen.contains(*s));
        all.then(|| (place.0.clone(), seen)).ok_or_else(|| format!("{spans:#?}"))
    })
    .await
    .expect("one trace across every service");
    assert_eq!(trace.len(), 32, "a W3C trace id");
    assert!(everyone.iter().all(|s| seen.contains(*s)), "{seen:?}");

    // Metrics, on every service and the gateway.
    for (name, url) in cafe.urls() {
        let res = http.get(format!("{url}/actuator/prometheus")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"), "{name}");
        let text = res.text().await.unwrap();
        assert!(text.contains("# TYPE http_server_requests_seconds histogram"), "{name}: {text}");
        // The gateway and the web keep no outbox and consume nothing.
        if !matches!(name, ServiceName::Gateway | ServiceName::Web) {
            for family in
                ["cafe_outbox_backlog", "cafe_consumer_lag", "cafe_events_published_total", "cafe_events_handled_total"]
            {
                assert!(text.contains(&format!("# TYPE {family}")), "{name} lacks {family}: {text}");
            }
        }
    }
    let order_metrics = cafe.service_text(ServiceName::Order, "/actuator/prometheus").await;
    assert!(
        order_metrics.contains(
            r#"http_server_requests_seconds_count{service="order",method="POST",route="/orders",status="201"} 1"#
        ),
        "{order_metrics}"
    );
    assert!(
        order_metrics.contains(r#"cafe_events_published_total{service="order",type="Ordered"} 1"#),
        "{order_metrics}"
    );
    assert!(
        order_metrics.contains(r#"cafe_circuit_breaker_state{service="order",dependency="payment"} 0"#),
        "{order_metrics}"
    );
    let drink_metrics = cafe.service_text(ServiceName::Drink, "/actuator/prometheus").await;
    assert!(
        drink_metrics.contains(r#"cafe_events_handled_total{service="drink",type="Ordered"} 1"#),
        "{drink_metrics}"
    );
    assert!(drink_metrics.contains(r#"cafe_consumer_lag{service="drink"} "#), "{drink_metrics}");
}
