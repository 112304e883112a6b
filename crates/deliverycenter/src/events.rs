//! What the delivery center listens to (`Ordered`, `DeliveryStarted`, `DeliveryCanceled`,
//! `Delivered`) and how each event becomes a [`Fact`] about an order's page. It raises nothing.

use futures::future::BoxFuture;
use platform::view::View;
use platform::{Conn, Event};
use serde::Deserialize;

use crate::domain::{DeliveryPage, DeliveryPageStatus, Fact};
use crate::store;

pub const ORDERED: &str = "Ordered";
pub const DELIVERY_STARTED: &str = "DeliveryStarted";
pub const DELIVERY_CANCELED: &str = "DeliveryCanceled";
pub const DELIVERED: &str = "Delivered";

/// The event types the delivery center consumes.
pub const CONSUMED: &[&str] = &[ORDERED, DELIVERY_STARTED, DELIVERY_CANCELED, DELIVERED];

/// `Ordered`: `id` is the order id.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ordered {
    id: i64,
    phone_number: Option<String>,
    product_name: Option<String>,
    qty: Option<i64>,
    amt: Option<i64>,
}

/// `DeliveryStarted`, `DeliveryCanceled`, `Delivered`: `id` is the delivery's (or the
/// cancellation's) own id.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AboutDelivery {
    id: Option<i64>,
    order_id: i64,
}

/// What `event` tells about its order's page; `None` for an event type this view ignores.
pub fn fact(event: &Event) -> Option<Result<Fact, serde_json::Error>> {
    let stage =
        match event.event_type.as_str() {
            ORDERED => {
                return Some(event.payload::<Ordered>().map(|o| Fact {
                    amt: o.amt,
                    product_name: o.product_name,
                    qty: o.qty,
                    phone_number: o.phone_number,
                    ..Fact::stage(o.id, DeliveryPageStatus::Ordered)
                }))
            }
            DELIVERY_STARTED => {
                return Some(event.payload::<AboutDelivery>().map(|d| Fact {
                    delivery_id: d.id,
                    ..Fact::stage(d.order_id, DeliveryPageStatus::DeliveryStarted)
                }))
            }
            DELIVERED => DeliveryPageStatus::Delivered,
            DELIVERY_CANCELED => DeliveryPageStatus::DeliveryCancelled,
            _ => return None,
        };
    Some(event.payload::<AboutDelivery>().map(|d| Fact::stage(d.order_id, stage)))
}

/// The view: each consumed event merged into its order's page.
pub struct UpdateDeliveryPage;

impl View for UpdateDeliveryPage {
    type Fact = Fact;
    type Row = DeliveryPage;

    fn fact(event: &Event) -> Option<Result<Fact, serde_json::Error>> {
        fact(event)
    }

    fn key(fact: &Fact) -> i64 {
        fact.order_id
    }

    fn apply(row: Option<DeliveryPage>, fact: &Fact) -> DeliveryPage {
        crate::domain::apply(row, fact)
    }

    fn load<'a>(conn: &'a mut Conn, keys: &'a [i64]) -> BoxFuture<'a, Result<Vec<(i64, DeliveryPage)>, sqlx::Error>> {
        Box::pin(store::load(conn, keys))
    }

    fn save<'a>(conn: &'a mut Conn, rows: &'a [DeliveryPage], added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(store::save(conn, rows, added))
    }
}
