//! Requests as a chosen person or service sends them: real tokens, signed with keys made for
//! the test and checked by the real middleware, as `platform::server::app` installs it.
//! `TestService` sends no `Authorization` of its own, so a layer in front puts in the token of
//! whoever the test says is calling.
//!
//! A test of who may do what is a table: each caller and the status it is answered, sent by
//! [`Signed::check_table`]; [`answers`] and [`refusals`] write the usual tables.

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{identify, Auth, Credential, Issuer, KeyPair, Role, Verifier};
use crate::testing::{Answer, TestService};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// Who sends the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    Customer(&'static str),
    Barista,
    Rider,
    Manager,
    /// Another of the cafe's services, with its service token.
    Service,
}

impl Who {
    /// One of each: no one signed in, a customer, each staff role and a service.
    pub const EVERYONE: [Who; 6] =
        [Who::Anonymous, Who::Customer("01012345678"), Who::Barista, Who::Rider, Who::Manager, Who::Service];
}

/// The `Authorization` the next requests carry.
type Bearer = Arc<Mutex<Option<HeaderValue>>>;

pub struct Signed {
    people: Issuer,
    service: Credential,
    auth: Auth,
    bearer: Bearer,
}

impl Signed {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Signed {
        let (people, services) = (KeyPair::generate(), KeyPair::generate());
        let verifier = Verifier::new("cafe", &[people.public()], &[services.public()]);
        Signed {
            people: Issuer::new(&people, "cafe", Duration::from_secs(600)),
            service: Credential::new(&services, "cafe", "order"),
            auth: Auth::On(Arc::new(verifier)),
            bearer: Bearer::default(),
        }
    }

    /// `router` behind the token check, sent the token of whoever [`Signed::act_as`] named.
    pub fn guard(&self, router: Router) -> Router {
        router
            .layer(from_fn_with_state(self.auth.clone(), identify))
            .layer(from_fn_with_state(self.bearer.clone(), send_bearer))
    }

    pub fn act_as(&self, who: Who) {
        let person = |role, phone| {
            let token = self.people.issue("someone", role, phone).access_token;
            Some(HeaderValue::try_from(format!("Bearer {token}")).unwrap())
        };
        *self.bearer.lock().unwrap() = match who {
            Who::Anonymous => None,
            Who::Customer(phone) => person(Role::Customer, Some(phone)),
            Who::Barista => person(Role::Barista, None),
            Who::Rider => person(Role::Rider, None),
            Who::Manager => person(Role::Manager, None),
            Who::Service => Some(self.service.header()),
        };
    }
}

impl Signed {
    /// Sends one request to `app` as `who`.
    pub async fn send(&self, app: &TestService, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.act_as(who);
        app.request(method, uri, body).await
    }

    /// Sends the same request as each caller of `rows` and checks it is answered the status
    /// beside it (see [`expect`]). The answers, in the order of `rows`, for further checks.
    pub async fn check_table(
        &self,
        app: &TestService,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        rows: impl IntoIterator<Item = (Who, u16)>,
    ) -> Vec<(Who, Answer)> {
        let mut answers = Vec::new();
        for (who, status) in rows {
            let answer = self.send(app, who, method.clone(), uri, body.cloned()).await;
            expect(&answer, status, &format!("{who:?} {method} {uri}"));
            answers.push((who, answer));
        }
        answers
    }
}

/// A service under test behind the token check ([`Signed::guard`]), with the tokens to call
/// it: `app` is the test module's own handle on it (see [`crate::test_app`]).
pub struct Guarded<A> {
    pub app: A,
    pub signed: Signed,
}

impl<A: Deref<Target = TestService>> Guarded<A> {
    /// Sends one request as `who`.
    pub async fn call(&self, who: Who, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.signed.send(&self.app, who, method, uri, body).await
    }

    /// [`Signed::check_table`] on this service.
    pub async fn check_table(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        rows: impl IntoIterator<Item = (Who, u16)>,
    ) -> Vec<(Who, Answer)> {
        self.signed.check_table(&self.app, method, uri, body, rows).await
    }
}

/// `answer` has `status`; a 401 also challenges for a bearer token.
pub fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
    if status == 401 {
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{what}");
    }
}

/// What `who` is answered on a route for `roles`: `allowed`, or the refusal (401 to no one
/// signed in, 403 to anyone else).
pub fn answer_to(who: Who, roles: &[Who], allowed: u16) -> u16 {
    match who {
        _ if roles.contains(&who) => allowed,
        Who::Anonymous => 401,
        _ => 403,
    }
}

/// Each of `whos` with what it is answered on a route for `roles` (see [`answer_to`]).
pub fn answers(whos: impl IntoIterator<Item = Who>, roles: &[Who], allowed: u16) -> Vec<(Who, u16)> {
    whos.into_iter().map(|who| (who, answer_to(who, roles, allowed))).collect()
}

/// Each of `whos` that is not among `roles`, with its refusal.
pub fn refusals(whos: impl IntoIterator<Item = Who>, roles: &[Who]) -> Vec<(Who, u16)> {
    whos.into_iter().filter(|who| !roles.contains(who)).map(|who| (who, answer_to(who, roles, 0))).collect()
}

/// `router` as the original ran it (`--auth off`): everyone may do everything.
pub fn open(router: Router) -> Router {
    router.layer(from_fn_with_state(Auth::Off, identify))
}

async fn send_bearer(State(bearer): State<Bearer>, mut req: Request, next: Next) -> Response {
    let value = bearer.lock().unwrap().clone();
    if let Some(value) = value {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(req).await
}
