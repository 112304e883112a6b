//! The HTTP edge: `/customers` (register), `/auth/token` (sign in), `/auth/users` (staff,
//! for managers), `/auth/me`. Bodies are validated here, every bad field named at once, and
//! the crate's [`Error`]s become problem+json. Who may call each route is declared beside it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use contracts::PhoneNumber;
use platform::auth::{Caller, Refusal, Role, SIGNED_IN};
use platform::hal::{created, parse_id};
use platform::json::{checked, Fields};
use platform::openapi::{self, Described, OpenApiRouter, ToSchema, ANYONE};
use platform::{BaseUrl, JsonBody, Problem, Resource};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{staff_role, Account, Password, Username, STAFF_RULE};
use crate::error::Error;
use crate::{accounts, store, Service};

/// Accounts, customers' and staff's alike, under `/auth/users` (where the gateway sends
/// everything of identity's).
pub const USERS: Resource = Resource {
    collection: "auth/users",
    rel: "user",
    sortable: &[("id", "id"), ("username", "username"), ("role", "role"), ("createTime", "create_time")],
};

const MANAGERS: &[Role] = &[Role::Manager];

/// The routes, each with who may call it and its description.
pub fn routes() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::new()
        .op(openapi::post("/customers", ANYONE, register)
            .tag("accounts")
            .summary("Register as a customer", "The phone number is the user name.")
            .body::<RegisterCustomer>()
            .created::<Account>("Registered.")
            .fails(409, "That phone number is registered already."))
        .op(openapi::post("/auth/token", ANYONE, token)
            .tag("accounts")
            .summary("Sign in", "A bearer token for the account, as OAuth 2 answers (`Cache-Control: no-store`).")
            .body::<SignInBody>()
            .json_of::<TokenAnswer>(200, "Signed in.")
            .fails(401, "Wrong user name or password.")
            .fails(429, "Too many failed sign-ins for that name or from this caller; retry after `Retry-After`."))
        .op(openapi::get("/auth/users", MANAGERS, list)
            .tag("accounts")
            .summary("Accounts", "Customers' and staff's alike.")
            .paged(USERS.sortable)
            .page_of::<Account>(USERS.collection))
        .op(openapi::post("/auth/users", MANAGERS, add_staff)
            .tag("accounts")
            .summary("Add a staff account", "A barista, rider or manager.")
            .body::<AddStaff>()
            .created::<Account>("Added.")
            .fails(409, "That user name is taken."))
        .op(openapi::get("/auth/users/{id}", SIGNED_IN, one)
            .tag("accounts")
            .summary("An account", "A manager sees any; anyone else only their own (another's is answered 404).")
            .item::<Account>(200, "The account."))
        .op(openapi::get("/auth/me", SIGNED_IN, me)
            .tag("accounts")
            .summary("Who the token says the caller is", "")
            .json_of::<Me>(200, "The caller."))
        // Anyone: identity takes calls only through the gateway, so this is how the web's
        // dashboard (and anyone) learns whether signing in works.
        .op(openapi::get("/auth/health", ANYONE, health)
            .tag("accounts")
            .summary("Can one sign in?", "Whether identity's database answers; nothing more.")
            .json(200, "Signing in works.", "application/json", health_schema("UP"))
            .json(503, "Identity's database does not answer.", "application/json", health_schema("DOWN")))
}

pub fn router(svc: Arc<Service>) -> Router {
    platform::openapi::finish(crate::NAME, routes(), svc)
}

fn health_schema(status: &str) -> Value {
    serde_json::json!({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": [status]}}})
}

/// A `POST /customers` body (read by [`registration`]).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // only its schema is used
struct RegisterCustomer {
    /// Digits, hyphens allowed (`010-1234-5678`).
    #[schema(min_length = 1, max_length = 64)]
    phone_number: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// A `POST /auth/token` body (read by [`sign_in`]).
#[derive(ToSchema)]
#[schema(as = SignIn)]
#[allow(dead_code)] // only its schema is used
struct SignInBody {
    /// A customer's phone number, or a staff member's user name.
    #[schema(min_length = 1, max_length = 128)]
    username: String,
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
}

/// A `POST /auth/users` body (read by [`new_staff`]).
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
struct AddStaff {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    username: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[schema(value_type = String, pattern = "^(barista|rider|manager)$")]
    role: Role,
}

/// `GET /auth/health`: `{"status": "UP"}`, or 503 `{"status": "DOWN"}` when identity's
/// database does not answer. Nothing else: the details stay on identity's own port.
async fn health(State(svc): State<Arc<Service>>) -> Response {
    match svc.ctx.db().ping().await {
        true => Json(serde_json::json!({"status": "UP"})).into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "DOWN"}))).into_response(),
    }
}

