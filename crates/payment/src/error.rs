//! What can go wrong reading or changing a payment, and the one place where each becomes its
//! problem+json answer.

use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no payment {0}")]
    NotFound(i64),
    #[error("no payment for order {0}")]
    NoneForOrder(i64),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        match e {
            Error::NotFound(_) | Error::NoneForOrder(_) => Problem::not_found(e.to_string()),
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
        assert_eq!((p.status, p.detail.as_str()), (404, "no payment 7"));
        let p = Problem::from(Error::NoneForOrder(9));
        assert_eq!((p.status, p.detail.as_str()), (404, "no payment for order 9"));
        assert_eq!(Problem::from(Error::Storage(sqlx::Error::PoolTimedOut)).status, 503);
    }
}
