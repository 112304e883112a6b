//! What can go wrong with an account or a sign-in, and the one place where each becomes its
//! problem+json answer. No message carries a password or a hash.

use axum::http::StatusCode;
use platform::problem::FieldError;
use platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value a caller gave breaks its rule (`add_user`, `ensure_manager`).
    #[error("{field} {rule}")]
    Invalid { field: &'static str, rule: &'static str },
    #[error("the user name {0} is taken")]
    Taken(String),
    /// Unknown user name or wrong password: the same answer for both.
    #[error("the user name or the password is wrong")]
    BadCredentials,
    /// Too many failed sign-ins for one user name; the next may come after this many seconds.
    #[error("too many failed sign-ins for this user name; try again in {0} s")]
    Throttled(u64),
    #[error("no account {0}")]
    NotFound(i64),
    /// Hashing failed, or a stored hash is unreadable: ours, never the client's.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        match e {
            Error::Invalid { field, rule } => {
                Problem::validation(vec![FieldError { field: field.into(), message: rule.into() }])
            }
            Error::Taken(_) => Problem::conflict(e.to_string()),
            Error::BadCredentials => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
            Error::Throttled(secs) => {
                let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", e.to_string());
                p.retry_after = Some(secs);
                p
            }
            Error::NotFound(_) => Problem::not_found(e.to_string()),
            Error::Hashing(cause) => {
                tracing::error!(error = %cause, "password hashing failed");
                Problem::internal()
            }
            // Logged there, never sent: 500, or 503 when the database is unreachable.
            Error::Storage(e) => Problem::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_with_its_status() {
        let p = Problem::from(Error::Invalid { field: "role", rule: "must be barista, rider or manager" });
        assert_eq!((p.status, p.errors[0].field.as_str()), (400, "role"));
        assert_eq!(Problem::from(Error::Taken("kim".into())).status, 409);
        assert_eq!(Problem::from(Error::BadCredentials).status, 401);
        let p = Problem::from(Error::Throttled(42));
        assert_eq!((p.status, p.retry_after), (429, Some(42)));
        assert_eq!(Problem::from(Error::NotFound(3)).status, 404);
        assert_eq!(Problem::from(Error::Hashing("broken".into())).detail, Problem::internal().detail);
        assert_eq!(Problem::from(Error::Storage(sqlx::Error::PoolTimedOut)).status, 503);
    }
}