/// A `POST /customers` body.
#[derive(Debug)]
pub struct Registration {
    pub phone_number: PhoneNumber,
    pub password: Password,
}

/// A `POST /auth/token` body. The password is checked, not validated: any string will do.
pub struct SignIn {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A `POST /auth/users` body.
#[derive(Debug)]
pub struct NewStaff {
    pub username: Username,
    pub password: Password,
    pub role: Role,
}

/// The string in `field`, exactly as sent: passwords are not trimmed.
fn exact<'a>(f: &mut Fields<'_>, body: &'a JsonBody, field: &str) -> Option<&'a str> {
    match body.0.get(field) {
        None | Some(Value::Null) => {
            f.error(field, "is required");
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            f.error(field, "must be a string");
            None
        }
    }
}

/// A new password in `field`.
fn new_password(f: &mut Fields<'_>, body: &JsonBody, field: &str) -> Option<Password> {
    let raw = exact(f, body, field)?;
    Password::new(raw).map_err(|rule| f.error(field, rule)).ok()
}

pub fn registration(body: &JsonBody) -> Result<Registration, Problem> {
    let mut f = Fields::new(body);
    let phone_number = f
        .string("phoneNumber", 1, 64)
        .and_then(|raw| PhoneNumber::parse(&raw).map_err(|rule| f.error("phoneNumber", rule)).ok());
    let password = new_password(&mut f, body, "password");
    f.finish()?;
    Ok(Registration { phone_number: checked(phone_number)?, password: checked(password)? })
}

pub fn sign_in(body: &JsonBody) -> Result<SignIn, Problem> {
    let mut f = Fields::new(body);
    let username = f.string("username", 1, 128);
    let password = exact(&mut f, body, "password").map(str::to_string);
    if password.as_deref().is_some_and(|p| p.is_empty() || p.chars().count() > Password::MAX) {
        f.error("password", format!("must be 1 to {} characters", Password::MAX));
    }
    f.finish()?;
    Ok(SignIn { username: checked(username)?, password: checked(password)? })
}

pub fn new_staff(body: &JsonBody) -> Result<NewStaff, Problem> {
    let mut f = Fields::new(body);
    let username = f
        .string("username", 1, 64)
        .and_then(|raw| Username::staff(&raw).map_err(|rule| f.error("username", rule)).ok());
    let password = new_password(&mut f, body, "password");
    let role = f.string("role", 1, 32).and_then(|raw| {
        let role = raw.parse::<Role>().ok().and_then(|r| staff_role(r).ok());
        if role.is_none() {
            f.error("role", STAFF_RULE);
        }
        role
    });
    f.finish()?;
    Ok(NewStaff { username: checked(username)?, password: checked(password)?, role: checked(role)? })
}

/// Anyone may register as a customer: 201 with the account.
#[tracing::instrument(level = "debug", skip_all)]
async fn register(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let Registration { phone_number, password } = registration(&body)?;
    let account = accounts::register_customer(svc.ctx.db(), &phone_number, password).await?;
    Ok(created(&USERS.item_href(&base, account.id), USERS.item(&base, account.id, &account)))
}

/// The answer of `POST /auth/token`, as OAuth 2 spells it. No `Debug`: it is a credential.
#[derive(Serialize, ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub role: Role,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn token(State(svc): State<Arc<Service>>, body: JsonBody) -> Result<Response, Problem> {
    let SignIn { username, password } = sign_in(&body)?;
    let account = accounts::sign_in(svc.ctx.db(), &svc.throttle, &username, password).await?;
    let token = svc.issuer.issue(&account.username, account.role, account.phone_number.as_deref());
    let answer = TokenAnswer {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        role: account.role,
    };
    let mut res = (StatusCode::OK, Json(answer)).into_response();
    // A token is a credential: no cache along the way may keep it (RFC 6749 §5.1).
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// A manager adds a barista, rider or manager: 201 with the account.
#[tracing::instrument(level = "debug", skip_all)]
async fn add_staff(State(svc): State<Arc<Service>>, base: BaseUrl, body: JsonBody) -> Result<Response, Problem> {
    let NewStaff { username, password, role } = new_staff(&body)?;
    let account = accounts::add_staff(svc.ctx.db(), &username, password, role).await?;
    Ok(created(&USERS.item_href(&base, account.id), USERS.item(&base, account.id, &account)))
}

async fn list(State(svc): State<Arc<Service>>, base: BaseUrl, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    USERS.list(&base, q.as_deref(), async |page| store::page(svc.ctx.db(), page).await, |a| a.id).await
}

/// One account: a manager sees any, anyone else only their own (another's is not found,
/// so ids do not tell who exists).
async fn one(
    State(svc): State<Arc<Service>>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id, "user")?;
    let account = store::find(svc.ctx.db(), id).await.map_err(Error::from)?.ok_or(Error::NotFound(id))?;
    let allowed = match &caller {
        Caller::Signed(claims) => claims.role == Role::Manager || claims.sub == account.username,
        Caller::Open => true,
        Caller::Anonymous | Caller::Refused(_) => false,
    };
    if !allowed {
        return Err(Error::NotFound(id).into());
    }
    Ok(USERS.found(&base, id, &account))
}

