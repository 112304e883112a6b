//! Who is calling, and may they: signed bearer tokens checked by every service itself, and
//! the roles each route allows, declared beside the route.
//!
//! - **Tokens** are JWTs signed with Ed25519 (`EdDSA`). Whoever signs holds a [`KeyPair`];
//!   whoever verifies holds only [`PublicKey`]s, named by their key id (`kid`), so a key is
//!   rotated by adding the new public key everywhere, signing with the new private key, and
//!   dropping the old public key once the last token it signed has expired.
//! - Two kinds of signer, with separate keys: `identity` signs people's tokens ([`Issuer`]),
//!   and a service that calls another signs its own short-lived service tokens
//!   ([`Credential`]). A verifier accepts the `service` role only under a service key and a
//!   person's role only under a people key, so neither key can mint the other's tokens.
//! - Every request goes through [`identify`] (installed by [`crate::server::app`]), which
//!   puts the [`Caller`] in the request; a route that needs a role says so with
//!   [`allow`] beside it, and a handler that shows a customer only their own data takes the
//!   [`Caller`] as an extractor. No token or a bad one: 401 with `WWW-Authenticate: Bearer`;
//!   a role the route does not allow: 403. Both problem+json.
//! - [`Auth::Off`] is the original's open API (`--auth off`): every route lets everyone in.
//!
//! Verifying a signature costs tens of microseconds, so a verified token is remembered (by its
//! exact text, until it expires) in a bounded cache: a forged token is a different text and
//! never meets a cached answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use futures::future::Either;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// The roles of SPEC §9, and `service` for the cafe's own calls between services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Barista,
    Rider,
    Manager,
    Service,
}

impl Role {
    /// The roles a person can have (all but `service`).
    pub const PEOPLE: [Role; 4] = [Role::Customer, Role::Barista, Role::Rider, Role::Manager];

    pub fn as_str(self) -> &'static str {
        crate::spelling::name(&self)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        crate::spelling::parse(s).ok_or_else(|| format!("no role {s:?}: customer, barista, rider or manager"))
    }
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name (a customer's is their phone number), or the calling service's name.
    pub sub: String,
    pub role: Role,
    /// A customer's phone number: the only data they may see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The namespace of the cafe that issued it: another cafe's token is not ours.
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not an Ed25519 key in PEM form: {0}")]
pub struct KeyError(String);

/// An Ed25519 signing key and its public half.
#[derive(Clone)]
pub struct KeyPair {
    signing: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.public().kid())
    }
}

impl KeyPair {
    /// A new key from the operating system's random source.
    pub fn generate() -> KeyPair {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the operating system gives random bytes");
        KeyPair { signing: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<KeyPair, KeyError> {
        let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError(e.to_string()))?;
        Ok(KeyPair { signing })
    }

    /// The private key as PKCS#8 PEM: a secret, for a file of mode 0600 or a Secret.
    pub fn to_pem(&self) -> String {
        self.signing.to_pkcs8_pem(LineEnding::LF).expect("an Ed25519 key encodes").to_string()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { verifying: self.signing.verifying_key() }
    }

    /// The key in `path`, or a new one written there (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> std::io::Result<KeyPair> {
        match std::fs::read_to_string(path) {
            Ok(pem) => KeyPair::from_pem(&pem)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_secret(path, &key.to_pem())?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        let der = self.signing.to_pkcs8_der().expect("an Ed25519 key encodes");
        EncodingKey::from_ed_der(der.as_bytes())
    }
}

/// Writes `text` to a new file only its owner can read.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// An Ed25519 public key: all a verifier holds.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    verifying: ed25519_dalek::VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid())
    }
}

impl PublicKey {
    /// Reads every SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`) in `text`: during a
    /// rotation a verifier is given the old key and the new one.
    pub fn all_from_pem(text: &str) -> Result<Vec<PublicKey>, KeyError> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        let keys: Vec<PublicKey> = text
            .split(BEGIN)
            .map(str::trim)
            .filter(|block| !block.is_empty())
            .map(|block| {
                ed25519_dalek::VerifyingKey::from_public_key_pem(&format!("{BEGIN}\n{block}\n"))
                    .map(|verifying| PublicKey { verifying })
                    .map_err(|e| KeyError(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(KeyError("no public key found".into()));
        }
        Ok(keys)
    }

    pub fn to_pem(&self) -> String {
        self.verifying.to_public_key_pem(LineEnding::LF).expect("an Ed25519 key encodes")
    }

    /// The key id tokens name it by: the first 8 bytes of the key, in hex.
    pub fn kid(&self) -> String {
        self.verifying.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_pem(self.to_pem().as_bytes()).expect("an encoded Ed25519 key reads back")
    }
}

/// A freshly issued token, as `POST /auth/token` answers it.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs tokens for one cafe (`namespace`) with one key.
pub struct Issuer {
    kid: String,
    key: EncodingKey,
    namespace: String,
    ttl: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Issuer({}, {}, {:?})", self.namespace, self.kid, self.ttl)
    }
}

impl Issuer {
    pub fn new(key: &KeyPair, namespace: &str, ttl: Duration) -> Issuer {
        Issuer { kid: key.public().kid(), key: key.encoding_key(), namespace: namespace.into(), ttl }
    }

