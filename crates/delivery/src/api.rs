//! `/deliveries` (list, read, find by order, mark delivered) and `/cancellations` (the
//! ledger: record, list, read, find by order).
//!
//! Who may do what (SPEC §9) is declared beside each route: riders and managers read and
//! mark deliveries; only the cafe's own services (order) record a cancellation.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Router;
use contracts::calls::RecordCancellation;
use platform::auth::{Role, SERVICES};
use platform::hal::{parse_id, query_id};
use platform::json::{checked, Fields};
use platform::openapi::{self, Described, OpenApiRouter, ToSchema};
use platform::{BaseUrl, Ctx, JsonBody, Problem, Resource};

use crate::domain::{Cancellation, Delivery, DeliveryStatus};
use crate::{store, Error};

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

/// A delivery or a cancellation, as its resource shows it.
trait Shown: store::Stored + serde::Serialize {
    const RESOURCE: Resource;
}

impl Shown for Delivery {
    const RESOURCE: Resource = DELIVERIES;
}

impl Shown for Cancellation {
    const RESOURCE: Resource = CANCELLATIONS;
}

/// Who sees the deliveries and delivers.
const RIDERS: &[Role] = &[Role::Rider, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Ctx> {
    let by_order_id = "The order's id.";
    OpenApiRouter::new()
        .op(openapi::get("/deliveries", RIDERS, list_deliveries)
            .tag("deliveries")
            .summary("Deliveries", "Every delivery, whatever its status.")
            .paged(DELIVERIES.sortable)
            .page_of::<Delivery>(DELIVERIES.collection))
        .op(openapi::get("/deliveries/{id}", RIDERS, one::<Delivery>)
            .tag("deliveries")
            .summary("A delivery", "")
            .item::<Delivery>(200, "The delivery."))
        .op(openapi::patch("/deliveries/{id}", RIDERS, change_delivery)
            .tag("deliveries")
            .summary("Mark a delivery delivered", "Only `Delivered` can be asked for; repeating it changes nothing.")
            .body::<MarkDelivered>()
            .item::<Delivery>(200, "The delivery, delivered.")
            .fails(409, "The delivery was cancelled: it cannot be delivered."))
        .op(openapi::get("/deliveries/search/findByOrderId", RIDERS, by_order::<Delivery>)
            .tag("deliveries")
            .summary("An order's delivery", "")
            .query_id("orderId", by_order_id)
            .item::<Delivery>(200, "The delivery.")
            .fails(404, "No delivery for that order."))
        .op(openapi::get("/cancellations", RIDERS, list_cancellations)
            .tag("cancellations")
            .summary("The cancellation ledger", "Every order whose cancellation delivery recorded.")
            .paged(CANCELLATIONS.sortable)
            .page_of::<Cancellation>(CANCELLATIONS.collection))
        .op(openapi::post("/cancellations", SERVICES, record_cancellation)
            .tag("cancellations")
            .summary(
                "Record an order's cancellation",
                "Idempotent per `orderId`: a repeat answers the entry recorded first (200).",
            )
            .body::<RecordCancellation>()
            .created::<Cancellation>("Recorded now.")
            .item::<Cancellation>(200, "Recorded before: that entry.")
            .fails(409, "The order was delivered: its cancellation is refused."))
        .op(openapi::get("/cancellations/{id}", RIDERS, one::<Cancellation>)
            .tag("cancellations")
            .summary("A ledger entry", "")
            .item::<Cancellation>(200, "The entry."))
        .op(openapi::get("/cancellations/search/findByOrderId", RIDERS, by_order::<Cancellation>)
            .tag("cancellations")
            .summary("An order's ledger entry", "")
            .query_id("orderId", by_order_id)
            .item::<Cancellation>(200, "The entry.")
            .fails(404, "No cancellation recorded for that order."))
}

pub fn router(ctx: Ctx) -> Router {
    platform::openapi::finish(crate::NAME, routes(), ctx)
}

/// A `PATCH /deliveries/{id}` body (read by [`status_change`]).
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
struct MarkDelivered {
    #[schema(value_type = String, pattern = "^Delivered$", example = "Delivered")]
    status: DeliveryStatus,
}

/// The one place the service's errors become answers: a refused change is a 409 saying why.
impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        match e {
            Error::AlreadyDelivered { .. } | Error::IllegalTransition { .. } => Problem::conflict(e.to_string()),
            Error::Db(e) => e.into(),
        }
    }
}

