//! `/drinks` (every drink; baristas change status here) and `/orderinfos` (the barista
//! queue: drinks still to accept or make, oldest first).
//!
//! Who may do what (SPEC §9) is declared beside each route: baristas and managers only.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Router;
use platform::auth::Role;
use platform::hal::parse_id;
use platform::json::{checked, Fields};
use platform::openapi::{self, Described, OpenApiRouter, ToSchema};
use platform::{BaseUrl, JsonBody, Problem, Resource};

use crate::domain::{Drink, DrinkStatus, StatusChange};
use crate::{store, Error, Service};

const SORTABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("orderId", "order_id"),
    ("status", "status"),
    ("createTime", "create_time"),
    ("productName", "product_name"),
];

pub const DRINKS: Resource = Resource { collection: "drinks", rel: "drink", sortable: SORTABLE };

/// The queue shows the same drinks under its own name.
pub const ORDERINFOS: Resource = Resource { collection: "orderinfos", rel: "orderinfo", sortable: SORTABLE };

/// Who sees the drinks and makes them.
const BARISTAS: &[Role] = &[Role::Barista, Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .op(openapi::get("/drinks", BARISTAS, list)
            .tag("drinks")
            .summary("Drinks", "Every drink, whatever its status.")
            .paged(SORTABLE)
            .page_of::<Drink>(DRINKS.collection))
        .op(openapi::get("/drinks/{id}", BARISTAS, one)
            .tag("drinks")
            .summary("A drink", "")
            .item::<Drink>(200, "The drink."))
        .op(openapi::patch("/drinks/{id}", BARISTAS, change_status)
            .tag("drinks")
            .summary(
                "Accept or make a drink",
                "`Receipted` (accepted) or `Made`; repeating the current status answers 200 and raises nothing.",
            )
            .body::<ChangeStatus>()
            .item::<Drink>(200, "The drink, changed.")
            .fails(409, "A change the drink's status does not allow (made, cancelled), or one made meanwhile."))
        .op(openapi::get("/orderinfos", BARISTAS, queue)
            .tag("drinks")
            .summary("The barista queue", "Drinks still to accept or make, oldest first.")
            .paged(SORTABLE)
            .page_of::<Drink>(ORDERINFOS.collection))
        .op(openapi::get("/orderinfos/{id}", BARISTAS, queue_item)
            .tag("drinks")
            .summary("A drink from the queue", "Shown whatever its status, so a link from the queue still answers.")
            .item::<Drink>(200, "The drink."))
}

pub fn router(svc: Arc<Service>) -> Router {
    platform::openapi::finish(crate::NAME, routes(), svc)
}

/// A `PATCH /drinks/{id}` body (read by [`status_change`]).
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
struct ChangeStatus {
    status: DrinkStatus,
}

/// The one place the service's errors become answers.
impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(id) => Problem::not_found(format!("no drink {id}")),
            Error::IllegalTransition { from, to } => {
                Problem::conflict(format!("illegal status change from {from} to {to}"))
            }
            Error::Contended(id) => {
                Problem::conflict(format!("drink {id} is being changed by someone else; read it and retry"))
            }
            Error::Db(e) => e.into(),
        }
    }
}

async fn list(State(svc): State<Arc<Service>>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    DRINKS.list(&base, q.as_deref(), async |page| store::page(&svc.ctx, page).await, |d| d.id).await
}

async fn one(State(svc): State<Arc<Service>>, base: BaseUrl, Path(id): Path<String>) -> Result<Response, Problem> {
    let id = parse_id(&id, "drink")?;
    let drink = store::find(&svc.ctx, id).await?.ok_or(Error::NotFound(id))?;
    Ok(DRINKS.found(&base, id, &drink))
}

/// A barista accepts (`Receipted`) or makes (`Made`) a drink. Repeating the current status
/// answers 200 and raises nothing.
#[tracing::instrument(level = "debug", skip_all, fields(drink_id))]
async fn change_status(
    State(svc): State<Arc<Service>>,
    base: BaseUrl,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "drink")?;
    tracing::Span::current().record("drink_id", id);
    let StatusChange { status } = status_change(&body)?;
    let drink = store::change_status(&svc.ctx, id, status).await?;
    Ok(DRINKS.found(&base, id, &drink))
}

/// A `PATCH /drinks/{id}` body: any known status; the state machine decides which changes
/// are allowed.
fn status_change(body: &JsonBody) -> Result<StatusChange, Problem> {
    let mut f = Fields::new(body);
    let status = f.string("status", 1, 40).and_then(|raw| match DrinkStatus::parse(&raw) {
        Some(s) => Some(s),
        None => {
            f.error("status", "must be Receipted or Made");
            None
        }
    });
    f.finish()?;
    Ok(StatusChange { status: checked(status)? })
}

async fn queue(State(svc): State<Arc<Service>>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    ORDERINFOS.list(&base, q.as_deref(), async |page| store::queue(&svc.ctx, page).await, |d| d.id).await
}

/// A drink seen from the queue; it is shown whatever its status, so a link from the queue
/// still answers once the drink has moved on.
async fn queue_item(
    State(svc): State<Arc<Service>>,
    base: BaseUrl,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "orderinfo")?;
    let drink = store::find(&svc.ctx, id).await?.ok_or(Error::NotFound(id))?;
    Ok(ORDERINFOS.found(&base, id, &drink))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_change_needs_a_known_status() {
        let body = |v: serde_json::Value| JsonBody(v.as_object().unwrap().clone());
        assert_eq!(status_change(&body(json!({"status": "Made"}))).unwrap().status, DrinkStatus::Made);
        for bad in [json!({"status": "Brewing"}), json!({"status": 3}), json!({})] {
            let p = status_change(&body(bad)).unwrap_err();
            assert_eq!((p.status, p.errors[0].field.as_str()), (400, "status"));
        }
    }
}
