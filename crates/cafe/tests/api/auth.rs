//! SPEC §9 from outside, with auth on, through the gateway as people use it: every row of the
//! table for every role and anonymous (allowed → works; refused → 401/403/404, and what it
//! would have changed reads back unchanged), internal calls closed, prices from the menu,
//! forged tokens, slowed guessing, the admin switch, bounded metric series, the rate limit.

use std::time::Duration;

use contracts::ServiceName;
use platform::auth::{Issuer, KeyPair, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, id, items, spawn_app_with, spawn_process_with, Reply, TestApp};

in_both_modes_with_auth!(
    every_row_of_the_table_lets_in_exactly_the_roles_it_names_and_refusals_change_nothing,
    internal_calls_are_closed_at_the_gateway_and_refused_on_the_services_own_ports,
    prices_come_from_the_menu_and_a_customer_orders_only_for_themselves,
    forged_tokens_are_refused,
);

const PHONE_A: &str = "01055550001";
const PHONE_B: &str = "01055550002";

/// Anonymous, then a customer (phone A), a barista, a rider and a manager.
struct People {
    tokens: [Option<String>; 5],
}

const WHO: [&str; 5] = ["anonymous", "customer", "barista", "rider", "manager"];

impl People {
    fn customer(&self) -> Option<&str> {
        self.tokens[1].as_deref()
    }
    fn barista(&self) -> Option<&str> {
        self.tokens[2].as_deref()
    }
    fn manager(&self) -> Option<&str> {
        self.tokens[4].as_deref()
    }
}

/// Signs in the first manager, who adds a barista and a rider; two customers register.
async fn people(app: &TestApp) -> (People, String) {
    let manager = app.sign_in("manager", &app.manager_password()).await;
    for (name, role) in [("barista1", "barista"), ("rider1", "rider")] {
        let body = json!({"username": name, "password": format!("{name}-password"), "role": role});
        app.request_as(Some(&manager), Method::POST, "/auth/users", Some(&body)).await.expect(201, "add staff");
    }
    for phone in ["010-5555-0001", "010-5555-0002"] {
        let body = json!({"phoneNumber": phone, "password": "customer-password"});
        app.post("/customers", &body).await.expect(201, "a customer registers");
    }
    let customer = app.sign_in(PHONE_A, "customer-password").await;
    let other = app.sign_in("010-5555-0002", "customer-password").await;
    let barista = app.sign_in("barista1", "barista1-password").await;
    let rider = app.sign_in("rider1", "rider1-password").await;
    (People { tokens: [None, Some(customer), Some(barista), Some(rider), Some(manager)] }, other)
}

/// Polls `path` as `token` until `found` picks something out of its answer.
async fn wait_for<T>(app: &TestApp, token: Option<&str>, path: &str, found: impl Fn(&Value) -> Option<T>) -> T {
    eventually(app.deadline, async || {
        let r = app.request_as(token, Method::GET, path, None).await;
        (r.status == 200).then(|| found(&r.json)).flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("GET {path}: never found what the test waits for: {e:?}"))
}

/// The item of a collection whose `orderId` is `order_id`.
fn of_order(order_id: i64) -> impl Fn(&Value) -> Option<Value> {
    move |page| items(page).into_iter().find(|i| i["orderId"] == order_id)
}

struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    /// The status each of anonymous, customer, barista, rider, manager gets.
    want: [u16; 5],
    /// What a refused request must leave as it was (read as the manager before and after).
    unchanged: Option<String>,
}

fn row(method: Method, path: impl Into<String>, want: [u16; 5]) -> Row {
    Row { method, path: path.into(), body: None, want, unchanged: None }
}

/// A PATCH of `path`'s status to `status`, which a refusal must leave as it was.
fn status_change(path: String, status: &str, want: [u16; 5]) -> Row {
    row(Method::PATCH, path.clone(), want).body(json!({ "status": status })).unchanged(path)
}

