//! Who is looking at a page: the session cookie, the CSRF token tied to it, and the guard
//! each page declares beside its route.
//!
//! The session is the identity token itself (SPEC §9), kept in a `Secure`, `HttpOnly`,
//! `SameSite=Strict` cookie: page scripts cannot read it and other sites cannot send it. The
//! web verifies it as every service does, with the public key, so any replica knows the
//! person without shared state. The CSRF token of a form is a hash of that token: tied to the
//! session, the same on every replica, and useless without the cookie it came from.
//! Every form post also passes [`same_origin`]: `Sec-Fetch-Site` (or `Origin`) must say the
//! page that sent it was ours.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use futures::future::Either;
use platform::auth::{Auth, Claims, Rejected, Role};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "cafe_session";

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub claims: Arc<Claims>,
    pub csrf: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.claims.role
    }

    /// A customer's phone number.
    pub fn phone(&self) -> Option<&str> {
        self.claims.phone.as_deref().filter(|_| self.claims.role == Role::Customer)
    }

    pub fn name(&self) -> &str {
        &self.claims.sub
    }
}

/// What the cookie says about the visitor.
#[derive(Debug, Clone)]
pub enum Visitor {
    Anonymous,
    /// A cookie whose token has expired or no longer verifies: sign in again.
    Expired,
    Signed(Session),
}

