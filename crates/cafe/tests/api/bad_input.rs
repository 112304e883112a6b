//! Hostile and malformed input, through the gateway with auth on, on every write endpoint
//! (`POST /orders`, `DELETE /orders/{id}`, `PATCH /drinks/{id}`, `PATCH /deliveries/{id}`,
//! `POST /customers`, `POST /auth/token`, `POST /auth/users`) and on the reads: huge and
//! just-under-the-limit strings, control characters, invalid UTF-8, numbers beyond 64 bits
//! and floats for integers, zero, negative and huge ids in paths and queries, duplicate keys,
//! bodies that are not objects, bodies on GET, wrong content types and `Accept: application/xml`.
//!
//! Each answer is a 4xx problem+json (`type`/`title`/`status`/`detail`), or the normal answer
//! where one is documented (a GET's body is ignored; `Accept` is not negotiated, the answer is
//! JSON as always), within the client's timeout; and nothing any of them sent changes what
//! the manager reads back. Every case runs before the test fails, so one run lists them all.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, id, items, Reply, TestApp};

in_both_modes!(@flags ["--auth", "on", "--rate-limit", "0"]; hostile_input_is_refused_with_a_problem_and_changes_nothing);

/// Longer than any body a service reads (16 KiB): 413, or a 400 naming the field.
const HUGE: usize = 100_000;
/// A string that keeps its body just under 16 KiB: read, and refused naming the field.
const LONG: usize = 15_000;
/// No request may take longer than this, whatever it sends.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

const CUSTOMER_PHONE: &str = "01055550101";
const CUSTOMER_PASSWORD: &str = "customer-password";

/// The manager's and a customer's tokens, and what a failed case said.
struct Run<'a> {
    app: &'a TestApp,
    manager: String,
    customer: String,
    failures: Vec<String>,
    cases: usize,
}

/// What a case must answer.
#[derive(Clone, Copy)]
enum Want<'f> {
    /// A problem with one of these statuses; a 400 or 422 names `field` when there is one.
    Problem(&'static [u16], Option<&'f str>),
    /// The normal answer: this status, with a JSON body.
    Normal(u16),
}

const BAD_REQUEST: &[u16] = &[400];
/// Refused as bad input: 400, or a well-formed value the service cannot take (422).
const REFUSED: &[u16] = &[400, 422];
/// Too large for the body limit, or read and refused.
const TOO_LARGE_OR_REFUSED: &[u16] = &[400, 413, 422];
const UNSUPPORTED: &[u16] = &[415];
const NOT_FOUND: &[u16] = &[404];

impl Run<'_> {
    /// Sends one request as `token`, with `headers` and an optional raw body; checks the answer.
    async fn case(
        &mut self,
        token: Option<&str>,
        (method, path): (Method, &str),
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        want: Want<'_>,
        what: &str,
    ) {
        self.cases += 1;
        let what = format!("{method} {path}: {what}");
        let mut req = self.app.client.request(method, self.app.url(path)).timeout(ANSWER_WITHIN);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let started = Instant::now();
        let reply = match req.send().await {
            Ok(res) => {
                let status = res.status();
                let headers = res.headers().clone();
                match res.text().await {
                    Ok(text) => {
                        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
                        Reply { status, headers, text, json }
                    }
                    Err(e) => return self.fail(format!("{what}: the body could not be read: {e}")),
                }
            }
            Err(e) => {
                let mut cause = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    cause.push_str(&format!(": {s}"));
                    source = s.source();
                }
                return self.fail(format!("{what}: no answer after {:?}: {cause}", started.elapsed()));
            }
        };
        if let Err(why) = check(&reply, want) {
            let mut text = reply.text.clone();
            text.truncate(300);
            self.fail(format!("{what}: {why}; got {} {:?} {text}", reply.status, reply.content_type()));
        }
    }

    fn fail(&mut self, failure: String) {
        eprintln!("FAILED {failure}");
        self.failures.push(failure);
    }

    /// A JSON body as `token` to a write endpoint.
    async fn json(&mut self, token: &str, method: &Method, path: &str, body: Vec<u8>, want: Want<'_>, what: &str) {
        let headers = [("content-type", "application/json")];
        self.case(Some(token), (method.clone(), path), &headers, Some(body), want, what).await;
    }

    /// A GET as `token`.
    async fn get(&mut self, token: &str, path: &str, want: Want<'_>, what: &str) {
        self.case(Some(token), (Method::GET, path), &[], None, want, what).await;
    }
}