impl Row {
    fn body(mut self, body: Value) -> Row {
        self.body = Some(body);
        self
    }
    fn unchanged(mut self, path: impl Into<String>) -> Row {
        self.unchanged = Some(path.into());
        self
    }
}

#[track_caller]
fn expect_refusal(r: &Reply, want: u16, what: &str) {
    r.expect_problem(want, what);
    if want == 401 {
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{what}: 401 without WWW-Authenticate: Bearer ({challenge:?})");
    }
}

async fn every_row_of_the_table_lets_in_exactly_the_roles_it_names_and_refusals_change_nothing(app: TestApp) {
    let (people, other) = people(&app).await;
    let order = |phone: Option<&str>| {
        let mut body = json!({"productName": "latte", "qty": 1});
        if let Some(p) = phone {
            body["phoneNumber"] = p.into();
        }
        body
    };
    // Orders of customer A, of customer B (placed by the manager), and one to cancel.
    let a = id(app.request_as(people.customer(), Method::POST, "/orders", Some(&order(None))).await.expect(201, "A"));
    let b = id(app
        .request_as(people.manager(), Method::POST, "/orders", Some(&order(Some(PHONE_B))))
        .await
        .expect(201, "B"));
    let c = id(app.request_as(Some(&other), Method::POST, "/orders", Some(&order(None))).await.expect(201, "C"));
    let drink_a = id(&wait_for(&app, people.manager(), "/drinks?size=1000", of_order(a)).await);
    let drink_b = id(&wait_for(&app, people.manager(), "/drinks?size=1000", of_order(b)).await);
    app.request_as(people.barista(), Method::PATCH, &format!("/drinks/{drink_b}"), Some(&json!({"status": "Made"})))
        .await
        .expect(200, "B's drink made");
    let delivery_b = id(&wait_for(&app, people.manager(), "/deliveries?size=1000", of_order(b)).await);
    let payment_b = id(&wait_for(&app, people.manager(), "/payments?size=1000", of_order(b)).await);
    wait_for(&app, people.manager(), "/mypages?size=1000", of_order(a)).await;

    let signed_in = [401, 200, 200, 200, 200];
    let baristas = [401, 403, 200, 403, 200];
    let riders = [401, 403, 403, 200, 200];
    let customers = [401, 200, 403, 403, 200];
    let rows = [
        row(Method::GET, "/menu", [200; 5]),
        row(Method::POST, "/orders", [401, 201, 403, 403, 201])
            .body(order(Some(PHONE_A)))
            .unchanged("/orders?size=1000"),
        row(Method::GET, "/orders", signed_in),
        row(Method::GET, format!("/orders/{a}"), signed_in),
        row(Method::GET, format!("/orders/{b}"), [401, 404, 200, 200, 200]),
        row(Method::DELETE, format!("/orders/{c}"), [401, 404, 403, 403, 204]).unchanged(format!("/orders/{c}")),
        row(Method::GET, "/drinks", baristas),
        row(Method::GET, format!("/drinks/{drink_a}"), baristas),
        row(Method::GET, "/orderinfos", baristas),
        status_change(format!("/drinks/{drink_a}"), "Receipted", baristas),
        row(Method::GET, "/deliveries", riders),
        row(Method::GET, format!("/deliveries/{delivery_b}"), riders),
        row(Method::GET, "/cancellations", riders),
        row(Method::GET, "/deliverypages", riders),
        row(Method::GET, format!("/deliverypages/search/findByOrderId?orderId={b}"), riders),
        status_change(format!("/deliveries/{delivery_b}"), "Delivered", riders),
        row(Method::GET, "/mypages", customers),
        row(Method::GET, format!("/mypages/search/findByPhoneNumber?phoneNumber={PHONE_A}"), customers),
        row(Method::GET, "/payments", customers),
        row(Method::GET, format!("/payments/{payment_b}"), [401, 404, 403, 403, 200]),
    ];
    for row in &rows {
        for (who, token) in people.tokens.iter().enumerate() {
            let what = format!("{} {} as {}", row.method, row.path, WHO[who]);
            let before = match &row.unchanged {
                Some(path) => Some(app.request_as(people.manager(), Method::GET, path, None).await),
                None => None,
            };
            let r = app.request_as(token.as_deref(), row.method.clone(), &row.path, row.body.as_ref()).await;
            let want = row.want[who];
            if want >= 400 {
                expect_refusal(&r, want, &what);
                if let (Some(path), Some(before)) = (&row.unchanged, before) {
                    let after = app.request_as(people.manager(), Method::GET, path, None).await;
                    assert_eq!((after.status, &after.json), (before.status, &before.json), "{what} changed {path}");
                }
            } else {
                r.expect(want, &what);
            }
        }
    }

    // A customer's lists hold their own data only; another's phone finds nothing.
    for collection in ["orders", "payments", "mypages"] {
        let page = app.request_as(people.customer(), Method::GET, &format!("/{collection}?size=1000"), None).await;
        let rows = items(page.expect(200, collection));
        assert!(!rows.is_empty(), "{collection}: A sees their own");
        assert!(rows.iter().all(|r| r["phoneNumber"] == PHONE_A), "{collection} shows another's: {}", page.text);
    }
    let theirs = format!("/mypages/search/findByPhoneNumber?phoneNumber={PHONE_B}");
    let r = app.request_as(people.customer(), Method::GET, &theirs, None).await;
    assert!(r.status == 403 || (r.status == 200 && items(&r.json).is_empty()), "{theirs}: {}", r.text);
    // The manager's cancellation went through delivery's internal endpoint, with order's
    // own credential.
    app.request_as(people.manager(), Method::GET, &format!("/orders/{c}"), None).await.expect_problem(404, "C");
}

