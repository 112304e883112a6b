//! What order publishes. It consumes nothing: payment is asked synchronously.

use platform::{Ctx, Event};
use serde_json::json;

use crate::domain::Order;

pub const ORDERED: &str = "Ordered";
pub const ORDER_CANCELED: &str = "OrderCanceled";

pub fn ordered(ctx: &Ctx, o: &Order) -> Event {
    ctx.event(ORDERED, o)
}

pub fn order_canceled(ctx: &Ctx, o: &Order) -> Event {
    ctx.event(
        ORDER_CANCELED,
        &json!({
            "id": o.id, "phoneNumber": o.phone_number, "productName": o.product_name,
            "qty": o.qty, "amt": o.amt, "status": ORDER_CANCELED,
        }),
    )
}
