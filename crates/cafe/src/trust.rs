//! Auth on or off, and the keys of each mode (SPEC §9).
//!
//! Two Ed25519 key pairs: the *people* key, with which `identity` signs people's tokens, and
//! the *service* key, with which a service that calls another (order) signs its own service
//! tokens. Every service verifies both kinds with the public halves only.
//!
//! - `cafe up`: both pairs live in `<data-dir>/keys/` (mode 0600), made on first start.
//! - `cafe cluster`: the same under its `--data-dir`, handed to each child in its
//!   environment: public keys to all, a private key only to the child that signs with it.
//! - `cafe serve`: from the environment, as a Kubernetes Secret provides it:
//!   `CAFE_TOKEN_PRIVATE_KEY` (identity only), `CAFE_TOKEN_PUBLIC_KEYS`,
//!   `CAFE_SERVICE_PRIVATE_KEY` (order only), `CAFE_SERVICE_PUBLIC_KEYS` (PEM).
//!
//! Rotation: put the new public key beside the old one in `*_PUBLIC_KEYS` everywhere, then
//! switch the private key, then drop the old public key once its last token has expired
//! (people's tokens live `TOKEN_TTL`, service tokens ten minutes).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use contracts::ServiceName;
use platform::auth::{Auth, Credential, Issuer, KeyPair, PublicKey, Verifier};

/// How long a person's token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The environment variables of `cafe serve` that carry keys.
pub const TOKEN_PRIVATE_KEY: &str = "CAFE_TOKEN_PRIVATE_KEY";
pub const TOKEN_PUBLIC_KEYS: &str = "CAFE_TOKEN_PUBLIC_KEYS";
pub const SERVICE_PRIVATE_KEY: &str = "CAFE_SERVICE_PRIVATE_KEY";
pub const SERVICE_PUBLIC_KEYS: &str = "CAFE_SERVICE_PUBLIC_KEYS";

/// What one process knows to check and to sign tokens.
#[derive(Clone)]
pub struct Trust {
    pub auth: Auth,
    namespace: String,
    people: Option<KeyPair>,
    services: Option<KeyPair>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trust({:?})", self.auth)
    }
}

impl Trust {
    /// Auth off: nothing is checked, nothing signed.
    pub fn off() -> Trust {
        tracing::warn!("auth is OFF: the API is open to anyone who can reach it (the original's demonstrations only)");
        Trust { auth: Auth::Off, namespace: String::new(), people: None, services: None }
    }

    /// Both key pairs from `dir` (made there on first start).
    pub fn from_dir(dir: &Path, namespace: &str) -> anyhow::Result<Trust> {
        let people = KeyPair::load_or_create(&dir.join("people.pem"))
            .with_context(|| format!("cannot read or make the people key under {}", dir.display()))?;
        let services = KeyPair::load_or_create(&dir.join("services.pem"))
            .with_context(|| format!("cannot read or make the service key under {}", dir.display()))?;
        Ok(Trust::new(namespace, &[people.public()], &[services.public()], Some(people), Some(services)))
    }

    /// From the keys `cafe serve` is given (PEM text; private keys only where signed with).
    pub fn from_pem(
        namespace: &str,
        people_public: &str,
        services_public: &str,
        people_private: Option<&str>,
        services_private: Option<&str>,
    ) -> anyhow::Result<Trust> {
        let people_keys = PublicKey::all_from_pem(people_public).context(TOKEN_PUBLIC_KEYS)?;
        let service_keys = PublicKey::all_from_pem(services_public).context(SERVICE_PUBLIC_KEYS)?;
        let people = people_private.map(KeyPair::from_pem).transpose().context(TOKEN_PRIVATE_KEY)?;
        let services = services_private.map(KeyPair::from_pem).transpose().context(SERVICE_PRIVATE_KEY)?;
        Ok(Trust::new(namespace, &people_keys, &service_keys, people, services))
    }

