//! What drink publishes, and its two policies: a placed order becomes a drink to make
//! (`Ordered` → `OrderInfoReceived`), a cancelled order cancels it (`OrderCanceled` →
//! `DrinkCanceled`, which payment turns into a refund).

use std::collections::HashMap;

use futures::future::BoxFuture;
use platform::outbox::{consumer_span, read_in_span, Handler};
use platform::{Conn, Ctx, Event};
use serde::{Deserialize, Serialize};

use crate::domain::{Drink, DrinkStatus, OrderLine};

pub const ORDER_INFO_RECEIVED: &str = "OrderInfoReceived";
pub const RECEIPTED: &str = "Receipted";
pub const MADE: &str = "Made";
pub const DRINK_CANCELED: &str = "DrinkCanceled";

pub const ORDERED: &str = "Ordered";
pub const ORDER_CANCELED: &str = "OrderCanceled";

/// The event types drink consumes.
pub const CONSUMES: &[&str] = &[ORDERED, ORDER_CANCELED];

pub fn order_info_received(ctx: &Ctx, d: &Drink) -> Event {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OrderInfo<'a> {
        id: i64,
        order_id: i64,
        phone_number: &'a str,
        product_name: &'a str,
        qty: i64,
        status: DrinkStatus,
    }
    ctx.event(
        ORDER_INFO_RECEIVED,
        &OrderInfo {
            id: d.id,
            order_id: d.order_id,
            phone_number: &d.phone_number,
            product_name: &d.product_name,
            qty: d.qty,
            status: d.status,
        },
    )
}

/// `Receipted`, `Made` or `DrinkCanceled`, after the drink's new status.
pub fn status_changed(ctx: &Ctx, d: &Drink) -> Event {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Changed<'a> {
        id: i64,
        order_id: i64,
        phone_number: &'a str,
        status: DrinkStatus,
    }
    let event_type = match d.status {
        DrinkStatus::Received => ORDER_INFO_RECEIVED,
        DrinkStatus::Receipted => RECEIPTED,
        DrinkStatus::Made => MADE,
        DrinkStatus::Canceled => DRINK_CANCELED,
    };
    ctx.event(event_type, &Changed { id: d.id, order_id: d.order_id, phone_number: &d.phone_number, status: d.status })
}

/// What drink reads of `Ordered` and `OrderCanceled`: the order's id is `id`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderPayload {
    id: i64,
    phone_number: String,
    product_name: String,
    qty: i64,
}

impl From<OrderPayload> for OrderLine {
    fn from(o: OrderPayload) -> Self {
        OrderLine { order_id: o.id, phone_number: o.phone_number, product_name: o.product_name, qty: o.qty }
    }
}

/// Applies order events to the barista queue.
pub struct OrderPolicy {
    pub ctx: Ctx,
}

impl Handler for OrderPolicy {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            let line: OrderLine = match event.payload::<OrderPayload>() {
                Ok(o) => o.into(),
                Err(e) => {
                    tracing::error!(event_id = %event.event_id, event_type = %event.event_type, error = %e, "unreadable order event skipped");
                    return Ok(vec![]);
                }
            };
            match event.event_type.as_str() {
                ORDERED => match crate::store::insert(conn, &line, DrinkStatus::Received).await? {
                    Some(d) => {
                        tracing::debug!(order_id = d.order_id, drink_id = d.id, "drink received");
                        Ok(vec![order_info_received(&self.ctx, &d)])
                    }
                    // The order has its drink already, or was cancelled before it arrived.
                    None => Ok(vec![]),
                },
                ORDER_CANCELED => match crate::store::cancel(conn, &line).await? {
                    Some(d) => {
                        tracing::debug!(order_id = d.order_id, drink_id = d.id, "drink canceled");
                        Ok(vec![status_changed(&self.ctx, &d)])
                    }
                    None => Ok(vec![]),
                },
                _ => Ok(vec![]),
            }
        })
    }

    /// Runs of `Ordered` events take one insert for all their drinks; anything else goes
    /// one by one, in delivery order.
    fn handle_all<'a>(
        &'a self,
        conn: &'a mut Conn,
        events: &'a [&'a Event],
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            let mut raised = Vec::new();
            let mut rest = events;
            while let Some(first) = rest.first() {
                let run = rest.iter().take_while(|e| e.event_type == ORDERED).count();
                if run == 0 {
                    raised.extend(consumer_span(service, first, self.handle(&mut *conn, first)).await?);
                    rest = &rest[1..];
                } else {
                    raised.extend(self.receive_all(&mut *conn, &rest[..run], service).await?);
                    rest = &rest[run..];
                }
            }
            Ok(raised)
        })
    }
}

impl OrderPolicy {
    /// `Ordered` events: their drinks in one insert, each `OrderInfoReceived` in its order's
    /// trace (the consumer span of its event, as one by one).
    async fn receive_all(&self, conn: &mut Conn, events: &[&Event], service: &str) -> Result<Vec<Event>, sqlx::Error> {
        let mut lines = Vec::with_capacity(events.len());
        for event in events {
            let read = || (event.payload::<OrderPayload>(), platform::trace::current());
            match read_in_span(service, event, read).await {
                (Ok(order), trace) => lines.push((OrderLine::from(order), trace.map(|c| c.header()))),
                (Err(e), _) => {
                    tracing::error!(event_id = %event.event_id, event_type = %event.event_type, error = %e, "unreadable order event skipped");
                }
            }
        }
        let traces: HashMap<i64, Option<String>> = lines.iter().map(|(l, t)| (l.order_id, t.clone())).collect();
        let drinks = crate::store::insert_all(conn, &lines, DrinkStatus::Received).await?;
        Ok(drinks
            .iter()
            .map(|d| {
                let mut event = order_info_received(&self.ctx, d);
                event.traceparent = traces.get(&d.order_id).cloned().flatten();
                event
            })
            .collect())
    }
}
