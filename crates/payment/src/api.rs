//! `/payments`: charge (idempotent per order), void, list, read, find by order. The HTTP
//! edge: bodies are validated here into the call types order sends, and the crate's
//! [`Error`]s become problem+json.
//!
//! Who may do what (SPEC §9) is declared beside each route: charging and voiding are for the
//! cafe's own services (order), reading for customers (their own payments; another's is
//! answered 404, as if it did not exist) and managers.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use contracts::calls::{Charge, VoidPayment};
use platform::auth::{Caller, Role, SERVICES};
use platform::hal::{parse_id, query_id, HAL_JSON};
use platform::json::{checked, Fields};
use platform::openapi::{self, Described, OpenApiRouter};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use serde::Serialize;

use crate::domain::{processing_delay_ms, Payment};
use crate::error::Error;
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

/// Who reads payments: customers (their own) and managers.
const READERS: &[Role] = &[Role::Customer, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .op(openapi::get("/payments", READERS, list)
            .tag("payments")
            .summary("Payments", "Every payment, or a customer's own.")
            .paged(PAYMENTS.sortable)
            .page_of::<Payment>(PAYMENTS.collection))
        .op(openapi::post("/payments", SERVICES, pay)
            .tag("payments")
            .summary("Charge an order", "Idempotent per `orderId`: a repeat answers the first charge (200).")
            .body::<Charge>()
            .created::<Payment>("Charged now.")
            .item::<Payment>(200, "The order was charged (or voided) before: that payment as it stands."))
        .op(openapi::post("/payments/voids", SERVICES, void)
            .tag("payments")
            .summary(
                "Void an order's payment",
                "Whatever the order holds is voided and a later charge barred. Idempotent.",
            )
            .body::<VoidPayment>()
            .item::<Payment>(200, "The payment, canceled (or the bar against a later charge)."))
        .op(openapi::get("/payments/search", READERS, searches)
            .tag("payments")
            .summary("The searches", "Links to each search, as Spring Data REST lists them.")
            .json(200, "The searches.", HAL_JSON, openapi::links_only()))
        .op(openapi::get("/payments/search/findByOrderId", READERS, find_by_order_id)
            .tag("payments")
            .summary("An order's payment", "A customer finds only their own.")
            .query_id("orderId", "The order's id.")
            .item::<Payment>(200, "The payment.")
            .fails(404, "No payment for that order (or not one the caller may see)."))
        .op(openapi::get("/payments/{id}", READERS, one)
            .tag("payments")
            .summary("A payment", "A customer sees only their own (another's is answered 404).")
            .item::<Payment>(200, "The payment."))
}

pub fn router(svc: Arc<Service>) -> Router {
    platform::openapi::finish(crate::NAME, routes(), svc)
}

/// A `POST /payments` body, every bad field named at once.
pub fn charge(body: &JsonBody) -> Result<Charge, Problem> {
    let mut f = Fields::new(body);
    let order_id = f.id("orderId");
    let phone_number = f.string("phoneNumber", 1, 40);
    let amt = f.int("amt", 0, 10_000_000);
    f.finish()?;
    Ok(Charge { order_id: checked(order_id)?, phone_number: checked(phone_number)?, amt: checked(amt)? })
}

/// A `POST /payments/voids` body.
pub fn void_payment(body: &JsonBody) -> Result<VoidPayment, Problem> {
    let mut f = Fields::new(body);
    let order_id = f.id("orderId");
    f.finish()?;
    Ok(VoidPayment { order_id: checked(order_id)? })
}

/// 201 when charged now, 200 with the existing payment when the order already has one.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn pay(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let charge = charge(&body)?;
    tracing::Span::current().record("order_id", charge.order_id);
    if let Some(range) = svc.delay_ms {
        tokio::time::sleep(Duration::from_millis(processing_delay_ms(range, random()))).await;
    }
    let (payment, charged) = store::approve(&svc.ctx, &charge).await.map_err(Error::from)?;
    Ok(PAYMENTS.saved(&base, payment.id, &payment, charged))
}

/// Order gives up on a placement: whatever the order holds is voided, and a later charge
/// for it is barred. Idempotent.
#[tracing::instrument(level = "debug", skip_all, fields(order_id))]
async fn void(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let VoidPayment { order_id } = void_payment(&body)?;
    tracing::Span::current().record("order_id", order_id);
    let payment = store::void(&svc.ctx, order_id).await.map_err(Error::from)?;
    Ok(PAYMENTS.found(&base, payment.id, &payment))
}

/// Every payment, or a customer's own.
async fn list(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    PAYMENTS
        .list(&base, q.as_deref(), async |page| store::page(&svc.ctx, page, caller.customer_phone()).await, |p| p.id)
        .await
}

async fn one(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "payment")?;
    let payment = store::find(&svc.ctx, id)
        .await
        .map_err(Error::from)?
        .filter(|p| caller.may_see(&p.phone_number))
        .ok_or(Error::NotFound(id))?;
    Ok(PAYMENTS.found(&base, id, &payment))
}

/// The search index, as Spring Data REST lists a repository's searches.
#[derive(Serialize)]
struct Searches {
    #[serde(rename = "_links")]
    links: SearchLinks,
}

#[derive(Serialize)]
struct SearchLinks {
    #[serde(rename = "findByOrderId")]
    find_by_order_id: Link,
    #[serde(rename = "self")]
    own: Link,
}

#[derive(Serialize)]
struct Link {
    href: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    templated: bool,
}

async fn searches(base: BaseUrl) -> Response {
    let index = Searches {
        links: SearchLinks {
            find_by_order_id: Link { href: base.href("/payments/search/findByOrderId{?orderId}"), templated: true },
            own: Link { href: base.href("/payments/search"), templated: false },
        },
    };
    let mut res = (StatusCode::OK, axum::Json(index)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL_JSON));
    res
}

async fn find_by_order_id(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let payment = store::find_by_order(&svc.ctx, order_id)
        .await
        .map_err(Error::from)?
        .filter(|p| caller.may_see(&p.phone_number))
        .ok_or(Error::NoneForOrder(order_id))?;
    Ok(PAYMENTS.found(&base, payment.id, &payment))
}

/// A random number for the simulated delay: std's `RandomState` is seeded randomly per
/// process and per instance, which is all a load-test jitter needs (no extra crate).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests {
    use platform::testing::json_body as body;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_charge_names_every_bad_field() {
        let p = charge(&body(json!({"orderId": 0, "phoneNumber": "", "amt": 10_000_001}))).unwrap_err();
        let names = p.fields();
        assert_eq!(names, ["orderId", "phoneNumber", "amt"]);
        let ok = charge(&body(json!({"orderId": 3, "phoneNumber": "010-1", "amt": 0}))).unwrap();
        assert_eq!(ok, Charge { order_id: 3, phone_number: "010-1".into(), amt: 0 });
    }

    #[test]
    fn a_void_needs_a_positive_order_id() {
        assert_eq!(void_payment(&body(json!({"orderId": "3"}))).unwrap_err().status, 400);
        assert_eq!(void_payment(&body(json!({"orderId": 3}))).unwrap(), VoidPayment { order_id: 3 });
    }
}
