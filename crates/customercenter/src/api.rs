//! `/mypages`: list, read, find by phone number (a page), find by order. Read-only: the rows
//! are written by events.
//!
//! Who may read (SPEC §9) is declared beside each route: customers and managers. A customer
//! sees only the rows under their own phone number: another's row is answered 404, as if it
//! did not exist, and a search by another's number finds nothing.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Router;
use platform::auth::{Caller, Role};
use platform::hal::{parse_id, query_id, query_param};
use platform::openapi::{self, Described, OpenApiRouter};
use platform::problem::FieldError;
use platform::{BaseUrl, Ctx, Problem, Resource};

use crate::domain::{MyPage, PhoneNumber};
use crate::error::Error;
use crate::store;

pub const MY_PAGES: Resource = Resource {
    collection: "mypages",
    rel: "mypage",
    sortable: &[("id", "id"), ("orderId", "order_id"), ("status", "status"), ("phoneNumber", "phone_number")],
};

/// Who reads "my page": customers (their own rows) and managers.
const READERS: &[Role] = &[Role::Customer, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Ctx> {
    let own = "A customer sees only the rows under their own phone number.";
    OpenApiRouter::new()
        .op(openapi::get("/mypages", READERS, list)
            .tag("mypages")
            .summary("My page", own)
            .paged(MY_PAGES.sortable)
            .page_of::<MyPage>(MY_PAGES.collection))
        .op(openapi::get("/mypages/{id}", READERS, one)
            .tag("mypages")
            .summary("An order's row", "Its id is the order's; another customer's is answered 404.")
            .item::<MyPage>(200, "The row."))
        .op(openapi::get("/mypages/search/findByPhoneNumber", READERS, by_phone_number)
            .tag("mypages")
            .summary(
                "A customer's orders",
                "A page, possibly empty; hyphens in the number are ignored. A customer finds only their own.",
            )
            .query("phoneNumber", "The customer's phone number.")
            .paged(MY_PAGES.sortable)
            .page_of::<MyPage>(MY_PAGES.collection))
        .op(openapi::get("/mypages/search/findByOrderId", READERS, by_order)
            .tag("mypages")
            .summary("An order's row", own)
            .query_id("orderId", "The order's id.")
            .item::<MyPage>(200, "The row.")
            .fails(404, "No row for that order (or not one the caller may see)."))
}

pub fn router(ctx: Ctx) -> Router {
    platform::openapi::finish(crate::NAME, routes(), ctx)
}

/// Whether `caller` may see `row`: a customer only a row under their own phone number.
fn may_see(caller: &Caller, row: &MyPage) -> bool {
    caller.customer_phone().is_none_or(|own| !own.is_empty() && row.phone_number.as_deref() == Some(own))
}

/// A page of the rows under `phone` (every row for `None`) that `caller` may see: a
/// customer's own, whatever they asked for, so another's number finds nothing.
async fn rows_for(
    ctx: &Ctx,
    caller: &Caller,
    base: &BaseUrl,
    q: Option<&str>,
    phone: Option<PhoneNumber>,
) -> Result<Response, Problem> {
    let page = MY_PAGES.page_request(q)?;
    let phone = match caller.customer_phone() {
        None => phone,
        Some(own) => match (PhoneNumber::parse(own), phone) {
            (Some(own), None) => Some(own),
            (Some(own), Some(asked)) if asked == own => Some(own),
            // Another's number, or a customer token without one.
            _ => return Ok(MY_PAGES.page::<MyPage>(base, &page, &[], 0)),
        },
    };
    let rows = store::page(ctx, &page, phone.as_ref()).await?;
    Ok(MY_PAGES.page_of(base, &page, rows, |p| p.id))
}

async fn list(
    State(ctx): State<Ctx>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    rows_for(&ctx, &caller, &base, q.as_deref(), None).await
}

async fn one(
    State(ctx): State<Ctx>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "my page")?;
    let p = store::find(ctx.db().pool(), id).await?.filter(|p| may_see(&caller, p)).ok_or(Error::NotFound(id))?;
    Ok(MY_PAGES.found(&base, id, &p))
}

/// A customer's orders: a page, possibly empty. The number may be given with hyphens.
async fn by_phone_number(
    State(ctx): State<Ctx>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let phone = PhoneNumber::parse(&query_param(q.as_deref(), "phoneNumber")?).ok_or_else(|| {
        let message = "must be a phone number: digits, hyphens allowed".into();
        Error::Invalid(vec![FieldError { field: "phoneNumber".into(), message }])
    })?;
    rows_for(&ctx, &caller, &base, q.as_deref(), Some(phone)).await
}

async fn by_order(
    State(ctx): State<Ctx>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let p = store::find_by_order(ctx.db().pool(), order_id)
        .await?
        .filter(|p| may_see(&caller, p))
        .ok_or(Error::NotFoundForOrder(order_id))?;
    Ok(MY_PAGES.found(&base, p.id, &p))
}