/// A `POST /cancellations` body: the order to cancel.
fn new_cancellation(body: &JsonBody) -> Result<RecordCancellation, Problem> {
    let mut f = Fields::new(body);
    let order_id = f.id("orderId");
    f.finish()?;
    Ok(RecordCancellation { order_id: checked(order_id)? })
}

/// A `PATCH /deliveries/{id}` body. Only `Delivered` can be asked for: a delivery starts
/// from `Made` and is cancelled through the ledger, never by a PATCH.
fn status_change(body: &JsonBody) -> Result<DeliveryStatus, Problem> {
    let mut f = Fields::new(body);
    let status = f.string("status", 1, 40);
    if let Some(s) = &status {
        if DeliveryStatus::parse(s) != Some(DeliveryStatus::Delivered) {
            f.error("status", "must be \"Delivered\"");
        }
    }
    f.finish()?;
    Ok(DeliveryStatus::Delivered)
}

async fn list_deliveries(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    DELIVERIES.list(&base, q.as_deref(), async |page| store::page_deliveries(&ctx, page).await, |d| d.id).await
}

/// `GET /deliveries/{id}` or `/cancellations/{id}`.
async fn one<T: Shown>(State(ctx): State<Ctx>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, T::RESOURCE.rel)?;
    let item = store::find::<T>(ctx.db().pool(), id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no {} {id}", T::RESOURCE.rel)))?;
    Ok(T::RESOURCE.found(&base, id, &item))
}

/// `GET /deliveries/search/findByOrderId?orderId=` or the same of `/cancellations`.
async fn by_order<T: Shown>(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let order_id = query_id(q.as_deref(), "orderId")?;
    let item = store::of_order::<T>(ctx.db().pool(), order_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no {} for order {order_id}", T::RESOURCE.rel)))?;
    Ok(T::RESOURCE.found(&base, item.id(), &item))
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
    status_change(&body)?;
    let d = store::mark_delivered(&ctx, id).await?.ok_or_else(|| Problem::not_found(format!("no delivery {id}")))?;
    Ok(DELIVERIES.found(&base, id, &d))
}

async fn list_cancellations(State(ctx): State<Ctx>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    CANCELLATIONS.list(&base, q.as_deref(), async |page| store::page_cancellations(&ctx, page).await, |c| c.id).await
}

async fn record_cancellation(State(ctx): State<Ctx>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let call = new_cancellation(&body)?;
    tracing::Span::current().record("order_id", call.order_id);
    let recorded = store::record_cancellation(&ctx, &call).await?;
    let c = &recorded.cancellation;
    Ok(CANCELLATIONS.saved(&base, c.id, c, recorded.created))
}

#[cfg(test)]
mod tests {
    use platform::testing::json_body as body;
    use serde_json::json;

    use super::*;

    #[test]
    fn only_delivered_may_be_patched() {
        assert_eq!(status_change(&body(json!({"status": "Delivered"}))).unwrap(), DeliveryStatus::Delivered);
        for bad in [json!({"status": "Delivery Started"}), json!({"status": "Lost"}), json!({"status": 3}), json!({})] {
            let p = status_change(&body(bad.clone())).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "status"), "{bad}");
        }
    }

    #[test]
    fn a_cancellation_needs_a_positive_order_id() {
        assert_eq!(new_cancellation(&body(json!({"orderId": 5}))).unwrap(), RecordCancellation { order_id: 5 });
        for bad in [json!({"orderId": 0}), json!({"orderId": "5"}), json!({"orderId": 1.5}), json!({})] {
            let p = new_cancellation(&body(bad.clone())).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "orderId"), "{bad}");
        }
    }
}
