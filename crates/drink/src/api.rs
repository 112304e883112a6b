//! `/drinks` (every drink; baristas change status here) and `/orderinfos` (the barista
//! queue: drinks still to accept or make, oldest first).
//!
//! Who may do what (SPEC §9) is declared beside each route: baristas and managers only.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use platform::auth::{allow, Role};
use platform::hal::parse_id;
use platform::json::{checked, Fields};
use platform::{BaseUrl, JsonBody, Problem, Resource};

use crate::domain::{DrinkStatus, StatusChange};
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

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/drinks", get(list).route_layer(allow(BARISTAS)))
        .route("/drinks/{id}", get(one).patch(change_status).route_layer(allow(BARISTAS)))
        .route("/orderinfos", get(queue).route_layer(allow(BARISTAS)))
        .route("/orderinfos/{id}", get(queue_item).route_layer(allow(BARISTAS)))
        .with_state(svc)
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
