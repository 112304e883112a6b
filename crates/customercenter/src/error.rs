//! What can go wrong reading "my page", and the one place where each becomes its problem+json
//! answer. The rows are written only by events, so every error here is a read's; storage
//! failures keep the platform's answer (500, or 503 when the database is unreachable).

use platform::problem::FieldError;
use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No placed order's row under that id.
    #[error("no my page {0}")]
    NotFound(i64),
    /// No placed order's row for that order id.
    #[error("no my page for order {0}")]
    NotFoundForOrder(i64),
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let detail = e.to_string();
        match e {
            Error::NotFound(_) | Error::NotFoundForOrder(_) => Problem::not_found(detail),
            Error::Invalid(errors) => Problem::validation(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_as_before() {
        let p = Problem::from(Error::NotFound(7));
        assert_eq!((p.status, p.detail.as_str(), p.title.as_str()), (404, "no my page 7", "Not Found"));
        assert_eq!(p.kind, "https://cafe.example/problems/not-found");
        let p = Problem::from(Error::NotFoundForOrder(8));
        assert_eq!((p.status, p.detail.as_str()), (404, "no my page for order 8"));
        let field = FieldError { field: "phoneNumber".into(), message: "is required".into() };
        let p = Problem::from(Error::Invalid(vec![field.clone()]));
        assert_eq!(
            (p.status, p.title.as_str(), p.detail.as_str()),
            (400, "Validation failed", "invalid fields: phoneNumber")
        );
        assert_eq!(p.errors, [field]);
    }
}