/// Whether `r` is what `want` asks for.
fn check(r: &Reply, want: Want<'_>) -> Result<(), String> {
    let status = r.status.as_u16();
    match want {
        Want::Normal(code) => {
            if status != code {
                return Err(format!("expected {code}"));
            }
            if r.json.is_null() {
                return Err("expected a JSON body".into());
            }
            if !r.content_type().contains("json") || r.content_type().starts_with("application/problem+json") {
                return Err("expected the normal JSON answer".into());
            }
            Ok(())
        }
        Want::Problem(statuses, field) => {
            if status >= 500 {
                return Err("a 5xx for bad input".into());
            }
            if !statuses.contains(&status) {
                return Err(format!("expected one of {statuses:?}"));
            }
            if !r.content_type().starts_with("application/problem+json") {
                return Err("not application/problem+json".into());
            }
            for key in ["type", "title", "detail"] {
                if !r.json.get(key).is_some_and(Value::is_string) {
                    return Err(format!("no '{key}' in the problem"));
                }
            }
            if r.json["status"].as_u64() != Some(status as u64) {
                return Err("the problem's status differs from the HTTP status".into());
            }
            if let (Some(field), 400 | 422) = (field, status) {
                let named =
                    r.json["errors"].as_array().is_some_and(|es| es.iter().any(|e| e["field"].as_str() == Some(field)));
                let in_detail = r.json["detail"].as_str().is_some_and(|d| d.contains(field));
                if !named && !in_detail {
                    return Err(format!("the field {field} is not named"));
                }
            }
            Ok(())
        }
    }
}

/// `body` with `field` set to `raw`, written as it is (a number JSON cannot hold, say).
fn with_raw(body: &Value, field: &str, raw: &str) -> Vec<u8> {
    let mut b = body.clone();
    b[field] = json!("\u{1}placeholder\u{1}");
    b.to_string().replace("\"\\u0001placeholder\\u0001\"", raw).into_bytes()
}

/// `body` with `field` set to `v`.
fn with(body: &Value, field: &str, v: Value) -> Vec<u8> {
    let mut b = body.clone();
    b[field] = v;
    b.to_string().into_bytes()
}

/// `body` with `first` as an earlier value of `field`: `{"field": first, ...body}`.
fn duplicated(body: &Value, field: &str, first: &Value) -> Vec<u8> {
    let rest = body.to_string();
    format!("{{{}:{first},{}", json!(field), &rest[1..]).into_bytes()
}

/// A write endpoint: who calls it, a valid body, its string and integer fields.
struct Endpoint {
    token: String,
    who: &'static str,
    method: Method,
    path: String,
    valid: Value,
    strings: &'static [&'static str],
    integers: &'static [&'static str],
    /// Control characters in these fields may be answered as wrong credentials (401, or
    /// 429 once a name has failed often): a password to sign in with is checked, not validated.
    credentials: &'static [&'static str],
}

/// Everything a refused request could have changed, as the manager reads it.
async fn snapshot(app: &TestApp, manager: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (collection, keys) in [
        ("orders", ["id", "phoneNumber", "status"]),
        ("payments", ["id", "orderId", "status"]),
        ("drinks", ["id", "orderId", "status"]),
        ("deliveries", ["id", "orderId", "status"]),
        ("cancellations", ["id", "orderId", "status"]),
        ("auth/users", ["id", "username", "role"]),
    ] {
        let r = app.request_as(Some(manager), Method::GET, &format!("/{collection}?size=1000"), None).await;
        let page = r.expect(200, &format!("GET /{collection} as the manager"));
        assert!(page["page"]["totalPages"].as_i64().unwrap_or(0) <= 1, "/{collection}: more than a page");
        let rows: Vec<Value> =
            items(page).iter().map(|row| Value::Array(keys.iter().map(|k| row[*k].clone()).collect())).collect();
        out.insert(collection.into(), Value::Array(rows));
    }
    Value::Object(out)
}

