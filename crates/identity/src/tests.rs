//! The service on a real SQLite database, driven through its router (no socket) behind the
//! same `identify` layer every served service has, with a real signing key; the tokens it
//! issues are checked with a verifier holding only the public key. The sign-in throttle runs
//! on a clock the test moves, so the minute it waits passes at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use platform::auth::{Auth, Issuer, KeyPair, Role, Verifier};
use platform::testing::TestService;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::throttle::{Throttle, LIMIT};
use crate::{add_user, ensure_manager, Config, Error, MIGRATIONS, NAME};

const HOST: &str = "identity:8087";
const TTL: Duration = Duration::from_secs(900);

struct TestApp {
    service: TestService,
    /// The router `service` drives, for requests that carry a bearer token.
    router: Router,
    issuer: Arc<Issuer>,
    verifier: Arc<Verifier>,
    /// How far the throttle's clock has moved, in milliseconds.
    elapsed_ms: Arc<AtomicU64>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn fields(&self) -> Vec<&str> {
        self.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect()
    }
}

async fn spawn_app() -> TestApp {
    let key = KeyPair::generate();
    let issuer = Arc::new(Issuer::new(&key, "cafe", TTL));
    let verifier = Arc::new(Verifier::new("cafe", &[key.public()], &[]));
    let elapsed_ms = Arc::new(AtomicU64::new(0));
    let (start, at) = (Instant::now(), elapsed_ms.clone());
    let throttle = Throttle::with_clock(Arc::new(move || start + Duration::from_millis(at.load(Ordering::SeqCst))));
    let auth = Auth::On(verifier.clone());
    let config = Config { issuer: issuer.clone() };
    let mut built = None;
    let service = TestService::start(NAME, HOST, MIGRATIONS, |ctx| {
        // TestService drives the service's own routes; `cafe` serves them behind `identify`.
        let router = crate::start_with(ctx, config, throttle)
            .layer(axum::middleware::from_fn_with_state(auth, platform::auth::identify));
        built = Some(router.clone());
        router
    })
    .await;
    TestApp { service, router: built.expect("the router was built"), issuer, verifier, elapsed_ms }
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>, token: Option<&str>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri).header(header::HOST, HOST);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    async fn register(&self, phone: &str, password: &str) -> Answer {
        self.call(Method::POST, "/customers", Some(json!({"phoneNumber": phone, "password": password})), None).await
    }

    async fn sign_in(&self, username: &str, password: &str) -> Answer {
        self.call(Method::POST, "/auth/token", Some(json!({"username": username, "password": password})), None).await
    }

    /// A token for someone in `role`, as identity would sign it.
    fn token_for(&self, role: Role) -> String {
        let phone = (role == Role::Customer).then_some("01012345678");
        self.issuer.issue(&format!("a-{role}"), role, phone).access_token
    }

    fn advance(&self, by: Duration) {
        self.elapsed_ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    async fn accounts(&self) -> Answer {
        self.call(Method::GET, "/auth/users", None, Some(&self.token_for(Role::Manager))).await
    }
}

