//! `/orders`: place (pay first), list, read, cancel (ledger first), and `/menu`. The HTTP
//! edge: bodies are validated here into the domain's types, and the crate's [`Error`]s become
//! problem+json.
//!
//! Who may do what (SPEC §9) is declared beside each route. A customer sees and cancels only
//! the orders under their own phone number (another's is answered 404, as if it did not
//! exist) and places orders only under it. With auth off ([`Caller::Open`]) everything is as
//! the original ran it: open, and the client sends `amt`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use platform::auth::{Caller, Role, SIGNED_IN};
use platform::hal::{created, hal, parse_id, HAL_JSON};
use platform::json::{checked, Fields};
use platform::openapi::{self, Described, OpenApiRouter, ToSchema, ANYONE};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use serde_json::json;
use tracing::Instrument;

use crate::domain::{NewOrder, Order, PhoneNumber};
use crate::error::Error;
use crate::menu::{Menu, MenuItem};
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

/// Who places and cancels orders: customers (their own) and managers.
const CUSTOMER_OR_MANAGER: &[Role] = &[Role::Customer, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .op(openapi::get("/menu", ANYONE, menu)
            .tag("orders")
            .summary("The menu", "What is sold and at what price; with auth on, orders are priced from it.")
            .uses::<MenuItem>()
            .json(200, "The menu, as a HAL collection.", HAL_JSON, menu_schema()))
        .op(openapi::get("/orders", SIGNED_IN, list)
            .tag("orders")
            .summary("Orders", "Every order, or a customer's own.")
            .paged(ORDERS.sortable)
            .page_of::<Order>(ORDERS.collection))
        .op(openapi::post("/orders", CUSTOMER_OR_MANAGER, place)
            .tag("orders")
            .summary(
                "Place an order",
                "Pays first: the order exists only once payment approved it. With auth on the price comes from \
                 the menu (`amt` may be left out, or must be price × qty), and a customer orders under their own \
                 phone number (leave `phoneNumber` out); with auth off every field is required.",
            )
            .body::<PlaceOrder>()
            .created::<Order>("Placed and paid.")
            .fails(403, "A customer ordering under another phone number, or a role that may not order.")
            .fails(422, "A product not on the menu, or an `amt` that is not price × qty (the field named)."))
        .op(openapi::get("/orders/{id}", SIGNED_IN, one)
            .tag("orders")
            .summary("An order", "A customer sees only their own (another's is answered 404).")
            .item::<Order>(200, "The order."))
        .op(openapi::delete("/orders/{id}", CUSTOMER_OR_MANAGER, cancel)
            .tag("orders")
            .summary(
                "Cancel an order",
                "Recorded in delivery's ledger first, then the order is deleted. 503 while delivery has not \
                 confirmed (the cancellation is settled later); 409 once delivered.",
            )
            .no_content("Cancelled.")
            .fails(409, "The order was delivered: it cannot be cancelled."))
}

pub fn router(svc: Arc<Service>) -> Router {
    platform::openapi::finish(crate::NAME, routes(), svc)
}

/// A `POST /orders` body (see [`priced_order`] and [`new_order`] for how it is read).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // only its schema is used
struct PlaceOrder {
    /// The customer's phone number, digits with optional hyphens. Required with auth off and
    /// for a manager; a customer's own is taken from their token.
    #[schema(min_length = 1, max_length = 40)]
    phone_number: Option<String>,
    #[schema(min_length = 1, max_length = 100, example = "Americano")]
    product_name: String,
    #[schema(minimum = 1, maximum = 100)]
    qty: i64,
    /// The amount; with auth on, optional and checked against the menu.
    #[schema(minimum = 0, maximum = 10_000_000)]
    amt: Option<i64>,
}

fn menu_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["_embedded", "_links"],
        "properties": {
            "_embedded": {
                "type": "object",
                "required": ["menu"],
                "properties": {"menu": {"type": "array", "items": {"$ref": "#/components/schemas/MenuItem"}}},
            },
            "_links": {"$ref": "#/components/schemas/Links"},
        },
    })
}