/// Polls `path` as `token` until one of its items belongs to `order_id`.
async fn item_of_order(app: &TestApp, token: &str, path: &str, order_id: i64) -> Value {
    eventually(app.deadline, async || {
        let r = app.request_as(Some(token), Method::GET, path, None).await;
        (r.status == 200).then(|| items(&r.json).into_iter().find(|i| i["orderId"] == order_id)).flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("GET {path}: no item of order {order_id}: {e:?}"))
}

async fn hostile_input_is_refused_with_a_problem_and_changes_nothing(app: TestApp) {
    let app = &app;
    // The manager, and a customer who registers and signs in.
    let manager = app.sign_in("manager", &app.manager_password()).await;
    let register = json!({"phoneNumber": "010-5555-0101", "password": CUSTOMER_PASSWORD});
    app.post("/customers", &register).await.expect(201, "a customer registers");
    let customer = app.sign_in(CUSTOMER_PHONE, CUSTOMER_PASSWORD).await;

    // The customer's order whose drink stays Received, and one made whose delivery started.
    let order = json!({"productName": "latte", "qty": 1});
    let place = async || {
        let r = app.request_as(Some(&customer), Method::POST, "/orders", Some(&order)).await;
        id(r.expect(201, "the customer orders"))
    };
    let received_order = place().await;
    let started_order = place().await;
    let received_drink = id(&item_of_order(app, &manager, "/drinks?size=1000", received_order).await);
    let made_drink = id(&item_of_order(app, &manager, "/drinks?size=1000", started_order).await);
    let made = json!({"status": "Made"});
    let r = app.request_as(Some(&manager), Method::PATCH, &format!("/drinks/{made_drink}"), Some(&made)).await;
    r.expect(200, "the manager makes the second drink");
    let delivery = id(&item_of_order(app, &manager, "/deliveries?size=1000", started_order).await);
    let payment = id(&item_of_order(app, &manager, "/payments?size=1000", started_order).await);
    // The views too, so that nothing moves while the cases run.
    item_of_order(app, &manager, "/deliverypages?size=1000", started_order).await;
    item_of_order(app, &manager, "/mypages?size=1000", received_order).await;

    let before = snapshot(app, &manager).await;
    let started = Instant::now();
    let mut run = Run { app, manager: manager.clone(), customer: customer.clone(), failures: Vec::new(), cases: 0 };

    let endpoints = [
        Endpoint {
            token: manager.clone(),
            who: "the manager",
            method: Method::POST,
            path: "/orders".into(),
            valid: json!({"phoneNumber": "010-5555-0102", "productName": "latte", "qty": 2, "amt": 9000}),
            strings: &["phoneNumber", "productName"],
            integers: &["qty", "amt"],
            credentials: &[],
        },
        Endpoint {
            token: customer.clone(),
            who: "a customer",
            method: Method::POST,
            path: "/orders".into(),
            valid: json!({"productName": "latte", "qty": 1}),
            strings: &["productName"],
            integers: &["qty"],
            credentials: &[],
        },
        Endpoint {
            token: manager.clone(),
            who: "the manager",
            method: Method::PATCH,
            path: format!("/drinks/{received_drink}"),
            valid: json!({"status": "Made"}),
            strings: &["status"],
            integers: &[],
            credentials: &[],
        },
        Endpoint {
            token: manager.clone(),
            who: "the manager",
            method: Method::PATCH,
            path: format!("/deliveries/{delivery}"),
            valid: json!({"status": "Delivered"}),
            strings: &["status"],
            integers: &[],
            credentials: &[],
        },
        Endpoint {
            token: customer.clone(),
            who: "a customer",
            method: Method::POST,
            path: "/customers".into(),
            valid: json!({"phoneNumber": "010-5555-0103", "password": "another long password"}),
            strings: &["phoneNumber", "password"],
            integers: &[],
            credentials: &[],
        },
        Endpoint {
            token: customer.clone(),
            who: "a customer",
            method: Method::POST,
            path: "/auth/token".into(),
            valid: json!({"username": "nobody-here", "password": "not the password"}),
            strings: &["username", "password"],
            integers: &[],
            credentials: &["password"],
        },
        Endpoint {
            token: manager.clone(),
            who: "the manager",
            method: Method::POST,
            path: "/auth/users".into(),
            valid: json!({"username": "new.barista", "password": "a long password", "role": "barista"}),
            strings: &["username", "password", "role"],
            integers: &[],
            credentials: &[],
        },
    ];

    for e in &endpoints {
        let (m, path, valid) = (&e.method, e.path.as_str(), &e.valid);
        let as_who = |what: &str| format!("{what}, as {}", e.who);

        for &field in e.strings {
            // Strings far past the body limit, and just under it.
            for (n, wants) in [(HUGE, TOO_LARGE_OR_REFUSED), (LONG, REFUSED)] {
                let body = with(valid, field, json!("x".repeat(n)));
                let want = Want::Problem(wants, Some(field));
                run.json(&e.token, m, path, body, want, &as_who(&format!("{field} of {n} characters"))).await;
            }
            // Control characters, escaped as JSON requires.
            let control: &'static [u16] = if e.credentials.contains(&field) { &[400, 401, 422, 429] } else { REFUSED };
            for bad in ["\u{0}", "\u{1b}", "x\u{0}y", "\u{1b}[31mlatte", "latte\u{7}", "\u{7f}", "\u{85}"] {
                let body = with(valid, field, json!(bad));
                let want = Want::Problem(control, Some(field));
                run.json(&e.token, m, path, body, want, &as_who(&format!("{field} {bad:?}"))).await;
            }
            // The same characters raw inside the string: not JSON at all.
            for raw in ["\"a\u{0}b\"", "\"\u{1b}\"", "\"\n\""] {
                let body = with_raw(valid, field, raw);
                let want = Want::Problem(BAD_REQUEST, None);
                run.json(&e.token, m, path, body, want, &as_who(&format!("{field} raw {raw:?}"))).await;
            }
            // Invalid UTF-8, and escapes that are no characters.
            let mut bodies: Vec<(Vec<u8>, &str)> = Vec::new();
            for (bytes, what) in [
                (&b"\xff\xfe"[..], "the bytes FF FE"),
                (&b"\xc0\xaf"[..], "an overlong encoding"),
                (&b"\xed\xa0\x80"[..], "an encoded surrogate"),
                (&b"lat\xe2\x82"[..], "a truncated sequence"),
            ] {
                let mut body = with_raw(valid, field, "\"\u{1}\"");
                let at = body.iter().position(|b| *b == 1).unwrap();
                body.splice(at..at + 1, bytes.iter().copied());
                bodies.push((body, what));
            }
            bodies.push((with_raw(valid, field, "\"\\ud800\""), "a lone surrogate escape"));
            bodies.push((with_raw(valid, field, "\"\\udc00x\""), "a lone trailing surrogate escape"));
            for (body, what) in bodies {
                let want = Want::Problem(BAD_REQUEST, None);
                run.json(&e.token, m, path, body, want, &as_who(&format!("{field} with {what}"))).await;
            }
            // A number where a string is expected, beyond 64 bits too.
            for raw in ["99999999999999999999999", "1.5", "1e400"] {
                let want = Want::Problem(BAD_REQUEST, (raw != "1e400").then_some(field));
                run.json(&e.token, m, path, with_raw(valid, field, raw), want, &as_who(&format!("{field} {raw}")))
                    .await;
            }
        }

        for &field in e.integers {
            for raw in [
                "99999999999999999999999",
                "-99999999999999999999999",
                "9223372036854775808",
                "-9223372036854775809",
                "18446744073709551616",
                "1.5",
                "2.0",
                "1e2",
                "-0.0",
                "1e400",
                "-1e400",
                "1e-400",
            ] {
                // A number JSON's parser cannot hold (1e400) is malformed JSON: a 400 that need
                // not name the field; the rest are read, and refused naming it.
                let unreadable = raw.ends_with("e400");
                let want = Want::Problem(BAD_REQUEST, (!unreadable).then_some(field));
                run.json(&e.token, m, path, with_raw(valid, field, raw), want, &as_who(&format!("{field} {raw}")))
                    .await;
            }
            for v in [json!("1"), json!("x".repeat(LONG)), json!([1]), json!({"n": 1}), json!(true)] {
                let what = as_who(&format!("{field} {:.20}", v.to_string()));
                run.json(&e.token, m, path, with(valid, field, v), Want::Problem(BAD_REQUEST, Some(field)), &what)
                    .await;
            }
        }

        // Duplicate keys: refused naming the key, whichever value comes last (here the valid one).
        for field in valid.as_object().unwrap().keys() {
            for first in [valid[field].clone(), json!("x"), json!(null), json!(5)] {
                let body = duplicated(valid, field, &first);
                let what = as_who(&format!("{field} twice, first {first}"));
                run.json(&e.token, m, path, body, Want::Problem(BAD_REQUEST, Some(field.as_str())), &what).await;
            }
        }
        let nested = format!("{{\"extra\":{{\"a\":1,\"a\":2}},{}", &valid.to_string()[1..]);
        run.json(
            &e.token,
            m,
            path,
            nested.into_bytes(),
            Want::Problem(BAD_REQUEST, Some("a")),
            &as_who("a nested key twice"),
        )
        .await;

        // Not an object.
        let in_array = format!("[{valid}]");
        for body in
            ["[]", "[{}]", in_array.as_str(), "\"latte\"", "42", "99999999999999999999999", "1e400", "null", "true"]
        {
            let what = as_who(&format!("the body {body:.30}"));
            run.json(&e.token, m, path, body.as_bytes().to_vec(), Want::Problem(BAD_REQUEST, None), &what).await;
        }
        // Deeply nested.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        run.json(&e.token, m, path, deep.into_bytes(), Want::Problem(BAD_REQUEST, None), &as_who("nested 5000 deep"))
            .await;
        let deep_object = format!("{{\"a\":{}1{}}}", "{\"a\":".repeat(2000), "}".repeat(2000));
        let what = as_who("an object nested 2000 deep");
        run.json(&e.token, m, path, deep_object.into_bytes(), Want::Problem(BAD_REQUEST, None), &what).await;

        // A valid JSON body under another content type, or none: 415.
        let valid_bytes = valid.to_string().into_bytes();
        for ct in [
            None,
            Some("text/plain"),
            Some("application/xml"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            Some("json"),
            Some(""),
        ] {
            let headers: Vec<(&str, &str)> = ct.map(|ct| ("content-type", ct)).into_iter().collect();
            let what = as_who(&format!("a JSON body as {ct:?}"));
            run.case(
                Some(&e.token),
                (m.clone(), path),
                &headers,
                Some(valid_bytes.clone()),
                Want::Problem(UNSUPPORTED, None),
                &what,
            )
            .await;
        }

        // Accept: application/xml is not negotiated: a refusal is problem+json as always.
        let headers = [("content-type", "application/json"), ("accept", "application/xml")];
        let what = as_who("Accept: application/xml and an array body");
        run.case(
            Some(&e.token),
            (m.clone(), path),
            &headers,
            Some(b"[]".to_vec()),
            Want::Problem(BAD_REQUEST, None),
            &what,
        )
        .await;
    }

    // DELETE /orders/{id}, and each item path, with ids that name nothing.
    let bad_ids = [
        "0",
        "-1",
        "-0",
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775808",
        "1.5",
        "1e3",
        "0x10",
        "%00",
        "%1b",
        "%FF%FE",
        "%20",
        "x",
    ];
    for bad in bad_ids {
        // Not UTF-8 once decoded: the path is refused (400) or names nothing (404).
        let not_found: &'static [u16] = if bad == "%FF%FE" { &[400, 404] } else { NOT_FOUND };
        for token in [&manager, &customer] {
            let path = format!("/orders/{bad}");
            run.case(
                Some(token),
                (Method::DELETE, &path),
                &[],
                None,
                Want::Problem(not_found, None),
                "an id that names nothing",
            )
            .await;
            run.get(token, &path, Want::Problem(not_found, None), "an id that names nothing").await;
        }
        for (path, body) in [
            (format!("/drinks/{bad}"), json!({"status": "Made"})),
            (format!("/deliveries/{bad}"), json!({"status": "Delivered"})),
        ] {
            let body = body.to_string().into_bytes();
            run.json(&manager, &Method::PATCH, &path, body, Want::Problem(not_found, None), "an id that names nothing")
                .await;
            run.get(&manager, &path, Want::Problem(not_found, None), "an id that names nothing").await;
        }
        for collection in ["payments", "cancellations", "orderinfos", "deliverypages", "mypages", "auth/users"] {
            let path = format!("/{collection}/{bad}");
            run.get(&manager, &path, Want::Problem(not_found, None), "an id that names nothing").await;
        }
    }
    // A DELETE's body is not read: a bad one changes nothing about the answer.
    for (ct, body) in
        [("application/json", &b"{\"qty\":1,\"qty\":2}"[..]), ("text/plain", b"\xff\xfe"), ("application/xml", b"<x/>")]
    {
        let what = format!("a {ct} body");
        run.case(
            Some(&manager),
            (Method::DELETE, "/orders/0"),
            &[("content-type", ct)],
            Some(body.to_vec()),
            Want::Problem(NOT_FOUND, None),
            &what,
        )
        .await;
    }

    // Query parameters: ids, phone numbers, statuses and paging that name nothing.
    let bad_order_ids = ["-1", "0", "-0", "99999999999999999999", "1.5", "1e3", "%00", "%1b", "x", ""];
    for search in [
        "/payments/search/findByOrderId",
        "/deliveries/search/findByOrderId",
        "/cancellations/search/findByOrderId",
        "/deliverypages/search/findByOrderId",
        "/mypages/search/findByOrderId",
    ] {
        for bad in bad_order_ids {
            let path = format!("{search}?orderId={bad}");
            run.get(&manager, &path, Want::Problem(BAD_REQUEST, Some("orderId")), "a bad order id").await;
        }
        let path = format!("{search}?orderId={}", "9".repeat(LONG));
        run.get(&manager, &path, Want::Problem(BAD_REQUEST, Some("orderId")), "an order id of 15,000 digits").await;
    }
    for token in [&manager, &customer] {
        for bad in ["%00", "010%001234%005678", "%1b", "0101234%0a5678", "%7f", "---"] {
            let path = format!("/mypages/search/findByPhoneNumber?phoneNumber={bad}");
            run.get(token, &path, Want::Problem(BAD_REQUEST, Some("phoneNumber")), "a bad phone number").await;
        }
        // A number nobody has is a search that finds nothing (spaces around it are trimmed).
        let digits = "1".repeat(LONG);
        for none in ["-1", "99999999999999999999", "01012345678%0a", digits.as_str()] {
            let path = format!("/mypages/search/findByPhoneNumber?phoneNumber={none}");
            run.get(token, &path, Want::Normal(200), "a phone number nobody has").await;
        }
    }
    let long_status = "x".repeat(LONG);
    for bad in ["%00", "Delivered%00", "%1b", "-1", long_status.as_str()] {
        let path = format!("/deliverypages/search/findByStatus?status={bad}");
        run.get(&manager, &path, Want::Problem(BAD_REQUEST, Some("status")), "a bad status").await;
    }
    for collection in [
        "orders",
        "payments",
        "drinks",
        "orderinfos",
        "deliveries",
        "cancellations",
        "deliverypages",
        "mypages",
        "auth/users",
    ] {
        for (q, field) in [
            ("page=-1", "page"),
            ("page=99999999999999999999", "page"),
            ("page=1.5", "page"),
            ("page=%00", "page"),
            ("size=0", "size"),
            ("size=-1", "size"),
            ("size=99999999999999999999", "size"),
            ("size=1e3", "size"),
            ("sort=%00", "sort"),
            ("sort=id,%1b", "sort"),
        ] {
            let path = format!("/{collection}?{q}");
            run.get(&manager, &path, Want::Problem(BAD_REQUEST, Some(field)), "bad paging").await;
        }
    }

    // A body on a GET is not read: the normal answer, whatever it holds; or 413 when larger
    // than a body may be.
    let order_path = format!("/orders/{received_order}");
    let drink_path = format!("/drinks/{received_drink}");
    let payment_path = format!("/payments/{payment}");
    let search = format!("/payments/search/findByOrderId?orderId={started_order}");
    for path in
        ["/orders", order_path.as_str(), drink_path.as_str(), payment_path.as_str(), search.as_str(), "/auth/users"]
    {
        for (ct, body) in [
            (Some("application/json"), json!({"qty": 1, "status": "Made"}).to_string().into_bytes()),
            (Some("application/json"), b"{\"qty\":1,\"qty\":2}".to_vec()),
            (Some("application/json"), b"{oops".to_vec()),
            (Some("text/plain"), b"\xff\xfe\x00".to_vec()),
            (Some("application/xml"), b"<order/>".to_vec()),
            (None, b"[1,2,3]".to_vec()),
        ] {
            let headers: Vec<(&str, &str)> = ct.map(|ct| ("content-type", ct)).into_iter().collect();
            let what = format!("a {ct:?} body on a GET");
            run.case(Some(&manager), (Method::GET, path), &headers, Some(body), Want::Normal(200), &what).await;
        }
        let huge = format!("{{\"padding\":\"{}\"}}", "x".repeat(HUGE)).into_bytes();
        let headers = [("content-type", "application/json")];
        let what = "a 100,000 byte body on a GET";
        run.case(Some(&manager), (Method::GET, path), &headers, Some(huge), Want::Problem(&[413], None), what).await;
    }

    // Accept: application/xml is not negotiated: the normal JSON answer (RFC 9110 §12.1
    // lets a server disregard Accept), for a customer and the manager alike.
    for (token, path) in [
        (&customer, "/orders"),
        (&customer, order_path.as_str()),
        (&customer, "/mypages"),
        (&manager, "/menu"),
        (&manager, "/drinks"),
        (&manager, drink_path.as_str()),
        (&manager, "/deliverypages"),
        (&manager, search.as_str()),
        (&manager, "/auth/users"),
    ] {
        for accept in ["application/xml", "text/html", "application/xml;q=1, */*;q=0"] {
            let what = format!("Accept: {accept}");
            run.case(Some(token), (Method::GET, path), &[("accept", accept)], None, Want::Normal(200), &what).await;
        }
    }
    run.case(
        Some(&customer),
        (Method::GET, "/orders/0"),
        &[("accept", "application/xml")],
        None,
        Want::Problem(NOT_FOUND, None),
        "Accept: application/xml for an id that names nothing",
    )
    .await;

    let (cases, failures, elapsed) = (run.cases, std::mem::take(&mut run.failures), started.elapsed());
    eprintln!("{cases} cases in {elapsed:?}");
    // Still signed in, and nothing changed.
    let r = app.request_as(Some(&run.customer), Method::GET, &order_path, None).await;
    r.expect(200, "the customer still reads their order");
    let after = snapshot(app, &run.manager).await;
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(after, before, "a refused request changed something");
}