#[tokio::test]
async fn a_customer_registers_signs_in_and_gets_a_token_with_their_phone_number() {
    let app = spawn_app().await;
    let a = app.register("010-1234-5678", "correct horse").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.header(header::CONTENT_TYPE), Some("application/hal+json"));
    let location = a.header(header::LOCATION).unwrap().to_string();
    assert_eq!(location, "http://identity:8087/auth/users/1");
    assert_eq!(a.body["_links"]["self"]["href"], location);
    assert_eq!(
        (&a.body["id"], &a.body["username"], &a.body["role"], &a.body["phoneNumber"]),
        (&json!(1), &json!("01012345678"), &json!("customer"), &json!("01012345678"))
    );
    assert!(a.body["createTime"].is_string());
    let text = a.body.to_string();
    assert!(!text.contains("argon2") && !text.contains("assword"), "no hash, no password: {text}");

    // Typed with hyphens or without, the phone number is the user name.
    for typed in ["010-1234-5678", "01012345678"] {
        let t = app.sign_in(typed, "correct horse").await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        assert_eq!(t.header(header::CONTENT_TYPE), Some("application/json"));
        assert_eq!(t.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!((&t.body["token_type"], &t.body["role"]), (&json!("Bearer"), &json!("customer")));
        assert_eq!(t.body["expires_in"], json!(TTL.as_secs()));
        let claims = app.verifier.verify(t.body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role, claims.phone.as_deref()),
            ("01012345678", Role::Customer, Some("01012345678"))
        );
    }

    let token = app.sign_in("01012345678", "correct horse").await.body["access_token"].as_str().unwrap().to_string();
    let me = app.call(Method::GET, "/auth/me", None, Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, json!({"username": "01012345678", "role": "customer", "phoneNumber": "01012345678"}));
    let own = app.call(Method::GET, "/auth/users/1", None, Some(&token)).await;
    assert_eq!((own.status, &own.body["username"]), (StatusCode::OK, &json!("01012345678")));
}

#[tokio::test]
async fn a_phone_number_registers_once() {
    let app = spawn_app().await;
    assert_eq!(app.register("010-1234-5678", "correct horse").await.status, StatusCode::CREATED);
    let again = app.register("01012345678", "another password").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.header(header::CONTENT_TYPE), Some("application/problem+json"));
    // The first password still stands.
    assert_eq!(app.sign_in("01012345678", "correct horse").await.status, StatusCode::OK);
    assert_eq!(app.sign_in("01012345678", "another password").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_each_field() {
    let app = spawn_app().await;
    let a = app.call(Method::POST, "/customers", Some(json!({})), None).await;
    assert_eq!((a.status, a.fields()), (StatusCode::BAD_REQUEST, vec!["phoneNumber", "password"]));
    let a = app.register("call me", "1234567").await;
    assert_eq!((a.status, a.fields()), (StatusCode::BAD_REQUEST, vec!["phoneNumber", "password"]));
    let a = app.register("010-1234-5678", &"p".repeat(1025)).await;
    assert_eq!(a.fields(), ["password"]);
    let a = app.call(Method::POST, "/auth/token", Some(json!({"username": 7})), None).await;
    assert_eq!((a.status, a.fields()), (StatusCode::BAD_REQUEST, vec!["username", "password"]));
    let manager = app.token_for(Role::Manager);
    let a = app
        .call(
            Method::POST,
            "/auth/users",
            Some(json!({"username": "no spaces please", "password": "short", "role": "customer"})),
            Some(&manager),
        )
        .await;
    assert_eq!((a.status, a.fields()), (StatusCode::BAD_REQUEST, vec!["username", "password", "role"]));
    let a = app.service.request(Method::POST, "/customers", None).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.accounts().await.body["page"]["totalElements"], json!(0), "nothing was created");
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_name_is_the_same_401_and_changes_nothing() {
    let app = spawn_app().await;
    app.register("010-1234-5678", "correct horse").await;
    let wrong = app.sign_in("010-1234-5678", "incorrect horse").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.header(header::CONTENT_TYPE), Some("application/problem+json"));
    assert!(wrong.body.get("access_token").is_none());
    let unknown = app.sign_in("nobody", "incorrect horse").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.body, wrong.body, "an unknown name and a wrong password read alike");
    assert!(!wrong.body.to_string().contains("incorrect horse"));

    let accounts = app.accounts().await;
    assert_eq!(accounts.body["page"]["totalElements"], json!(1));
    assert_eq!(app.sign_in("010-1234-5678", "correct horse").await.status, StatusCode::OK);
}

