//! What can go wrong placing, reading or cancelling an order, and the one place where each
//! becomes its problem+json answer.

use axum::http::StatusCode;
use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no order {0}")]
    NotFound(i64),
    /// Payment refused, failed or could not be reached: the order was not placed.
    #[error("payment is busy, please try again shortly; you have not been charged")]
    PaymentUnavailable { retry_after_secs: u64 },
    /// Delivery did not confirm the cancellation: the order stays `Cancelling` (still an order
    /// to clients) until delivery answers, to the reconciler or to a retry.
    #[error(
        "delivery has not confirmed the cancellation yet; it is being settled, please try again shortly \
         (the order stays until delivery records its cancellation)"
    )]
    CancellationPending { retry_after_secs: u64 },
    /// Delivery refused the cancellation (the order was delivered, say): the order stays.
    #[error("order {order_id} cannot be cancelled: {why}")]
    CancellationRefused { order_id: i64, why: String },
    /// With prices from the menu, a product it does not list cannot be ordered.
    #[error("{0:?} is not on the menu (GET /menu)")]
    NotOnMenu(String),
    /// The client sent an `amt` that is not the menu's price × qty.
    #[error("must be {} (price {price} × qty {qty}) or left out, not {sent}", price * qty)]
    AmountDiffers { sent: i64, price: i64, qty: i64 },
    /// A customer orders only under the phone number their token carries.
    #[error("a customer may place orders only for their own phone number")]
    AnotherPhone,
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let detail = e.to_string();
        match e {
            Error::NotFound(_) => Problem::not_found(detail),
            Error::PaymentUnavailable { retry_after_secs } | Error::CancellationPending { retry_after_secs } => {
                Problem::unavailable(detail, retry_after_secs)
            }
            Error::CancellationRefused { .. } => Problem::conflict(detail),
            Error::NotOnMenu(_) => Problem::unprocessable("productName", detail),
            Error::AmountDiffers { .. } => Problem::unprocessable("amt", detail),
            Error::AnotherPhone => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            // Logged there, never sent: 500, or 503 when the database is unreachable.
            Error::Storage(e) => Problem::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_as_before() {
        let p = Problem::from(Error::NotFound(7));
        assert_eq!((p.status, p.detail.as_str(), p.title.as_str()), (404, "no order 7", "Not Found"));
        let p = Problem::from(Error::PaymentUnavailable { retry_after_secs: 3 });
        assert_eq!((p.status, p.retry_after), (503, Some(3)));
        assert_eq!(p.detail, "payment is busy, please try again shortly; you have not been charged");
        let p = Problem::from(Error::CancellationPending { retry_after_secs: 0 });
        assert_eq!((p.status, p.retry_after), (503, Some(1)));
        let p = Problem::from(Error::CancellationRefused { order_id: 4, why: "order 4 was already delivered".into() });
        assert_eq!((p.status, p.detail.as_str()), (409, "order 4 cannot be cancelled: order 4 was already delivered"));
        assert_eq!(Problem::from(Error::Storage(sqlx::Error::RowNotFound)).status, 500);
    }

    #[test]
    fn a_price_the_menu_does_not_give_is_a_422_naming_the_field() {
        let p = Problem::from(Error::NotOnMenu("caviar".into()));
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "productName"));
        assert_eq!(p.errors[0].message, "\"caviar\" is not on the menu (GET /menu)");
        let p = Problem::from(Error::AmountDiffers { sent: 1, price: 4500, qty: 2 });
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "amt"));
        assert_eq!(p.errors[0].message, "must be 9000 (price 4500 × qty 2) or left out, not 1");
        assert_eq!(Problem::from(Error::AnotherPhone).status, 403);
    }
}
