//! What order publishes: `Ordered` once an order is paid, `OrderCanceled` once it is
//! cancelled. It consumes nothing: payment is asked synchronously.

use contracts::events::{OrderCanceled, Ordered};
use contracts::{Event, OrderStatus, Payload};
use platform::Ctx;

use crate::domain::Order;

/// `Ordered`: the order as it now is.
pub fn ordered(ctx: &Ctx, o: &Order) -> Event {
    ctx.event(Payload::Ordered(Ordered {
        id: o.id,
        phone_number: o.phone_number.clone(),
        product_name: o.product_name.clone(),
        qty: o.qty,
        amt: o.amt,
        status: o.status,
        create_time: o.create_time.clone(),
    }))
}

/// `OrderCanceled`: the order as it was, with the status it now has.
pub fn order_canceled(ctx: &Ctx, o: &Order) -> Event {
    ctx.event(Payload::OrderCanceled(OrderCanceled {
        id: o.id,
        phone_number: o.phone_number.clone(),
        product_name: o.product_name.clone(),
        qty: o.qty,
        amt: o.amt,
        status: OrderStatus::OrderCanceled,
    }))
}
