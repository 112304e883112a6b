//! `/orders`: place (pay first), list, read, cancel (ledger first). The HTTP edge: bodies are
//! validated here into the domain's types, and the crate's [`Error`]s become problem+json.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use platform::hal::{created, hal, parse_id};
use platform::json::{checked, Fields};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use tracing::Instrument;

use crate::domain::{NewOrder, PhoneNumber};
use crate::error::Error;
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

/// A `POST /orders` body, every bad field named at once.
pub fn new_order(body: &JsonBody) -> Result<NewOrder, Problem> {
    let mut f = Fields::new(body);
    let phone = f.string("phoneNumber", 1, 40).and_then(|raw| match PhoneNumber::parse(&raw) {
        Ok(p) => Some(p),
        Err(msg) => {
            f.error("phoneNumber", msg);
            None
        }
    });
    let product_name = f.string("productName", 1, 100);
    let qty = f.int("qty", 1, 100);
    let amt = f.int("amt", 0, 10_000_000);
    f.finish()?;
    Ok(NewOrder {
        phone_number: checked(phone)?,
        product_name: checked(product_name)?,
        qty: checked(qty)?,
        amt: checked(amt)?,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
async fn place(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let new = new_order(&body)?;
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
    let order = store::find(&svc.ctx, id).await?.ok_or(Error::NotFound(id))?;
    Ok(hal(StatusCode::OK, ORDERS.item(&base, id, &order)))
}

/// Cancelling records the cancellation in delivery's ledger first; only then is the order
/// deleted. If delivery cannot record it, the order stays exactly as it was.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn cancel(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "order")?;
    tracing::Span::current().record("order_id", id);
    to_the_end(&svc, {
        let svc = svc.clone();
        async move { svc.cancel_order(id).await }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Runs a saga step on its own task, so it finishes even if the client hangs up. Dropped
/// halfway with the client's request, a call would never report to its circuit breaker (a
/// half-open circuit would wait for that trial forever and refuse every call), a placement
/// would leave its pending order for the reconciler, and a cancellation recorded in the
/// ledger would not delete its order.
async fn to_the_end<T, F>(svc: &Service, step: F) -> Result<T, Problem>
where
    F: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    match svc.ctx.tracker().spawn(step.in_current_span()).await {
        Ok(result) => result.map_err(Problem::from),
        Err(e) => {
            tracing::error!(error = %e, "saga step failed");
            Err(Problem::internal())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: serde_json::Value) -> JsonBody {
        JsonBody(v.as_object().unwrap().clone())
    }

    #[test]
    fn a_new_order_names_every_bad_field() {
        let p = new_order(&body(json!({"phoneNumber": "12-34", "productName": "", "qty": 0, "amt": "1"}))).unwrap_err();
        let names: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!((p.status, names), (400, vec!["phoneNumber", "productName", "qty", "amt"]));
    }

    #[test]
    fn a_new_order_strips_the_phone_numbers_hyphens() {
        let new =
            new_order(&body(json!({"phoneNumber": "010-1234-5678", "productName": " Latte ", "qty": 2, "amt": 9000})))
                .unwrap();
        assert_eq!(new.phone_number.as_str(), "01012345678");
        assert_eq!((new.product_name.as_str(), new.qty, new.amt), ("Latte", 2, 9000));
    }
}