/// The `phoneNumber` field, hyphens stripped.
fn phone_number(f: &mut Fields) -> Option<PhoneNumber> {
    f.string("phoneNumber", 1, 40).and_then(|raw| match PhoneNumber::parse(&raw) {
        Ok(p) => Some(p),
        Err(msg) => {
            f.error("phoneNumber", msg);
            None
        }
    })
}

/// A `POST /orders` body as the original took it (auth off): the client sends `amt`, for any
/// product. Every bad field named at once.
pub fn new_order(body: &JsonBody) -> Result<NewOrder, Problem> {
    let mut f = Fields::new(body);
    let phone = phone_number(&mut f);
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

/// A `POST /orders` body when prices come from the menu (auth on): `{productName, qty}`, and
/// `amt` only if the client wants it checked. The phone number is the customer's own, from
/// their token (`customer`; sending another is refused, 403), or, for a manager (`None`),
/// required in the body. Malformed fields: 400, all named; a product not on the menu or an
/// `amt` that is not price × qty: 422 naming it.
pub fn priced_order(body: &JsonBody, menu: &Menu, customer: Option<&str>) -> Result<NewOrder, Problem> {
    let sent = |field: &str| body.0.get(field).is_some_and(|v| !v.is_null());
    let mut f = Fields::new(body);
    let phone = if customer.is_none() || sent("phoneNumber") { phone_number(&mut f) } else { None };
    let product_name = f.string("productName", 1, 100);
    let qty = f.int("qty", 1, 100);
    let amt = if sent("amt") { f.int("amt", 0, 10_000_000) } else { None };
    f.finish()?;
    let phone_number = match customer {
        None => checked(phone)?,
        Some(own) => {
            let own = PhoneNumber::parse(own).map_err(|_| Error::AnotherPhone)?;
            if phone.is_some_and(|sent| sent != own) {
                return Err(Error::AnotherPhone.into());
            }
            own
        }
    };
    let qty = checked(qty)?;
    let priced = menu.price(&checked(product_name)?, qty, amt)?;
    Ok(NewOrder { phone_number, product_name: priced.product_name, qty, amt: priced.amt })
}

/// The menu, as a HAL collection.
async fn menu(State(svc): State<Arc<Service>>, base: BaseUrl) -> Response {
    hal(
        StatusCode::OK,
        json!({"_embedded": {"menu": svc.config.menu.items()}, "_links": {"self": {"href": base.href("/menu")}}}),
    )
}

#[tracing::instrument(level = "debug", skip_all)]
async fn place(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    body: JsonBody,
) -> Result<Response, Problem> {
    let new = match caller {
        Caller::Open => new_order(&body)?,
        _ => priced_order(&body, &svc.config.menu, caller.customer_phone())?,
    };
    let order = to_the_end(&svc, {
        let svc = svc.clone();
        async move { svc.place_order(&new).await }
    })
    .await?;
    let item = ORDERS.item(&base, order.id, &order);
    Ok(created(&ORDERS.item_href(&base, order.id), item))
}

/// Every order, or a customer's own.
async fn list(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    ORDERS
        .list(&base, q.as_deref(), async |page| store::page(&svc.ctx, page, caller.customer_phone()).await, |o| o.id)
        .await
}

async fn one(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "order")?;
    let order =
        store::find(&svc.ctx, id).await?.filter(|o| caller.may_see(&o.phone_number)).ok_or(Error::NotFound(id))?;
    Ok(ORDERS.found(&base, id, &order))
}

/// Cancelling records the cancellation in delivery's ledger first; only then is the order
/// deleted. If delivery's answer does not come, the order stays (still `Ordered` to clients)
/// until the reconciler or a retry learns delivery's answer.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn cancel(State(svc): State<Arc<Service>>, caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "order")?;
    tracing::Span::current().record("order_id", id);
    to_the_end(&svc, {
        let svc = svc.clone();
        async move { svc.cancel_order(id, &caller).await }
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
    use platform::testing::json_body as body;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_new_order_names_every_bad_field() {
        let p = new_order(&body(json!({"phoneNumber": "12-34", "productName": "", "qty": 0, "amt": "1"}))).unwrap_err();
        let names = p.fields();
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
