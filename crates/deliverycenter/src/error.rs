//! What can go wrong reading a delivery page, and the one place where each becomes its
//! problem+json answer. The pages are written only by events, so every error here is a
//! read's; storage failures keep the platform's answer (500, or 503 when the database is
//! unreachable).

use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no delivery page {0}")]
    NotFound(i64),
    #[error("no delivery page for order {0}")]
    NotFoundForOrder(i64),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let detail = e.to_string();
        match e {
            Error::NotFound(_) | Error::NotFoundForOrder(_) => Problem::not_found(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_as_before() {
        let p = Problem::from(Error::NotFound(7));
        assert_eq!((p.status, p.detail.as_str(), p.title.as_str()), (404, "no delivery page 7", "Not Found"));
        assert_eq!(p.kind, "https://cafe.example/problems/not-found");
        let p = Problem::from(Error::NotFoundForOrder(8));
        assert_eq!((p.status, p.detail.as_str()), (404, "no delivery page for order 8"));
    }
}