    fn new(
        namespace: &str,
        people_keys: &[PublicKey],
        service_keys: &[PublicKey],
        people: Option<KeyPair>,
        services: Option<KeyPair>,
    ) -> Trust {
        Trust {
            auth: Auth::On(Arc::new(Verifier::new(namespace, people_keys, service_keys))),
            namespace: namespace.into(),
            people,
            services,
        }
    }

    pub fn is_on(&self) -> bool {
        matches!(self.auth, Auth::On(_))
    }

    /// What identity signs people's tokens with, if this process holds the people key.
    pub fn issuer(&self) -> Option<Arc<Issuer>> {
        self.people.as_ref().map(|k| Arc::new(Issuer::new(k, &self.namespace, TOKEN_TTL)))
    }

    /// What `service` shows when it calls another, if this process holds the service key.
    pub fn credential(&self, service: ServiceName) -> Option<Arc<Credential>> {
        self.services.as_ref().map(|k| Arc::new(Credential::new(k, &self.namespace, service.as_str())))
    }

    /// The environment a `cafe serve` child of the cluster needs for these keys: public keys
    /// for all, identity the people key, order the service key.
    pub fn env_for(&self, service: ServiceName) -> Vec<(String, String)> {
        let (Some(people), Some(services)) = (&self.people, &self.services) else {
            return vec![("CAFE_AUTH".into(), "off".into())];
        };
        let mut env = vec![
            (TOKEN_PUBLIC_KEYS.to_string(), people.public().to_pem()),
            (SERVICE_PUBLIC_KEYS.to_string(), services.public().to_pem()),
        ];
        match service {
            ServiceName::Identity => env.push((TOKEN_PRIVATE_KEY.into(), people.to_pem())),
            ServiceName::Order => env.push((SERVICE_PRIVATE_KEY.into(), services.to_pem())),
            ServiceName::Gateway
            | ServiceName::Payment
            | ServiceName::Drink
            | ServiceName::Customercenter
            | ServiceName::Delivery
            | ServiceName::Deliverycenter
            | ServiceName::Web => {}
        }
        env
    }
}

/// The first manager's password in `path`, made (and written, mode 0600) if there is none;
/// `true` when it was made now.
pub fn manager_password(path: &Path) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let password = random_password();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            platform::auth::write_secret(path, &format!("{password}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok((password, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// 20 characters from the operating system's random source.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::getrandom(&mut bytes).expect("the operating system gives random bytes");
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_child_gets_only_the_private_key_it_signs_with() {
        let dir = std::env::temp_dir().join(format!("cafe-trust-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let trust = Trust::from_dir(&dir, "cafe").unwrap();
        let has = |s: ServiceName, var: &str| trust.env_for(s).iter().any(|(k, _)| k == var);
        assert!(has(ServiceName::Identity, TOKEN_PRIVATE_KEY) && !has(ServiceName::Identity, SERVICE_PRIVATE_KEY));
        assert!(has(ServiceName::Order, SERVICE_PRIVATE_KEY) && !has(ServiceName::Order, TOKEN_PRIVATE_KEY));
        assert!(!has(ServiceName::Payment, SERVICE_PRIVATE_KEY) && !has(ServiceName::Payment, TOKEN_PRIVATE_KEY));
        let env: std::collections::HashMap<_, _> = trust.env_for(ServiceName::Order).into_iter().collect();
        let child = Trust::from_pem(
            "cafe",
            &env[TOKEN_PUBLIC_KEYS],
            &env[SERVICE_PUBLIC_KEYS],
            None,
            env.get(SERVICE_PRIVATE_KEY).map(String::as_str),
        )
        .unwrap();
        assert!(child.issuer().is_none());
        let header = child.credential(ServiceName::Order).unwrap().header();
        let Auth::On(verifier) = &trust.auth else { panic!("auth is on") };
        verifier.verify(header.to_str().unwrap().strip_prefix("Bearer ").unwrap()).unwrap();
        let (password, made) = manager_password(&dir.join("manager-password")).unwrap();
        assert!(made && password.len() == 20);
        assert_eq!(manager_password(&dir.join("manager-password")).unwrap(), (password, false));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
