//! The synchronous calls between services (SPEC §6): each request and answer as a type both
//! sides share. Answers are read leniently (links and fields a caller does not need are
//! ignored); requests are written exactly.

use serde::{Deserialize, Serialize};

use crate::status::{DeliveryStatus, PaymentStatus};

/// The paths of the calls below, all `POST`. They are internal: services make them with a
/// service credential, and the gateway never routes them (unless auth is off, as the
/// original ran).
pub const CHARGE: &str = "/payments";
pub const VOID_PAYMENT: &str = "/payments/voids";
pub const RECORD_CANCELLATION: &str = "/cancellations";
pub const INTERNAL: [&str; 3] = [CHARGE, VOID_PAYMENT, RECORD_CANCELLATION];

/// Order → payment, `POST /payments`: charge an order. Idempotent per `orderId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub order_id: i64,
    pub phone_number: String,
    pub amt: i64,
}

/// Payment's answer to [`Charge`] (and to [`VoidPayment`]): the payment as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAnswer {
    pub id: i64,
    pub order_id: i64,
    pub status: PaymentStatus,
}

/// Order → payment, `POST /payments/voids`: void whatever payment the order has, and bar a
/// late charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoidPayment {
    pub order_id: i64,
}

/// Order → delivery, `POST /cancellations`: record an order's cancellation in the ledger.
/// Idempotent per `orderId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordCancellation {
    pub order_id: i64,
}

/// Delivery's answer to [`RecordCancellation`]: the ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancellationAnswer {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
}