async fn internal_calls_are_closed_at_the_gateway_and_refused_on_the_services_own_ports(app: TestApp) {
    let (people, _) = people(&app).await;
    let calls = [
        (ServiceName::Payment, "/payments", json!({"orderId": 999, "phoneNumber": PHONE_A, "amt": 0})),
        (ServiceName::Payment, "/payments/voids", json!({"orderId": 999})),
        (ServiceName::Delivery, "/cancellations", json!({"orderId": 999})),
    ];
    for (service, path, body) in &calls {
        for (who, token) in people.tokens.iter().enumerate() {
            let r = app.request_as(token.as_deref(), Method::POST, path, Some(body)).await;
            r.expect_problem(404, &format!("POST {path} at the gateway as {}", WHO[who]));
            let own = app.service_url(*service);
            let want = if token.is_none() { 401 } else { 403 };
            let r = app.request_to_as(&own, token.as_deref(), Method::POST, path, Some(body)).await;
            expect_refusal(&r, want, &format!("POST {path} at {service}'s own port as {}", WHO[who]));
        }
    }
    let manager = people.manager();
    for collection in ["/payments", "/cancellations"] {
        let page = app.request_as(manager, Method::GET, collection, None).await;
        assert_eq!(page.expect(200, collection)["page"]["totalElements"], 0, "{collection}: {}", page.text);
    }
}

