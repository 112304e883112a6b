//! What can go wrong placing, reading or cancelling an order, and the one place where each
//! becomes its problem+json answer.

use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no order {0}")]
    NotFound(i64),
    /// Payment refused, failed or could not be reached: the order was not placed.
    #[error("payment is busy, please try again shortly; you have not been charged")]
    PaymentUnavailable { retry_after_secs: u64 },
    /// Delivery could not record the cancellation: the order stays as it was.
    #[error("delivery cannot record the cancellation right now; the order is unchanged, please try again shortly")]
    CancellationNotRecorded { retry_after_secs: u64 },
    /// Delivery refused the cancellation (the order was delivered, say): the order stays.
    #[error("order {order_id} cannot be cancelled: {why}")]
    CancellationRefused { order_id: i64, why: String },
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let detail = e.to_string();
        match e {
            Error::NotFound(_) => Problem::not_found(detail),
            Error::PaymentUnavailable { retry_after_secs } | Error::CancellationNotRecorded { retry_after_secs } => {
                Problem::unavailable(detail, retry_after_secs)
            }
            Error::CancellationRefused { .. } => Problem::conflict(detail),
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
        let p = Problem::from(Error::CancellationNotRecorded { retry_after_secs: 0 });
        assert_eq!((p.status, p.retry_after), (503, Some(1)));
        let p = Problem::from(Error::CancellationRefused { order_id: 4, why: "order 4 was already delivered".into() });
        assert_eq!((p.status, p.detail.as_str()), (409, "order 4 cannot be cancelled: order 4 was already delivered"));
        assert_eq!(Problem::from(Error::Storage(sqlx::Error::RowNotFound)).status, 500);
    }
}
