//! `/payments`: charge (idempotent per order), void, list, read, find by order.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use platform::hal::{created, hal, parse_id, query_id};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use serde_json::json;

use crate::domain::{processing_delay_ms, NewPayment, Void};
use crate::{store, Service};

pub const PAYMENTS: Resource = Resource {
    collection: "payments",
    rel: "payment",
    sortable: &[
        ("id", "id"),
        ("orderId", "order_id"),
        ("amt", "amt"),
        ("status", "status"),
        ("createTime", "create_time"),
    ],
};

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/payments", get(list).post(pay))
        .route("/payments/voids", post(void))
        .route("/payments/search", get(searches))
        .route("/payments/search/findByOrderId", get(find_by_order_id))
        .route("/payments/{id}", get(one))
        .with_state(svc)
}

/// 201 when charged now, 200 with the existing payment when the order already has one.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn pay(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let new = NewPayment::parse(&body)?;
    tracing::Span::current().record("order_id", new.order_id);
    if let Some(range) = svc.delay_ms {
        tokio::time::sleep(Duration::from_millis(processing_delay_ms(range, random()))).await;
    }
    let (payment, charged) = store::approve(&svc.ctx, &new).await?;
    let item = PAYMENTS.item(&base, payment.id, &payment);
    if charged {
        Ok(created(&PAYMENTS.item_href(&base, payment.id), item))
    } else {
        Ok(hal(StatusCode::OK, item))
    }
}

/// Order gives up on a placement: whatever the order holds is voided, and a later charge
/// for it is barred. Idempotent.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn void(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let Void { order_id } = Void::parse(&body)?;
    tracing::Span::current().record("order_id", order_id);
    let payment = store::void(&svc.ctx, order_id).await?;
    Ok(hal(StatusCode::OK, PAYMENTS.item(&base, payment.id, &payment)))
}

async fn list(State(svc): State<Arc<Service>>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let page = PAYMENTS.page_request(q.as_deref())?;
    let (rows, total) = store::page(&svc.ctx, &page).await?;
    let items: Vec<_> = rows.into_iter().map(|p| (p.id, p)).collect();
    Ok(PAYMENTS.page(&base, &page, &items, total))
}

async fn one(State(svc): State<Arc<Service>>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "payment")?;
    let payment = store::find(&svc.ctx, id).await?.ok_or_else(|| Problem::not_found(format!("no payment {id}")))?;
    Ok(hal(StatusCode::OK, PAYMENTS.item(&base, id, &payment)))
}

async fn searches(base: BaseUrl) -> Response {
    hal(
        StatusCode::OK,
        json!({ "_links": {
            "findByOrderId": { "href": base.href("/payments/search/findByOrderId{?orderId}"), "templated": true },
            "self": { "href": base.href("/payments/search") },
        }}),
    )
}

async fn find_by_order_id(
    State(svc): State<Arc<Service>>,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let payment = store::find_by_order(&svc.ctx, order_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no payment for order {order_id}")))?;
    Ok(hal(StatusCode::OK, PAYMENTS.item(&base, payment.id, &payment)))
}

/// A random number for the simulated delay: std's `RandomState` is seeded randomly per
/// process and per instance, which is all a load-test jitter needs (no extra crate).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}