#[tokio::test]
async fn after_five_failures_even_the_right_password_waits_until_the_oldest_leaves_the_minute() {
    let app = spawn_app().await;
    app.register("010-1234-5678", "correct horse").await;
    for _ in 0..LIMIT {
        assert_eq!(app.sign_in("010-1234-5678", "a guess at it").await.status, StatusCode::UNAUTHORIZED);
    }
    // Spelled the other way, it is the same user name.
    let refused = app.sign_in("01012345678", "correct horse").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header(header::CONTENT_TYPE), Some("application/problem+json"));
    assert_eq!(refused.header(header::RETRY_AFTER), Some("60"));
    assert!(refused.body.get("access_token").is_none());

    app.advance(Duration::from_secs(45));
    let refused = app.sign_in("010-1234-5678", "correct horse").await;
    assert_eq!((refused.status, refused.header(header::RETRY_AFTER)), (StatusCode::TOO_MANY_REQUESTS, Some("15")));

    app.advance(Duration::from_secs(15));
    assert_eq!(app.sign_in("010-1234-5678", "correct horse").await.status, StatusCode::OK);
    // The success cleared the failures: a new mistake is a plain 401 again.
    assert_eq!(app.sign_in("010-1234-5678", "a guess at it").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_names_are_throttled_like_known_ones() {
    let app = spawn_app().await;
    for _ in 0..LIMIT {
        assert_eq!(app.sign_in("ghost", "a guess at it").await.status, StatusCode::UNAUTHORIZED);
    }
    let refused = app.sign_in("ghost", "a guess at it").await;
    assert_eq!((refused.status, refused.header(header::RETRY_AFTER)), (StatusCode::TOO_MANY_REQUESTS, Some("60")));
}

#[tokio::test]
async fn ensure_manager_creates_the_manager_once() {
    let app = spawn_app().await;
    let db = app.service.ctx.db();
    assert!(matches!(ensure_manager(db, "short").await, Err(Error::Invalid { field: "password", .. })));
    assert!(ensure_manager(db, "first manager password").await.unwrap());
    assert!(!ensure_manager(db, "second manager password").await.unwrap());
    let t = app.sign_in("manager", "first manager password").await;
    assert_eq!((t.status, &t.body["role"]), (StatusCode::OK, &json!("manager")));
    assert_eq!(app.verifier.verify(t.body["access_token"].as_str().unwrap()).unwrap().phone, None);
    assert_eq!(app.sign_in("manager", "second manager password").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.accounts().await.body["page"]["totalElements"], json!(1));
}

#[tokio::test]
async fn ensure_manager_does_nothing_when_another_manager_exists() {
    let app = spawn_app().await;
    let db = app.service.ctx.db();
    add_user(db, "boss", "boss password", Role::Manager).await.unwrap();
    assert!(!ensure_manager(db, "manager password").await.unwrap());
    assert_eq!(app.sign_in("manager", "manager password").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn add_user_adds_each_staff_role_and_refuses_the_rest() {
    let app = spawn_app().await;
    let db = app.service.ctx.db();
    for (name, role) in [("kim", Role::Barista), ("lee", Role::Rider), ("park", Role::Manager)] {
        add_user(db, name, "staff password", role).await.unwrap();
        let t = app.sign_in(name, "staff password").await;
        assert_eq!((t.status, &t.body["role"]), (StatusCode::OK, &json!(role.as_str())), "{name}");
        let claims = app.verifier.verify(t.body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role, claims.phone.as_deref()), (name, role, None));
    }
    for role in [Role::Customer, Role::Service] {
        assert!(matches!(
            add_user(db, "choi", "staff password", role).await,
            Err(Error::Invalid { field: "role", .. })
        ));
    }
    assert!(matches!(add_user(db, "kim", "staff password", Role::Rider).await, Err(Error::Taken(_))));
    assert!(matches!(
        add_user(db, "010-1234-5678", "staff password", Role::Rider).await,
        Err(Error::Invalid { field: "username", .. })
    ));
    assert!(matches!(
        add_user(db, "bad name", "staff password", Role::Rider).await,
        Err(Error::Invalid { field: "username", .. })
    ));
    assert!(matches!(add_user(db, "choi", "short", Role::Rider).await, Err(Error::Invalid { field: "password", .. })));
    assert_eq!(app.accounts().await.body["page"]["totalElements"], json!(3));
}

#[tokio::test]
async fn only_a_manager_adds_and_lists_staff() {
    let app = spawn_app().await;
    let kim = json!({"username": "kim", "password": "staff password", "role": "barista"});
    for method in [Method::GET, Method::POST] {
        let body = (method == Method::POST).then(|| kim.clone());
        let anonymous = app.call(method.clone(), "/auth/users", body.clone(), None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(anonymous.header(header::WWW_AUTHENTICATE), Some("Bearer"));
        assert_eq!(anonymous.header(header::CONTENT_TYPE), Some("application/problem+json"));
        for role in [Role::Barista, Role::Rider, Role::Customer] {
            let refused = app.call(method.clone(), "/auth/users", body.clone(), Some(&app.token_for(role))).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} as {role}");
        }
        let forged = app.call(method.clone(), "/auth/users", body, Some("not.a.token")).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    }

    let manager = app.token_for(Role::Manager);
    let added = app.call(Method::POST, "/auth/users", Some(kim.clone()), Some(&manager)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.header(header::LOCATION), Some("http://identity:8087/auth/users/1"));
    assert_eq!((&added.body["username"], &added.body["role"]), (&json!("kim"), &json!("barista")));
    assert!(added.body.get("phoneNumber").is_none(), "staff have no phone number");
    assert_eq!(app.call(Method::POST, "/auth/users", Some(kim), Some(&manager)).await.status, StatusCode::CONFLICT);
    let t = app.sign_in("kim", "staff password").await;
    assert_eq!((t.status, &t.body["role"]), (StatusCode::OK, &json!("barista")));

    app.register("010-1234-5678", "correct horse").await;
    let page = app.call(Method::GET, "/auth/users?sort=username,desc", None, Some(&manager)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header(header::CONTENT_TYPE), Some("application/hal+json"));
    let names: Vec<&str> = page.body["_embedded"]["auth/users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kim", "01012345678"]);
    assert_eq!(page.body["page"]["totalElements"], json!(2));
    assert!(!page.body.to_string().contains("argon2"));
}

#[tokio::test]
async fn a_person_sees_only_their_own_account() {
    let app = spawn_app().await;
    app.register("010-1234-5678", "correct horse").await;
    app.register("010-8765-4321", "other horse!").await;
    let token = app.sign_in("01012345678", "correct horse").await.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.call(Method::GET, "/auth/users/2", None, Some(&token)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, "/auth/users/1", None, Some(&token)).await.status, StatusCode::OK);
    let manager = app.token_for(Role::Manager);
    assert_eq!(app.call(Method::GET, "/auth/users/2", None, Some(&manager)).await.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/auth/users/9", None, Some(&manager)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, "/auth/users/1", None, None).await.status, StatusCode::UNAUTHORIZED);
    let me = app.call(Method::GET, "/auth/me", None, None).await;
    assert_eq!((me.status, me.header(header::WWW_AUTHENTICATE)), (StatusCode::UNAUTHORIZED, Some("Bearer")));
}

#[tokio::test]
async fn anyone_may_ask_whether_identity_is_up_and_its_database_going_says_down() {
    let app = spawn_app().await;
    let up = app.call(Method::GET, "/auth/health", None, None).await;
    assert_eq!((up.status, up.body.clone()), (StatusCode::OK, json!({"status": "UP"})));
    app.service.ctx.db().pool().close().await;
    let down = app.call(Method::GET, "/auth/health", None, None).await;
    assert_eq!((down.status, down.body), (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "DOWN"})));
}
