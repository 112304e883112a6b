//! `/deliverypages`: list, read, find by order, list by status. Read-only: the pages are
//! written by events.
//!
//! Who may read (SPEC §9) is declared beside each route: riders and managers.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Router;
use platform::auth::Role;
use platform::hal::{parse_id, query_id, query_param};
use platform::openapi::{self, Described, OpenApiRouter};
use platform::problem::FieldError;
use platform::{BaseUrl, Ctx, Problem, Resource};

use crate::domain::{DeliveryPage, DeliveryPageStatus};
use crate::error::Error;
use crate::store;

pub const DELIVERY_PAGES: Resource = Resource {
    collection: "deliverypages",
    rel: "deliverypage",
    sortable: &[("id", "id"), ("orderId", "order_id"), ("status", "status")],
};

/// Who reads the delivery pages.
const RIDERS: &[Role] = &[Role::Rider, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .op(openapi::get("/deliverypages", RIDERS, list)
            .tag("deliverypages")
            .summary("The delivery center", "Every order's delivery page; fields no event has told yet are null.")
            .paged(DELIVERY_PAGES.sortable)
            .page_of::<DeliveryPage>(DELIVERY_PAGES.collection))
        .op(openapi::get("/deliverypages/{id}", RIDERS, one)
            .tag("deliverypages")
            .summary("A delivery page", "Its id is the order's.")
            .item::<DeliveryPage>(200, "The page."))
        .op(openapi::get("/deliverypages/search/findByOrderId", RIDERS, by_order)
            .tag("deliverypages")
            .summary("An order's delivery page", "")
            .query_id("orderId", "The order's id.")
            .item::<DeliveryPage>(200, "The page.")
            .fails(404, "No page for that order yet."))
        .op(openapi::get("/deliverypages/search/findByStatus", RIDERS, by_status)
            .tag("deliverypages")
            .summary("The pages at one stage", "Paged like the list.")
            .query_enum("status", "The stage.", &DeliveryPageStatus::ALL.map(DeliveryPageStatus::as_str))
            .paged(DELIVERY_PAGES.sortable)
            .page_of::<DeliveryPage>(DELIVERY_PAGES.collection))
}

pub fn router(ctx: Ctx) -> Router {
    platform::openapi::finish(crate::NAME, routes(), ctx)
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    DELIVERY_PAGES.list(&base, q.as_deref(), async |page| store::page(&ctx, page).await, |p| p.id).await
}

async fn one(State(ctx): State<Ctx>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "delivery page")?;
    let p = store::find(ctx.db().pool(), id).await?.ok_or(Error::NotFound(id))?;
    Ok(DELIVERY_PAGES.found(&base, id, &p))
}

async fn by_order(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let p = store::find_by_order(ctx.db().pool(), order_id).await?.ok_or(Error::NotFoundForOrder(order_id))?;
    Ok(DELIVERY_PAGES.found(&base, p.id, &p))
}

/// `GET /deliverypages/search/findByStatus?status=Delivered` (and `page`, `size`, `sort`): the
/// pages at that stage, paged like the list.
async fn by_status(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let asked = query_param(q.as_deref(), "status")?;
    let status = DeliveryPageStatus::parse(&asked).ok_or_else(|| {
        let known: Vec<&str> = DeliveryPageStatus::ALL.iter().map(|s| s.as_str()).collect();
        Problem::validation(vec![FieldError {
            field: "status".into(),
            message: format!("is one of {}", known.join(", ")),
        }])
    })?;
    DELIVERY_PAGES.list(&base, q.as_deref(), async |page| store::page_at(&ctx, page, status).await, |p| p.id).await
}
