//! `/deliveries` (list, read, find by order, mark delivered) and `/cancellations` (the
//! ledger: record, list, read, find by order).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use platform::hal::{created, hal, parse_id, query_id};
use platform::{BaseUrl, Ctx, JsonBody, Problem, Resource};

use crate::domain::{parse_new_cancellation, parse_status_change};
use crate::store;

pub const DELIVERIES: Resource = Resource {
    collection: "deliveries",
    rel: "delivery",
    sortable: &[("id", "id"), ("orderId", "order_id"), ("status", "status")],
};

pub const CANCELLATIONS: Resource = Resource {
    collection: "cancellations",
    rel: "cancellation",
    sortable: &[("id", "id"), ("orderId", "order_id"), ("status", "status")],
};

pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}", get(one_delivery).patch(change_delivery))
        .route("/deliveries/search/findByOrderId", get(delivery_by_order))
        .route("/cancellations", get(list_cancellations).post(record_cancellation))
        .route("/cancellations/{id}", get(one_cancellation))
        .route("/cancellations/search/findByOrderId", get(cancellation_by_order))
        .with_state(ctx)
}

async fn list_deliveries(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let page = DELIVERIES.page_request(q.as_deref())?;
    let (rows, total) = store::page_deliveries(&ctx, &page).await?;
    let items: Vec<_> = rows.into_iter().map(|d| (d.id, d)).collect();
    Ok(DELIVERIES.page(&base, &page, &items, total))
}

async fn one_delivery(State(ctx): State<Ctx>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "delivery")?;
    let d =
        store::find_delivery(&ctx.db.pool, id).await?.ok_or_else(|| Problem::not_found(format!("no delivery {id}")))?;
    Ok(hal(StatusCode::OK, DELIVERIES.item(&base, id, &d)))
}

async fn delivery_by_order(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let d = store::delivery_of_order(&ctx.db.pool, order_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no delivery for order {order_id}")))?;
    Ok(hal(StatusCode::OK, DELIVERIES.item(&base, d.id, &d)))
}

/// A rider reports the drink delivered. Repeating it is a no-op; a cancelled delivery
/// cannot be delivered (409).
#[tracing::instrument(level = "debug", skip_all, fields(delivery_id))]
async fn change_delivery(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "delivery")?;
    tracing::Span::current().record("delivery_id", id);
    parse_status_change(&body)?;
    let d = store::mark_delivered(&ctx, id).await?.ok_or_else(|| Problem::not_found(format!("no delivery {id}")))?;
    Ok(hal(StatusCode::OK, DELIVERIES.item(&base, id, &d)))
}

async fn list_cancellations(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let page = CANCELLATIONS.page_request(q.as_deref())?;
    let (rows, total) = store::page_cancellations(&ctx, &page).await?;
    let items: Vec<_> = rows.into_iter().map(|c| (c.id, c)).collect();
    Ok(CANCELLATIONS.page(&base, &page, &items, total))
}

async fn one_cancellation(State(ctx): State<Ctx>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "cancellation")?;
    let c = store::find_cancellation(&ctx.db.pool, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no cancellation {id}")))?;
    Ok(hal(StatusCode::OK, CANCELLATIONS.item(&base, id, &c)))
}

async fn cancellation_by_order(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let c = store::cancellation_of_order(&ctx.db.pool, order_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no cancellation for order {order_id}")))?;
    Ok(hal(StatusCode::OK, CANCELLATIONS.item(&base, c.id, &c)))
}

/// Order records a cancellation here before it deletes the order. 201 the first time, 200
/// with the same entry on a repeat (order's retries are safe), 409 once delivered.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn record_cancellation(State(ctx): State<Ctx>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let order_id = parse_new_cancellation(&body)?;
    tracing::Span::current().record("order_id", order_id);
    let recorded = store::record_cancellation(&ctx, order_id).await?;
    let c = &recorded.cancellation;
    let item = CANCELLATIONS.item(&base, c.id, c);
    if recorded.created {
        Ok(created(&CANCELLATIONS.item_href(&base, c.id), item))
    } else {
        Ok(hal(StatusCode::OK, item))
    }
}
