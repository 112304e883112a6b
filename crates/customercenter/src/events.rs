//! What the customer center listens to (every step of an order's life, from four services)
//! and how each event becomes a [`Fact`] about an order's row. It raises nothing.

use futures::future::BoxFuture;
use platform::view::View;
use platform::{Conn, Event};
use serde::Deserialize;

use crate::domain::{Fact, MyPage, MyPageStatus};
use crate::store;

pub const ORDERED: &str = "Ordered";
pub const ORDER_CANCELED: &str = "OrderCanceled";
pub const PAYMENT_APPROVED: &str = "PaymentApproved";
pub const PAYMENT_CANCELED: &str = "PaymentCanceled";
pub const ORDER_INFO_RECEIVED: &str = "OrderInfoReceived";
pub const RECEIPTED: &str = "Receipted";
pub const MADE: &str = "Made";
pub const DRINK_CANCELED: &str = "DrinkCanceled";
pub const DELIVERY_STARTED: &str = "DeliveryStarted";
pub const DELIVERED: &str = "Delivered";
pub const DELIVERY_CANCELED: &str = "DeliveryCanceled";

/// The event types the customer center consumes.
pub const CONSUMED: &[&str] = &[
    ORDERED,
    PAYMENT_APPROVED,
    ORDER_INFO_RECEIVED,
    RECEIPTED,
    MADE,
    DELIVERY_STARTED,
    DELIVERED,
    ORDER_CANCELED,
    DRINK_CANCELED,
    PAYMENT_CANCELED,
    DELIVERY_CANCELED,
];

/// Order's own events (`Ordered`, `OrderCanceled`): `id` is the order id.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderPayload {
    id: i64,
    phone_number: Option<String>,
    product_name: Option<String>,
    qty: Option<i64>,
    amt: Option<i64>,
}

/// Everyone else's events: `id` is their own entity's id, `orderId` the order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AboutOrder {
    id: Option<i64>,
    order_id: i64,
    phone_number: Option<String>,
    product_name: Option<String>,
    qty: Option<i64>,
    amt: Option<i64>,
}

/// What `event` tells about its order's row; `None` for an event type this view ignores.
pub fn fact(event: &Event) -> Option<Result<Fact, serde_json::Error>> {
    let about = |stage: MyPageStatus, fill: fn(Fact, AboutOrder) -> Fact| {
        event.payload::<AboutOrder>().map(|p| fill(Fact::stage(p.order_id, stage), p))
    };
    Some(match event.event_type.as_str() {
        ORDERED => event.payload::<OrderPayload>().map(|o| Fact {
            phone_number: o.phone_number,
            product_name: o.product_name,
            qty: o.qty,
            amt: o.amt,
            ..Fact::stage(o.id, MyPageStatus::Ordered)
        }),
        ORDER_CANCELED => event.payload::<OrderPayload>().map(|o| Fact::stage(o.id, MyPageStatus::OrderCanceled)),
        PAYMENT_APPROVED => about(MyPageStatus::PaymentApproved, |f, p| Fact {
            payment_id: p.id,
            phone_number: p.phone_number,
            amt: p.amt,
            ..f
        }),
        ORDER_INFO_RECEIVED => about(MyPageStatus::Received, |f, p| Fact {
            drink_id: p.id,
            product_name: p.product_name,
            qty: p.qty,
            phone_number: p.phone_number,
            ..f
        }),
        RECEIPTED => about(MyPageStatus::Receipted, |f, p| Fact { drink_id: p.id, ..f }),
        MADE => about(MyPageStatus::Made, |f, p| Fact { drink_id: p.id, ..f }),
        DELIVERY_STARTED => about(MyPageStatus::DeliveryStarted, |f, p| Fact { delivery_id: p.id, ..f }),
        DELIVERED => about(MyPageStatus::Delivered, |f, p| Fact { delivery_id: p.id, ..f }),
        DELIVERY_CANCELED => about(MyPageStatus::DeliveryCancelled, |f, _| f),
        DRINK_CANCELED => about(MyPageStatus::DrinkCanceled, |f, _| f),
        PAYMENT_CANCELED => about(MyPageStatus::PaymentCanceled, |f, _| f),
        _ => return None,
    })
}

/// The view: each consumed event merged into its order's row.
pub struct UpdateMyPage;

impl View for UpdateMyPage {
    type Fact = Fact;
    type Row = MyPage;

    fn fact(event: &Event) -> Option<Result<Fact, serde_json::Error>> {
        fact(event)
    }

    fn key(fact: &Fact) -> i64 {
        fact.order_id
    }

    fn apply(row: Option<MyPage>, fact: &Fact) -> MyPage {
        crate::domain::apply(row, fact)
    }

    fn load<'a>(conn: &'a mut Conn, keys: &'a [i64]) -> BoxFuture<'a, Result<Vec<(i64, MyPage)>, sqlx::Error>> {
        Box::pin(store::load(conn, keys))
    }

    fn save<'a>(conn: &'a mut Conn, rows: &'a [MyPage], _added: usize) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(store::save(conn, rows))
    }
}