async fn prices_come_from_the_menu_and_a_customer_orders_only_for_themselves(app: TestApp) {
    let (people, _) = people(&app).await;
    let menu = app.get("/menu").await;
    let latte = items(menu.expect(200, "GET /menu"))
        .into_iter()
        .find(|i| i["productName"] == "latte")
        .and_then(|i| i["price"].as_i64())
        .unwrap_or_else(|| panic!("no latte on the menu: {}", menu.text));
    let token = people.customer();
    let app = &app;
    let place = async |body: Value| app.request_as(token, Method::POST, "/orders", Some(&body)).await;
    let two = place(json!({"productName": "latte", "qty": 2})).await;
    assert_eq!(two.expect(201, "two lattes")["amt"], latte * 2);
    place(json!({"productName": "latte", "qty": 1, "amt": latte})).await.expect(201, "the right amt");
    let manager = people.manager();
    let count =
        async || app.request_as(manager, Method::GET, "/orders", None).await.json["page"]["totalElements"].clone();
    let before = count().await;
    for (body, field) in [
        (json!({"productName": "a drink not on the menu", "qty": 1}), "productName"),
        (json!({"productName": "latte", "qty": 1, "amt": latte + 1}), "amt"),
        (json!({"productName": "latte", "qty": 2, "amt": 0}), "amt"),
    ] {
        let r = place(body.clone()).await;
        let p = r.expect_problem(422, &format!("{body}"));
        assert!(
            p["errors"].as_array().into_iter().flatten().any(|e| e["field"] == field),
            "{body}: 422 does not name {field}: {}",
            r.text
        );
    }
    let r = place(json!({"productName": "latte", "qty": 1, "phoneNumber": PHONE_B})).await;
    r.expect_problem(403, "a customer ordering for another phone");
    assert_eq!(count().await, before, "a refused order was placed");
}

