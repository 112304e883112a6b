//! Password hashes: argon2id with the crate's default cost (19 MiB, 2 passes, 1 lane, as
//! OWASP recommends), stored as PHC strings (`$argon2id$v=19$m=...$salt$hash`) that carry
//! their own random salt and parameters, so raising the cost later leaves old hashes readable.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on tokio's blocking
//! threads: on a runtime thread it would stall every other request that thread serves. At
//! most [`AT_ONCE`] run at a time (each holds 19 MiB): a burst of sign-ins waits its turn
//! instead of taking the process's memory.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use crate::domain::Password;
use crate::error::Error;

/// A stored hash. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Hash(String);

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hash(..)")
    }
}

impl Hash {
    /// A hash as read from the database.
    pub fn stored(phc: String) -> Hash {
        Hash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a sign-in for an unknown user name is checked against, so that it costs what a
/// wrong password costs and its timing does not tell which names exist. Made with the
/// default parameters (a test keeps it so) from a random password nobody kept.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$M5kbFaOJsuatqgDowDxwHA$WYCLd0MRL7RvnuZbWEqyNgn3clRML/1ibQwAwXp4Q8s";

/// How many hashes are computed at once, at most.
const AT_ONCE: usize = 4;

/// Runs `work` on a blocking thread once one of the [`AT_ONCE`] turns is free.
async fn in_turn<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);
    let _turn = TURNS.acquire().await.map_err(|e| Error::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Hashing(e.to_string()))?
}

/// Hashes `password` with a fresh salt from the operating system's random source.
pub async fn hash(password: Password) -> Result<Hash, Error> {
    in_turn(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| Hash(h.to_string()))
            .map_err(|e| Error::Hashing(e.to_string()))
    })
    .await
}

/// Does `password` match `hash`? With no hash (an unknown user) it is checked against
/// [`DUMMY`] all the same, and the answer is no.
pub async fn verify(password: String, hash: Option<Hash>) -> Result<bool, Error> {
    in_turn(move || {
        let known = hash.is_some();
        let phc = hash.map(|h| h.0);
        let phc = phc.as_deref().unwrap_or(DUMMY);
        let parsed = PasswordHash::new(phc).map_err(|e| Error::Hashing(format!("a stored hash is unreadable: {e}")))?;
        match Argon2::default().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(known),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(Error::Hashing(e.to_string())),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use argon2::Params;

    use super::*;

    #[tokio::test]
    async fn a_hash_matches_its_password_only() {
        let h = hash(Password::new("correct horse").unwrap()).await.unwrap();
        assert!(h.as_str().starts_with("$argon2id$v=19$"));
        assert!(!h.as_str().contains("correct horse"));
        assert!(verify("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("correct horsf".into(), Some(h.clone())).await.unwrap());
        let again = hash(Password::new("correct horse").unwrap()).await.unwrap();
        assert_ne!(h, again, "each hash has its own salt");
        assert_eq!(format!("{h:?}"), "Hash(..)");
    }

    #[tokio::test]
    async fn an_unknown_user_is_checked_against_the_dummy_and_refused() {
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_is_an_error_not_a_match() {
        let broken = Hash::stored("not a hash".into());
        assert!(matches!(verify("whatever1".into(), Some(broken)).await, Err(Error::Hashing(_))));
    }

    #[test]
    fn the_dummy_costs_what_a_real_hash_costs() {
        let dummy = PasswordHash::new(DUMMY).unwrap();
        let params = Params::try_from(&dummy).unwrap();
        let default = Params::default();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        let output_len = |p: &Params| p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost(), output_len(&params)),
            (default.m_cost(), default.t_cost(), default.p_cost(), output_len(&default))
        );
    }
}
