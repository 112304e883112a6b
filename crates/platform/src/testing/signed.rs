//! Requests as a chosen person or service sends them: real tokens, signed with keys made for
//! the test and checked by the real middleware, as `platform::server::app` installs it.
//! `TestService` sends no `Authorization` of its own, so a layer in front puts in the token of
//! whoever the test says is calling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{identify, Auth, Credential, Issuer, KeyPair, Role, Verifier};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;

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
