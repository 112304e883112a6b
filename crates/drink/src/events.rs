//! What drink publishes, and its two policies: a placed order becomes a drink to make
//! (`Ordered` → `OrderInfoReceived`), a cancelled order cancels it (`OrderCanceled` →
//! `DrinkCanceled`, which payment turns into a refund).

use std::collections::HashMap;

use contracts::events::{DrinkChanged, OrderCanceled, OrderInfoReceived, Ordered};
use contracts::{Event, EventType, Payload};
use futures::future::BoxFuture;
use platform::outbox::{consumer_span, read_in_span, Handler};
use platform::{Conn, Ctx};

use crate::domain::{Drink, DrinkStatus, OrderLine};

/// The event types drink consumes.
pub const CONSUMES: &[EventType] = &[EventType::Ordered, EventType::OrderCanceled];

pub fn order_info_received(ctx: &Ctx, d: &Drink) -> Event {
    ctx.event(Payload::OrderInfoReceived(OrderInfoReceived {
        id: d.id,
        order_id: d.order_id,
        phone_number: d.phone_number.clone(),
        product_name: d.product_name.clone(),
        qty: d.qty,
        status: d.status,
    }))
}

/// `Receipted`, `Made` or `DrinkCanceled`, after the drink's new status.
pub fn status_changed(ctx: &Ctx, d: &Drink) -> Event {
    let changed =
        DrinkChanged { id: d.id, order_id: d.order_id, phone_number: d.phone_number.clone(), status: d.status };
    ctx.event(match d.status {
        // A drink is only ever `Received` when it is created: its event says all of it.
        DrinkStatus::Received => return order_info_received(ctx, d),
        DrinkStatus::Receipted => Payload::Receipted(changed),
        DrinkStatus::Made => Payload::Made(changed),
        DrinkStatus::Canceled => Payload::DrinkCanceled(changed),
    })
}

/// The event continues the trace `traceparent` (the order's), or none.
fn in_trace(mut event: Event, traceparent: Option<&str>) -> Event {
    event.headers = traceparent.map(platform::trace::continuing).unwrap_or_default();
    event
}

/// What drink reads of `Ordered`: the order's id is `id`.
impl From<&Ordered> for OrderLine {
    fn from(o: &Ordered) -> Self {
        OrderLine {
            order_id: o.id,
            phone_number: o.phone_number.clone(),
            product_name: o.product_name.clone(),
            qty: o.qty,
        }
    }
}

/// What drink reads of `OrderCanceled`: the order's id is `id`.
impl From<&OrderCanceled> for OrderLine {
    fn from(o: &OrderCanceled) -> Self {
        OrderLine {
            order_id: o.id,
            phone_number: o.phone_number.clone(),
            product_name: o.product_name.clone(),
            qty: o.qty,
        }
    }
}

/// Applies order events to the barista queue.
pub struct OrderPolicy {
    pub ctx: Ctx,
}

impl Handler<Payload> for OrderPolicy {
    fn handle<'a>(&'a self, conn: &'a mut Conn, event: &'a Event) -> BoxFuture<'a, Result<Vec<Event>, sqlx::Error>> {
        Box::pin(async move {
            match &event.payload {
                Payload::Ordered(order) => {
                    match crate::store::insert(conn, &order.into(), DrinkStatus::Received).await? {
                        Some(d) => {
                            tracing::debug!(order_id = d.order_id, drink_id = d.id, "drink received");
                            Ok(vec![order_info_received(&self.ctx, &d)])
                        }
                        // The order has its drink already, or was cancelled before it arrived.
                        None => Ok(vec![]),
                    }
                }
                Payload::OrderCanceled(order) => match crate::store::cancel(conn, &order.into()).await? {
                    Some(d) => {
                        tracing::debug!(order_id = d.order_id, drink_id = d.id, "drink canceled");
                        Ok(vec![status_changed(&self.ctx, &d)])
                    }
                    None => Ok(vec![]),
                },
                // Not subscribed to; listed so that a new event type is a decision here.
                Payload::PaymentApproved(_)
                | Payload::PaymentCanceled(_)
                | Payload::OrderInfoReceived(_)
                | Payload::Receipted(_)
                | Payload::Made(_)
                | Payload::DrinkCanceled(_)
                | Payload::DeliveryStarted(_)
                | Payload::DeliveryCanceled(_)
                | Payload::Delivered(_) => Ok(vec![]),
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
                let run: Vec<(&Event, &Ordered)> = rest
                    .iter()
                    .map_while(|e| if let Payload::Ordered(o) = &e.payload { Some((*e, o)) } else { None })
                    .collect();
                if run.is_empty() {
                    raised.extend(consumer_span(service, first, self.handle(&mut *conn, first)).await?);
                    rest = &rest[1..];
                } else {
                    raised.extend(self.receive_all(&mut *conn, &run, service).await?);
                    rest = &rest[run.len()..];
                }
            }
            Ok(raised)
        })
    }
}

impl OrderPolicy {
    /// `Ordered` events: their drinks in one insert, each `OrderInfoReceived` in its order's
    /// trace (the consumer span of its event, as one by one).
    async fn receive_all(
        &self,
        conn: &mut Conn,
        orders: &[(&Event, &Ordered)],
        service: &str,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let mut lines = Vec::with_capacity(orders.len());
        for (event, order) in orders {
            let trace = read_in_span(service, event, platform::trace::traceparent).await;
            lines.push((OrderLine::from(*order), trace));
        }
        let traces: HashMap<i64, Option<String>> = lines.iter().map(|(l, t)| (l.order_id, t.clone())).collect();
        let drinks = crate::store::insert_all(conn, &lines, DrinkStatus::Received).await?;
        Ok(drinks
            .iter()
            .map(|d| in_trace(order_info_received(&self.ctx, d), traces.get(&d.order_id).and_then(Option::as_deref)))
            .collect())
    }
}
