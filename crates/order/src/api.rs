//! `/orders`: place (pay first), list, read, cancel (ledger first).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use platform::client::CallError;
use platform::hal::{created, hal, parse_id};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use serde_json::json;
use tracing::Instrument;

use crate::domain::NewOrder;
use crate::{store, Service};

pub const ORDERS: Resource = Resource {
    collection: "orders",
    rel: "order",
    sortable: &[
        ("id", "id"),
        ("phoneNumber", "phone_number"),
        ("productName", "product_name"),
        ("qty", "qty"),
        ("amt", "amt"),
        ("status", "status"),
        ("createTime", "create_time"),
    ],
};

pub fn router(svc: Arc<Service>) -> Router {
    Router::new().route("/orders", get(list).post(place)).route("/orders/{id}", get(one).delete(cancel)).with_state(svc)
}

#[tracing::instrument(level = "debug", skip_all)]
async fn place(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let new = NewOrder::parse(&body)?;
    let order = to_the_end(&svc, {
        let svc = svc.clone();
        async move { svc.place_order(&new).await }
    })
    .await?;
    let item = ORDERS.item(&base, order.id, &order);
    Ok(created(&ORDERS.item_href(&base, order.id), item))
}

async fn list(State(svc): State<Arc<Service>>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let page = ORDERS.page_request(q.as_deref())?;
    let (rows, total) = store::page(&svc.ctx, &page).await?;
    let items: Vec<_> = rows.into_iter().map(|o| (o.id, o)).collect();
    Ok(ORDERS.page(&base, &page, &items, total))
}

async fn one(State(svc): State<Arc<Service>>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "order")?;
    let order = store::find(&svc.ctx, id).await?.ok_or_else(|| Problem::not_found(format!("no order {id}")))?;
    Ok(hal(StatusCode::OK, ORDERS.item(&base, id, &order)))
}

/// Cancelling records the cancellation in delivery's ledger first; only then is the order
/// deleted. If delivery cannot record it, the order stays exactly as it was.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn cancel(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "order")?;
    tracing::Span::current().record("order_id", id);
    to_the_end(&svc, cancel_order(svc.clone(), id)).await
}

/// Runs a saga step on its own task, so it finishes even if the client hangs up. Dropped
/// halfway with the client's request, a call would never report to its circuit breaker (a
/// half-open circuit would wait for that trial forever and refuse every call), a placement
/// would leave its pending order for the reconciler, and a cancellation recorded in the
/// ledger would not delete its order.
async fn to_the_end<T, F>(svc: &Service, step: F) -> Result<T, Problem>
where
    F: std::future::Future<Output = Result<T, Problem>> + Send + 'static,
    T: Send + 'static,
{
    match svc.ctx.tracker.spawn(platform::trace::carry(step).in_current_span()).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "saga step failed");
            Err(Problem::internal())
        }
    }
}

async fn cancel_order(svc: Arc<Service>, id: i64) -> Result<Response, Problem> {
    store::find(&svc.ctx, id).await?.ok_or_else(|| Problem::not_found(format!("no order {id}")))?;
    match svc.delivery.post_json("/cancellations", &json!({ "orderId": id })).await {
        Ok(_) => {}
        Err(CallError::Refused { status, body, .. }) if status == StatusCode::CONFLICT => {
            let why = body.get("detail").and_then(|d| d.as_str()).unwrap_or("the delivery refused the cancellation");
            return Err(Problem::conflict(format!("order {id} cannot be cancelled: {why}")));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cancellation not recorded; order kept");
            return Err(Problem::unavailable(
                "delivery cannot record the cancellation right now; the order is unchanged, please try again shortly",
                svc.retry_after_secs,
            ));
        }
    }
    match store::delete(&svc.ctx, id).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(Problem::not_found(format!("no order {id}"))),
    }
}