    /// A token for `sub` in `role` (with a customer's `phone`), valid for the issuer's ttl.
    pub fn issue(&self, sub: &str, role: Role, phone: Option<&str>) -> Token {
        let iat = now_secs();
        let claims = Claims {
            sub: sub.into(),
            role,
            phone: phone.map(Into::into),
            iss: self.namespace.clone(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let access_token =
            jsonwebtoken::encode(&header, &claims, &self.key).expect("claims serialise and Ed25519 signs");
        Token { access_token, expires_in: self.ttl.as_secs() }
    }
}

/// Why a token was refused. Never carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the token is not a well-formed signed token")]
    Malformed,
    #[error("the token is signed by a key this cafe does not know")]
    UnknownKey,
    #[error("the token's signature or claims are not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// How many verified tokens are remembered at most; the cache is emptied when it is full.
const CACHE_LIMIT: usize = 10_000;

/// Checks tokens against the public keys of one cafe.
pub struct Verifier {
    /// Keys that sign people's tokens, by key id.
    people: HashMap<String, DecodingKey>,
    /// Keys that sign service tokens, by key id.
    services: HashMap<String, DecodingKey>,
    validation: Validation,
    verified: Mutex<HashMap<String, Arc<Claims>>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("people", &self.people.keys().collect::<Vec<_>>())
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Verifier {
    pub fn new(namespace: &str, people: &[PublicKey], services: &[PublicKey]) -> Verifier {
        let by_kid = |keys: &[PublicKey]| keys.iter().map(|k| (k.kid(), k.decoding_key())).collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[namespace]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Verifier {
            people: by_kid(people),
            services: by_kid(services),
            validation,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of `token`, if one of our keys signed it, it is ours and it has not expired.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, Rejected> {
        let now = now_secs();
        if let Some(claims) = self.verified.lock().expect("the cache lock").get(token) {
            if claims.exp > now {
                return Ok(claims.clone());
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejected::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Rejected::Invalid);
        }
        let kid = header.kid.ok_or(Rejected::UnknownKey)?;
        let (key, service_key) = match (self.people.get(&kid), self.services.get(&kid)) {
            (Some(key), _) => (key, false),
            (None, Some(key)) => (key, true),
            (None, None) => return Err(Rejected::UnknownKey),
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejected::Expired,
                _ => Rejected::Invalid,
            })?
            .claims;
        // A service key signs only service tokens, and a people key never does; a customer is
        // always confined to a phone number.
        if (claims.role == Role::Service) != service_key
            || (claims.role == Role::Customer && claims.phone.as_deref().is_none_or(str::is_empty))
        {
            return Err(Rejected::Invalid);
        }
        let claims = Arc::new(claims);
        let mut cache = self.verified.lock().expect("the cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(token.to_string(), claims.clone());
        Ok(claims)
    }
}

/// Whether this process checks tokens.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `--auth off`: the original's open API, every route open to everyone.
    Off,
    On(Arc<Verifier>),
}

impl Auth {
    /// Who sent `headers`.
    pub fn identify(&self, headers: &HeaderMap) -> Caller {
        let Auth::On(verifier) = self else { return Caller::Open };
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Caller::Anonymous };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match token {
            None => Caller::Refused(Rejected::Malformed),
            Some(token) => match verifier.verify(token) {
                Ok(claims) => Caller::Signed(claims),
                Err(why) => Caller::Refused(why),
            },
        }
    }
}

/// Who is calling, as [`identify`] found out.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off: anyone may do anything, and sees everything.
    Open,
    /// No token.
    Anonymous,
    /// A token that was refused.
    Refused(Rejected),
    Signed(Arc<Claims>),
}

impl Caller {
    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Signed(c) => Some(c.role),
            Caller::Open | Caller::Anonymous | Caller::Refused(_) => None,
        }
    }