/// Who the caller's token says they are.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub username: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

async fn me(caller: Caller) -> Response {
    match caller {
        Caller::Signed(claims) => {
            Json(Me { username: claims.sub.clone(), role: claims.role, phone_number: claims.phone.clone() })
                .into_response()
        }
        // With auth off nobody has signed in; with it on, `allow` has let only tokens by.
        Caller::Open | Caller::Anonymous | Caller::Refused(_) => Refusal::Unauthenticated(None).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use platform::testing::json_body as body;
    use serde_json::json;

    use super::*;

    fn fields(p: Problem) -> Vec<String> {
        p.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_registration_names_every_bad_field() {
        let p = registration(&body(json!({"phoneNumber": "12-34", "password": "short"}))).unwrap_err();
        assert_eq!(fields(p), ["phoneNumber", "password"]);
        let p = registration(&body(json!({"phoneNumber": 1012345678_i64}))).unwrap_err();
        assert_eq!(fields(p), ["phoneNumber", "password"]);
        let ok = registration(&body(json!({"phoneNumber": "010-1234-5678", "password": " spaced out "}))).unwrap();
        assert_eq!((ok.phone_number.as_str(), ok.password.expose()), ("01012345678", " spaced out "));
    }

    #[test]
    fn a_sign_in_needs_both_strings() {
        assert_eq!(fields(sign_in(&body(json!({}))).unwrap_err()), ["username", "password"]);
        assert_eq!(fields(sign_in(&body(json!({"username": "kim", "password": ""}))).unwrap_err()), ["password"]);
        let ok = sign_in(&body(json!({"username": "kim", "password": "x"}))).unwrap();
        assert_eq!((ok.username.as_str(), ok.password.as_str()), ("kim", "x"));
        assert!(!format!("{ok:?}").contains("\"x\""), "the password stays out of Debug");
    }

    #[test]
    fn new_staff_needs_a_staff_role() {
        for role in ["customer", "service", "boss", ""] {
            let p = new_staff(&body(json!({"username": "kim", "password": "long enough", "role": role}))).unwrap_err();
            assert_eq!(fields(p), ["role"], "{role}");
        }
        let p = new_staff(&body(json!({"username": "has space", "password": "x", "role": 3}))).unwrap_err();
        assert_eq!(fields(p), ["username", "password", "role"]);
        let ok = new_staff(&body(json!({"username": "kim", "password": "long enough", "role": "rider"}))).unwrap();
        assert_eq!((ok.username.as_str(), ok.role), ("kim", Role::Rider));
    }
}