impl Visitor {
    pub fn session(&self) -> Option<&Session> {
        match self {
            Visitor::Signed(s) => Some(s),
            Visitor::Anonymous | Visitor::Expired => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Visitor, Infallible> {
        Ok(parts.extensions.get::<Visitor>().cloned().unwrap_or(Visitor::Anonymous))
    }
}

/// The session a guarded page was let in with.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Session, Response> {
        match parts.extensions.get::<Visitor>() {
            Some(Visitor::Signed(s)) => Ok(s.clone()),
            _ => Err(sign_in_redirect(parts.uri.path_and_query().map_or("/", |p| p.as_str()), false)),
        }
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of the session whose token is `token`.
pub fn csrf_of(token: &str) -> String {
    let digest = Sha256::new().chain_update(b"cafe-web-csrf\0").chain_update(token.as_bytes()).finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the visitor from the session cookie.
pub fn identify(auth: &Auth, headers: &HeaderMap) -> Visitor {
    let Some(token) = cookie(headers, COOKIE).filter(|t| !t.is_empty()) else { return Visitor::Anonymous };
    let claims = match auth {
        Auth::On(verifier) => verifier.verify(token),
        // Auth off: nothing verifies tokens anywhere; the claims are only read.
        Auth::Off => unverified_claims(token),
    };
    match claims {
        Ok(claims) => Visitor::Signed(Session { token: token.to_string(), csrf: csrf_of(token), claims }),
        Err(_) => Visitor::Expired,
    }
}

fn unverified_claims(token: &str) -> Result<Arc<Claims>, Rejected> {
    let body = token.split('.').nth(1).ok_or(Rejected::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).map_err(|_| Rejected::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| Rejected::Malformed)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    if claims.exp <= now {
        return Err(Rejected::Expired);
    }
    Ok(Arc::new(claims))
}

/// Middleware: puts the [`Visitor`] in the request, for the page guards and handlers.
pub async fn visit(axum::extract::State(auth): axum::extract::State<Auth>, mut req: Request, next: Next) -> Response {
    let visitor = identify(&auth, req.headers());
    req.extensions_mut().insert(visitor);
    next.run(req).await
}

/// `Set-Cookie` for a new session that lives as long as its token.
pub fn set_session(token: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .unwrap_or_else(|_| clear_session())
}

/// `Set-Cookie` that ends the session.
pub fn clear_session() -> HeaderValue {
    HeaderValue::from_static("cafe_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// Where a path may send a person after signing in: only a path of this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// To the sign-in page, coming back to `back` afterwards.
pub fn sign_in_redirect(back: &str, expired: bool) -> Response {
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("next", back).finish();
    let flag = if expired { "&expired=1" } else { "" };
    let mut res = Redirect::to(&format!("/signin?{query}{flag}")).into_response();
    if expired {
        res.headers_mut().insert(header::SET_COOKIE, clear_session());
    }
    res
}

/// A route layer that lets only `roles` see a page: no session → sign in (then back here);
/// an ended session → the same, saying so; a person of another role → a 403 page.
pub fn page_for(roles: &'static [Role]) -> PageFor {
    PageFor(roles)
}

#[derive(Debug, Clone, Copy)]
pub struct PageFor(&'static [Role]);

impl<S> tower::Layer<S> for PageFor {
    type Service = GuardedPage<S>;
    fn layer(&self, inner: S) -> GuardedPage<S> {
        GuardedPage { inner, roles: self.0 }
    }
}

#[derive(Debug, Clone)]
pub struct GuardedPage<S> {
    inner: S,
    roles: &'static [Role],
}

impl<S> tower::Service<Request> for GuardedPage<S>
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
        let visitor = req.extensions().get::<Visitor>().cloned().unwrap_or(Visitor::Anonymous);
        // A form post comes back to the page it was on, not to the post's address.
        let back = if req.method() == Method::GET {
            req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string()
        } else {
            referer_path(req.headers()).unwrap_or_else(|| "/".into())
        };
        let refusal = match visitor {
            Visitor::Signed(s) if self.roles.contains(&s.role()) => return Either::Left(self.inner.call(req)),
            Visitor::Signed(s) => crate::pages::forbidden(&s, self.roles),
            Visitor::Anonymous => sign_in_redirect(&back, false),
            Visitor::Expired => sign_in_redirect(&back, true),
        };
        Either::Right(std::future::ready(Ok(refusal)))
    }
}

/// The path of the page a request came from, if it was ours.
fn referer_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let rest = referer.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    Some(safe_next(Some(path)))
}

/// Middleware on every form post: the browser must say the form came from this site
/// (`Sec-Fetch-Site: same-origin`, or an `Origin` naming the host it was sent to). A
/// browser too old to send either is let through to the CSRF token check.
pub async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD && !from_this_site(req.headers()) {
        tracing::info!("a form post from another site refused");
        return crate::pages::refused(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was refused.",
        );
    }
    next.run(req).await
}

fn from_this_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text("origin") else { return true };
    let Some((_, authority)) = origin.split_once("://") else { return false };
    let host = text("x-forwarded-host").or_else(|| text("host")).unwrap_or("");
    let port = text("x-forwarded-port");
    authority == host || port.is_some_and(|p| authority == format!("{host}:{p}"))
}

/// The form's `csrf` field must be the session's: the refusal if it is not.
pub fn check_csrf(session: &Session, field: Option<&str>) -> Option<Response> {
    match field {
        Some(token) if constant_time_eq(token.as_bytes(), session.csrf.as_bytes()) => None,
        _ => Some(crate::pages::refused(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_always_a_path_of_this_site() {
        assert_eq!(safe_next(Some("/barista?x=1")), "/barista?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_form_is_from_this_site_only_when_the_browser_says_so() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(from_this_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!from_this_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!from_this_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(from_this_site(&headers(&[("origin", "http://cafe:8080"), ("host", "cafe:8080")])));
        assert!(!from_this_site(&headers(&[("origin", "http://evil:8080"), ("host", "cafe:8080")])));
        assert!(from_this_site(&headers(&[
            ("origin", "http://cafe:8080"),
            ("x-forwarded-host", "cafe"),
            ("x-forwarded-port", "8080")
        ])));
    }

    #[test]
    fn the_csrf_token_is_tied_to_the_session() {
        assert_eq!(csrf_of("a.b.c"), csrf_of("a.b.c"));
        assert_ne!(csrf_of("a.b.c"), csrf_of("a.b.d"));
        assert_eq!(csrf_of("a.b.c").len(), 32);
    }
}