async fn forged_tokens_are_refused(app: TestApp) {
    let (people, _) = people(&app).await;
    let customer = people.customer().unwrap();
    let parts: Vec<&str> = customer.split('.').collect();
    let payload = String::from_utf8(base64_url_decode(parts[1])).unwrap().replace("\"customer\"", "\"manager\"");
    let role_edited = format!("{}.{}.{}", parts[0], base64_url_encode(payload.as_bytes()), parts[2]);
    let unsigned = format!("{}.{}.", base64_url_encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let foreign = Issuer::new(&KeyPair::generate(), "cafe", Duration::from_secs(60));
    let ours = KeyPair::from_pem(&std::fs::read_to_string(app.data_dir().join("keys/people.pem")).unwrap()).unwrap();
    let other_namespace = Issuer::new(&ours, "another-cafe", Duration::from_secs(60));
    let forged = [
        ("role edited", role_edited),
        ("alg none", unsigned),
        ("another cafe's key", foreign.issue("manager", Role::Manager, None).access_token),
        ("our key, another namespace", other_namespace.issue("manager", Role::Manager, None).access_token),
        ("garbage", "Zm9v.YmFy.YmF6".to_string()),
    ];
    for (what, token) in &forged {
        for path in ["/orders", "/drinks", "/payments", "/auth/users"] {
            let r = app.request_as(Some(token), Method::GET, path, None).await;
            expect_refusal(&r, 401, &format!("GET {path} with a forged token ({what})"));
        }
    }
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        bits = (bits << 6) | A.iter().position(|a| *a == c).expect("base64url") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

fn base64_url_encode(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn guessing_is_slowed_after_five_failures_and_the_right_password_works_after_retry_after() {
    let app = spawn_app_with(&["--auth", "on"]).await;
    app.post("/customers", &json!({"phoneNumber": PHONE_A, "password": "the-right-one"})).await.expect(201, "register");
    let attempt = |password: &'static str| {
        let app = &app;
        async move { app.post("/auth/token", &json!({"username": PHONE_A, "password": password})).await }
    };
    for n in 1..=5 {
        attempt("a-wrong-guess").await.expect_problem(401, &format!("wrong password {n}"));
    }
    let slowed = attempt("a-wrong-guess").await;
    slowed.expect_problem(429, "the sixth wrong password in a minute");
    let wait: u64 = slowed.header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    attempt("the-right-one").await.expect_problem(429, "even the right password, while slowed");
    let deadline = Duration::from_secs(wait + 15);
    let token = eventually(deadline, async || {
        let r = attempt("the-right-one").await;
        (r.status == 200).then(|| r.json["access_token"].clone())
    })
    .await;
    assert!(token.is_ok_and(|t| t.is_string()), "the right password works after Retry-After");
}

#[tokio::test]
async fn the_admin_switch_is_off_the_gateway_and_needs_a_manager() {
    let app = spawn_app_with(&["--auth", "on"]).await;
    let (people, _) = people(&app).await;
    let admin = app.admin_url().expect("an admin listener");
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    assert_ne!(admin, app.gateway());
    let path = "/admin/services/delivery/stop";
    for (who, token) in people.tokens.iter().enumerate() {
        let r = app.request_as(token.as_deref(), Method::POST, path, None).await;
        r.expect_problem(404, &format!("POST {path} on the gateway as {}", WHO[who]));
    }
    for (who, token) in people.tokens.iter().enumerate().take(4) {
        let want = if token.is_none() { 401 } else { 403 };
        let r = app.request_to_as(&admin, token.as_deref(), Method::POST, path, None).await;
        expect_refusal(&r, want, &format!("POST {path} on the admin port as {}", WHO[who]));
    }
    let delivery = app.service_url(ServiceName::Delivery);
    app.request_to_as(&delivery, None, Method::GET, "/actuator/health", None).await.expect(200, "delivery is up");
    app.request_to_as(&admin, people.manager(), Method::POST, path, None).await.expect(204, "a manager stops it");
    let back = "/admin/services/delivery/start";
    app.request_to_as(&admin, people.manager(), Method::POST, back, None).await.expect(204, "and starts it");
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = spawn_app_with(&["--auth", "on"]).await;
    let series = async || {
        let text = app.get("/actuator/prometheus").await.text;
        let names: std::collections::BTreeSet<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').map_or(l, |(series, _)| series).to_string())
            .collect();
        names
    };
    // One of each kind first, so the series those kinds make exist.
    for _ in 0..2 {
        app.get("/orders").await;
        app.get("/nothing-here").await;
        app.request(Method::from_bytes(b"BREW").unwrap(), "/coffee/1", None).await;
    }
    series().await; // the scrape's own series, from then on
    let before = series().await;
    for n in 0..80 {
        let method = Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
        app.request(method, &format!("/invented/{n}?q={n}"), None).await;
        app.get(&format!("/nothing-here-{n}")).await;
    }
    let after = series().await;
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(new.is_empty(), "the series grew with what clients invented: {new:#?}");
}

#[tokio::test]
async fn one_client_past_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let app = spawn_app_with(&["--auth", "on", "--rate-limit", "2"]).await;
    let manager = app.sign_in("manager", &app.manager_password()).await;
    let mut refused = None;
    for _ in 0..20 {
        let r = app.get("/menu").await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        r.expect(200, "GET /menu within the rate");
    }
    let refused = refused.expect("20 requests at once at 2 a second: some are refused");
    refused.expect_problem(429, "past the rate");
    assert!(refused.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    // A person signed in is a client of their own, whatever address they call from (the web
    // calls on many people's behalf from one), and has a limit of their own.
    app.request_as(Some(&manager), Method::GET, "/menu", None)
        .await
        .expect(200, "a signed-in person from the same address");
    let mut limited = false;
    for _ in 0..20 {
        if app.request_as(Some(&manager), Method::GET, "/menu", None).await.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "a signed-in person is limited too");
    // The limit is per client and lifts with time.
    let back = eventually(Duration::from_secs(10), async || (app.get("/menu").await.status == 200).then_some(())).await;
    assert!(back.is_ok(), "the client gets in again");
}

#[tokio::test]
async fn the_first_manager_is_made_once_with_a_password_only_its_owner_can_read() {
    let app = spawn_process_with(&["--auth", "on"], &[]).await;
    let path = app.data_dir().join("manager-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let keys = std::fs::metadata(app.data_dir().join("keys/people.pem")).unwrap();
        assert_eq!(keys.permissions().mode() & 0o777, 0o600);
    }
    let password = app.manager_password();
    app.sign_in("manager", &password).await;
    app.kill9().await;
    app.restart_with(&["--auth", "on"]).await;
    assert_eq!(app.manager_password(), password, "a restart keeps the password");
    app.sign_in("manager", &password).await;
}
