//! The table of services: their names in port order, their schemas, and how each is built
//! from a running context. `cafe up` and `cafe serve` both wire services through here.

use std::sync::Arc;
use std::time::Duration;

use platform::breaker::Breaker;

use axum::Router;
use platform::client::ServiceClient;
use platform::{Ctx, Migration};

/// In port order: base+1 .. base+6.
pub const SERVICES: [&str; 6] = ["order", "payment", "drink", "customercenter", "delivery", "deliverycenter"];

/// What a service needs to know about the others and about resilience.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub payment_url: String,
    pub delivery_url: String,
    pub call_timeout: Duration,
    pub settle_after: Duration,
    pub payment_delay_ms: Option<(u64, u64)>,
    pub retry_after_secs: u64,
    pub breaker: platform::breaker::Settings,
}

/// A started service: its routes and the breakers of its outgoing calls (for health).
pub struct Started {
    pub router: Router,
    pub breakers: Vec<(&'static str, Arc<Breaker>)>,
}

pub fn migrations(service: &str) -> &'static [Migration] {
    match service {
        "order" => order::MIGRATIONS,
        "payment" => payment::MIGRATIONS,
        "drink" => drink::MIGRATIONS,
        "customercenter" => customercenter::MIGRATIONS,
        "delivery" => delivery::MIGRATIONS,
        "deliverycenter" => deliverycenter::MIGRATIONS,
        _ => &[],
    }
}

pub fn static_name(service: &str) -> Option<&'static str> {
    SERVICES.iter().copied().find(|s| *s == service)
}

/// Starts the service's background work (consumers, reconciler) and returns its routes.
pub fn start(ctx: Ctx, w: &Wiring) -> Started {
    let mut breakers = Vec::new();
    let router = match ctx.service {
        "order" => {
            let payment = Arc::new(Breaker::new(w.breaker));
            let delivery = Arc::new(Breaker::new(w.breaker));
            breakers.push(("paymentCircuit", payment.clone()));
            breakers.push(("deliveryCircuit", delivery.clone()));
            order::start(
                ctx,
                order::Config {
                    payment: ServiceClient::new("payment", &w.payment_url, w.call_timeout, payment),
                    delivery: ServiceClient::new("delivery", &w.delivery_url, w.call_timeout, delivery),
                    settle_after: w.settle_after,
                    retry_after_secs: w.retry_after_secs,
                },
            )
        }
        "payment" => payment::start(ctx, payment::Config { delay_ms: w.payment_delay_ms }),
        "drink" => drink::start(ctx),
        "customercenter" => customercenter::start(ctx),
        "delivery" => delivery::start(ctx),
        "deliverycenter" => deliverycenter::start(ctx),
        other => unreachable!("unknown service {other}"),
    };
    Started { router, breakers }
}