    /// The phone number a customer is confined to; `None` for anyone who sees everything.
    pub fn customer_phone(&self) -> Option<&str> {
        match self {
            // The verifier admits no customer without a phone.
            Caller::Signed(c) if c.role == Role::Customer => c.phone.as_deref(),
            Caller::Signed(_) | Caller::Open | Caller::Anonymous | Caller::Refused(_) => None,
        }
    }

    /// May this caller see data that belongs to `phone`?
    pub fn may_see(&self, phone: &str) -> bool {
        self.customer_phone().is_none_or(|own| own == phone)
    }

    /// Lets the caller through if its role is one of `roles` (or auth is off).
    pub fn check(&self, roles: &[Role]) -> Result<(), Refusal> {
        match self {
            Caller::Open => Ok(()),
            Caller::Signed(c) if roles.contains(&c.role) => Ok(()),
            Caller::Signed(c) => Err(Refusal::Forbidden(c.role)),
            Caller::Anonymous => Err(Refusal::Unauthenticated(None)),
            Caller::Refused(why) => Err(Refusal::Unauthenticated(Some(*why))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    /// The caller [`identify`] found; a request it never saw is anonymous.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller::Anonymous))
    }
}

/// A caller turned away: 401 or 403, as problem+json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a refused one (and why).
    Unauthenticated(Option<Rejected>),
    /// A valid token whose role may not do this.
    Forbidden(Role),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated(why) => {
                let detail = match why {
                    None => "sign in: this needs a bearer token (POST /auth/token)".to_string(),
                    Some(why) => format!("{why}; sign in again (POST /auth/token)"),
                };
                let challenge = match why {
                    None => HeaderValue::from_static("Bearer"),
                    Some(_) => HeaderValue::from_static("Bearer error=\"invalid_token\""),
                };
                let mut res = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
                res.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                res
            }
            Refusal::Forbidden(role) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", format!("a {role} may not do this")).into_response()
            }
        }
    }
}

/// Middleware: finds out who is calling and puts the [`Caller`] in the request.
pub async fn identify(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let caller = auth.identify(req.headers());
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Everyone who signs in.
pub const SIGNED_IN: &[Role] = &[Role::Customer, Role::Barista, Role::Rider, Role::Manager];
/// The cafe's own services calling each other.
pub const SERVICES: &[Role] = &[Role::Service];

/// A route layer that lets only `roles` through (everyone when auth is off):
/// `get(list).route_layer(allow(&[Barista, Manager]))`.
pub fn allow(roles: &'static [Role]) -> Allow {
    Allow(roles)
}

#[derive(Debug, Clone, Copy)]
pub struct Allow(&'static [Role]);

impl<S> tower::Layer<S> for Allow {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded { inner, roles: self.0 }
    }
}

/// A route behind [`allow`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    roles: &'static [Role],
}

impl<S> tower::Service<Request> for Guarded<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, std::future::Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let caller = req.extensions().get::<Caller>().cloned().unwrap_or(Caller::Anonymous);
        match caller.check(self.roles) {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(refusal) => Either::Right(std::future::ready(Ok(refusal.into_response()))),
        }
    }
}

/// A service's own credential for calling another: a service token it signs itself with
/// the service key, renewed when half its life has passed.
pub struct Credential {
    issuer: Issuer,
    service: String,
    current: Mutex<Option<(HeaderValue, u64)>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.service)
    }
}

/// How long a service token lives.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(600);

impl Credential {
    pub fn new(key: &KeyPair, namespace: &str, service: &str) -> Credential {
        Credential {
            issuer: Issuer::new(key, namespace, SERVICE_TOKEN_TTL),
            service: service.into(),
            current: Mutex::new(None),
        }
    }

    /// The `Authorization` header value to send.
    pub fn header(&self) -> HeaderValue {
        let now = now_secs();
        let mut current = self.current.lock().expect("the credential lock");
        match &*current {
            Some((value, renew_at)) if *renew_at > now => value.clone(),
            _ => {
                let token = self.issuer.issue(&self.service, Role::Service, None);
                let mut value = HeaderValue::try_from(format!("Bearer {}", token.access_token))
                    .expect("a token is a valid header value");
                value.set_sensitive(true);
                *current = Some((value.clone(), now + token.expires_in / 2));
                value
            }
        }
    }
}

#[cfg(test)]
mod tests;
