//! `/mypages`: list, read, find by phone number (a page), find by order. Read-only: the rows
//! are written by events.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use platform::hal::{hal, parse_id, query_id, query_param};
use platform::problem::FieldError;
use platform::{BaseUrl, Ctx, Problem, Resource};

use crate::domain::PhoneNumber;
use crate::error::Error;
use crate::store;

pub const MY_PAGES: Resource = Resource {
    collection: "mypages",
    rel: "mypage",
    sortable: &[("id", "id"), ("orderId", "order_id"), ("status", "status"), ("phoneNumber", "phone_number")],
};

pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/mypages", get(list))
        .route("/mypages/{id}", get(one))
        .route("/mypages/search/findByPhoneNumber", get(by_phone_number))
        .route("/mypages/search/findByOrderId", get(by_order))
        .with_state(ctx)
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let page = MY_PAGES.page_request(q.as_deref())?;
    let (rows, total) = store::page(&ctx, &page, None).await?;
    let items: Vec<_> = rows.into_iter().map(|p| (p.id, p)).collect();
    Ok(MY_PAGES.page(&base, &page, &items, total))
}

async fn one(State(ctx): State<Ctx>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "my page")?;
    let p = store::find(ctx.db().pool(), id).await?.ok_or(Error::NotFound(id))?;
    Ok(hal(StatusCode::OK, MY_PAGES.item(&base, id, &p)))
}

/// A customer's orders: a page, possibly empty. The number may be given with hyphens.
async fn by_phone_number(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let phone = PhoneNumber::parse(&query_param(q.as_deref(), "phoneNumber")?).ok_or_else(|| {
        Error::Invalid(vec![FieldError { field: "phoneNumber".into(), message: "is required".into() }])
    })?;
    let page = MY_PAGES.page_request(q.as_deref())?;
    let (rows, total) = store::page(&ctx, &page, Some(&phone)).await?;
    let items: Vec<_> = rows.into_iter().map(|p| (p.id, p)).collect();
    Ok(MY_PAGES.page(&base, &page, &items, total))
}

async fn by_order(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let p = store::find_by_order(ctx.db().pool(), order_id).await?.ok_or(Error::NotFoundForOrder(order_id))?;
    Ok(hal(StatusCode::OK, MY_PAGES.item(&base, p.id, &p)))
}
