//! The pages (SPEC §10), rendered on the server with maud, and the forms they post.
//!
//! Every page is whole HTML that works without script; `/assets/cafe.js` adds the live
//! updates (from `GET /live`), the amount before ordering, and nothing else. Each form
//! carries the session's CSRF token; each page's live part has an id the patches name.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use platform::auth::Role;
use serde_json::{json, Value};

use crate::api::{embedded, Failure};
use crate::session::{self, check_csrf, Session, Visitor};
use crate::Web;

pub const BARISTA_PAGE: &[Role] = &[Role::Barista, Role::Manager];
pub const RIDER_PAGE: &[Role] = &[Role::Rider, Role::Manager];
pub const MANAGER_PAGE: &[Role] = &[Role::Manager];
pub const CUSTOMER_PAGE: &[Role] = &[Role::Customer];

type FormData = Form<HashMap<String, String>>;

// ---- the frame ----

/// A message shown at the top of a page.
#[derive(Debug, Clone)]
pub enum Note {
    Ok(String),
    Problem(String),
}

struct Frame<'a> {
    title: &'a str,
    session: Option<&'a Session>,
    /// The `GET /live` address of this page, if it is live.
    live: Option<String>,
    note: Option<Note>,
}

fn page(f: Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (f.title) " · Cafe" }
                link rel="stylesheet" href="/assets/cafe.css";
                script src="/assets/cafe.js" defer {}
            }
            body data-live=[f.live.as_deref()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Cafe" }
                    nav aria-label="Pages" {
                        ul {
                            @if let Some(s) = f.session {
                                @for (href, label, roles) in NAV {
                                    @if roles.contains(&s.role()) { li { a href=(href) { (label) } } }
                                }
                            }
                        }
                    }
                    @match f.session {
                        Some(s) => {
                            form.signout method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                span.who { (s.name()) " (" (s.role()) ")" }
                                " "
                                button type="submit" { "Sign out" }
                            }
                        }
                        None => { a.signin href="/signin" { "Sign in" } }
                    }
                }
                main id="main" {
                    h1 { (f.title) }
                    div id="notes" role="status" aria-live="polite" {
                        @match &f.note {
                            Some(Note::Ok(text)) => p.note.ok { (text) },
                            Some(Note::Problem(text)) => p.note.problem role="alert" { (text) },
                            None => {}
                        }
                    }
                    (body)
                }
                p.livestate hidden id="livestate" aria-live="polite" {}
            }
        }
    }
}

const NAV: &[(&str, &str, &[Role])] = &[
    ("/", "Order", &[Role::Customer, Role::Manager]),
    ("/barista", "Barista", BARISTA_PAGE),
    ("/rider", "Rider", RIDER_PAGE),
    ("/center", "Delivery center", RIDER_PAGE),
    ("/manager", "Manager", MANAGER_PAGE),
];

fn render(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, Html(markup.into_string())).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    res
}

fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The 403 page: this person's role may not open this page.
pub fn forbidden(s: &Session, roles: &[Role]) -> Response {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let body = html! {
        p { "This page is for " (names.join(" and ")) " accounts. You are signed in as a " (s.role()) "." }
        p { a href="/" { "Back to the cafe" } " or sign out and sign in with another account." }
    };
    render(
        StatusCode::FORBIDDEN,
        page(Frame { title: "Not for this account", session: Some(s), live: None, note: None }, body),
    )
}

/// A refusal with a message, without a session (the CSRF and origin checks).
pub fn refused(status: StatusCode, message: &str) -> Response {
    let body = html! { p.note.problem role="alert" { (message) } p { a href="/" { "Back to the cafe" } } };
    render(status, page(Frame { title: "Refused", session: None, live: None, note: None }, body))
}

/// Where a failure of an API call leaves the person: signed out → sign in again and back;
/// anything else → the page again, with the failure's message.
fn after_failure(f: &Failure, back: &str) -> Option<Response> {
    matches!(f, Failure::SignedOut).then(|| session::sign_in_redirect(back, true))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

// ---- stages of an order, as the customer sees them ----

/// An order's stage on the customer's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ordered,
    Receipted,
    Made,
    DeliveryStarted,
    Delivered,
    Cancelled,
    /// Cancelled, and the drink stopped (the first compensation).
    DrinkStopped,
    /// Cancelled, and the payment refunded (the last compensation).
    Refunded,
}

impl Stage {
    pub fn rank(self) -> u8 {
        match self {
            Stage::Ordered => 1,
            Stage::Receipted => 2,
            Stage::Made => 3,
            Stage::DeliveryStarted => 4,
            Stage::Delivered => 5,
            Stage::Cancelled => 10,
            Stage::DrinkStopped => 11,
            Stage::Refunded => 12,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Stage::Ordered => "Ordered",
            Stage::Receipted => "Receipted",
            Stage::Made => "Made",
            Stage::DeliveryStarted => "Delivery Started",
            Stage::Delivered => "Delivered",
            Stage::Cancelled => "Cancelled",
            Stage::DrinkStopped => "Cancelled · drink stopped",
            Stage::Refunded => "Cancelled · refunded",
        }
    }

    /// Whether the customer may still try to cancel (delivery has the last word).
    pub fn cancellable(self) -> bool {
        self.rank() < Stage::Delivered.rank()
    }

    pub fn of_event(p: &contracts::Payload) -> Option<Stage> {
        use contracts::Payload as P;
        Some(match p {
            P::Ordered(_) => Stage::Ordered,
            P::Receipted(_) => Stage::Receipted,
            P::Made(_) => Stage::Made,
            P::DeliveryStarted(_) => Stage::DeliveryStarted,
            P::Delivered(_) => Stage::Delivered,
            P::OrderCanceled(_) | P::DeliveryCanceled(_) => Stage::Cancelled,
            P::DrinkCanceled(_) => Stage::DrinkStopped,
            P::PaymentCanceled(_) => Stage::Refunded,
            P::PaymentApproved(_) | P::OrderInfoReceived(_) => return None,
        })
    }

    /// From "my page"'s status (SPEC §4 customercenter).
    pub fn of_my_page(status: &str) -> Stage {
        match status {
            "Receipted" => Stage::Receipted,
            "Made" => Stage::Made,
            "Delivery Started" => Stage::DeliveryStarted,
            "Delivered" => Stage::Delivered,
            "Order Canceled" | "Delivery Cancelled" => Stage::Cancelled,
            "Drink Canceled" => Stage::DrinkStopped,
            "Payment Canceled" => Stage::Refunded,
            _ => Stage::Ordered,
        }
    }
}

// ---- the customer's page ----

/// One of the customer's orders, from "my page".
pub struct MyOrder {
    pub order_id: i64,
    pub product: String,
    pub qty: i64,
    pub amt: i64,
    pub stage: Stage,
}

pub async fn my_orders(web: &Web, s: &Session, phone: &str) -> Result<Vec<MyOrder>, Failure> {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("phoneNumber", phone)
        .append_pair("size", "50")
        .append_pair("sort", "orderId,desc")
        .finish();
    let page = web.api.get(Some(&s.token), &format!("/mypages/search/findByPhoneNumber?{q}")).await?;
    Ok(embedded(&page, "mypages")
        .iter()
        .map(|m| MyOrder {
            order_id: m["orderId"].as_i64().unwrap_or_default(),
            product: m["productName"].as_str().unwrap_or("").to_string(),
            qty: m["qty"].as_i64().unwrap_or_default(),
            amt: m["amt"].as_i64().unwrap_or_default(),
            stage: Stage::of_my_page(m["status"].as_str().unwrap_or("")),
        })
        .collect())
}

pub fn order_status_cell(order_id: i64, stage: Stage) -> String {
    html! { td id={"order-" (order_id) "-status"} data-stage=(stage.rank()) { span class={"stage s" (stage.rank())} { (stage.label()) } } }.into_string()
}

pub fn order_action_cell(s: &Session, order_id: i64, stage: Stage) -> String {
    html! {
        td id={"order-" (order_id) "-action"} data-stage=(stage.rank()) {
            @if stage.cancellable() {
                form method="post" action={"/my/orders/" (order_id) "/cancel"} {
                    (csrf_field(s))
                    button type="submit" aria-label={"Cancel order " (order_id)} { "Cancel" }
                }
            }
        }
    }
    .into_string()
}

pub fn order_row(s: &Session, order_id: i64, product: &str, qty: i64, amt: i64, stage: Stage) -> String {
    html! {
        tr id={"order-" (order_id)} {
            td { (order_id) }
            td { (product) " × " (qty) }
            td.num { (won(amt)) }
            (PreEscaped(order_status_cell(order_id, stage)))
            (PreEscaped(order_action_cell(s, order_id, stage)))
        }
    }
    .into_string()
}

fn won(amt: i64) -> String {
    let digits = amt.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}₩{out}", if amt < 0 { "-" } else { "" })
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct HomeQuery {
    placed: Option<i64>,
    cancelled: Option<i64>,
}

pub async fn home(State(web): State<Arc<Web>>, visitor: Visitor, Query(q): Query<HomeQuery>) -> Response {
    let note = match (q.placed, q.cancelled) {
        (Some(id), _) => Some(Note::Ok(format!("Order {id} is placed and paid."))),
        (_, Some(id)) => Some(Note::Ok(format!("Order {id} is cancelled; the refund follows."))),
        _ => None,
    };
    home_page(&web, &visitor, note, StatusCode::OK, None).await
}

/// The customer's page, with `note` on top and the order form as it was sent (`form`).
async fn home_page(
    web: &Web,
    visitor: &Visitor,
    note: Option<Note>,
    status: StatusCode,
    form: Option<(&str, i64)>,
) -> Response {
    let session = visitor.session();
    let menu = web.api.get(None, "/menu").await;
    let customer = session.filter(|s| s.role() == Role::Customer);
    let orders = match customer.and_then(|s| s.phone().map(|p| (s, p))) {
        Some((s, phone)) => Some(my_orders(web, s, phone).await),
        None => None,
    };
    if let Some(Err(Failure::SignedOut)) = &orders {
        return session::sign_in_redirect("/", true);
    }
    let live = customer.map(|_| format!("/live?page=customer&since={}", web.hub.position()));
    let (chosen, qty) = form.unwrap_or(("", 1));
    let body = html! {
        section aria-labelledby="menu-title" {
            h2 id="menu-title" { "Menu" }
            @match &menu {
                Ok(m) => {
                    table.menu {
                        caption.sr { "Products and prices" }
                        thead { tr { th scope="col" { "Product" } th scope="col" class="num" { "Price" } } }
                        tbody {
                            @for item in embedded(m, "menu") {
                                tr { td { (item["productName"].as_str().unwrap_or("")) } td.num { (won(item["price"].as_i64().unwrap_or(0))) } }
                            }
                        }
                    }
                }
                Err(f) => p.note.problem role="alert" { "The menu cannot be shown right now: " (f.message()) }
            }
        }
        @match (session, &menu) {
            (None, _) => {
                section aria-labelledby="order-title" {
                    h2 id="order-title" { "Order" }
                    p { a href="/signin" { "Sign in or sign up" } " to order and follow your orders live." }
                }
            }
            (Some(s), Ok(m)) if s.role() == Role::Customer => {
                section aria-labelledby="order-title" {
                    h2 id="order-title" { "Order" }
                    form #order method="post" action="/order" {
                        (csrf_field(s))
                        div.field {
                            label for="product" { "Product" }
                            select #product name="product" required {
                                @for item in embedded(m, "menu") {
                                    @let name = item["productName"].as_str().unwrap_or("");
                                    option value=(name) data-price=(item["price"].as_i64().unwrap_or(0)) selected[name == chosen] { (name) }
                                }
                            }
                        }
                        div.field {
                            label for="qty" { "Quantity" }
                            input #qty type="number" name="qty" min="1" max="100" value=(qty) required inputmode="numeric";
                        }
                        p.amount { "Amount: " output #amount for="product qty" aria-live="polite" {
                            @let first = embedded(m, "menu").iter().find(|i| i["productName"] == chosen).or_else(|| embedded(m, "menu").first());
                            (won(first.and_then(|i| i["price"].as_i64()).unwrap_or(0) * qty))
                        } }
                        button type="submit" { "Order and pay" }
                    }
                }
                section aria-labelledby="orders-title" {
                    h2 id="orders-title" { "My orders" }
                    div id="live" {
                        @match &orders {
                            Some(Ok(rows)) => {
                                table.orders {
                                    caption.sr { "My orders, newest first, updated live" }
                                    thead { tr { th scope="col" { "Order" } th scope="col" { "What" } th scope="col" class="num" { "Amount" } th scope="col" { "Status" } th scope="col" { span.sr { "Actions" } } } }
                                    tbody id="orders" {
                                        @for o in rows {
                                            (PreEscaped(order_row(s, o.order_id, &o.product, o.qty, o.amt, o.stage)))
                                        }
                                    }
                                }
                                @if rows.is_empty() { p.empty { "No orders yet." } }
                            }
                            Some(Err(f)) => p.note.problem role="alert" { "Your orders cannot be shown right now: " (f.message()) }
                            None => {}
                        }
                    }
                }
            }
            (Some(_), _) => {}
        }
    };
    let title = "Order a drink";
    render(status, page(Frame { title, session, live, note }, body))
}

pub async fn place_order(State(web): State<Arc<Web>>, visitor: Visitor, s: Session, Form(f): FormData) -> Response {
    if let Some(r) = check_csrf(&s, f.get("csrf").map(String::as_str)) {
        return r;
    }
    let product = f.get("product").cloned().unwrap_or_default();
    let qty: i64 = f.get("qty").and_then(|q| q.trim().parse().ok()).unwrap_or(0);
    if !(1..=100).contains(&qty) {
        let note = Note::Problem("The quantity must be a whole number from 1 to 100.".into());
        return home_page(&web, &visitor, Some(note), StatusCode::UNPROCESSABLE_ENTITY, Some((&product, qty.max(1))))
            .await;
    }
    match web.api.send(Method::POST, Some(&s.token), "/orders", json!({"productName": product, "qty": qty})).await {
        Ok(order) => see_other(&format!("/?placed={}#orders", order["id"].as_i64().unwrap_or_default())),
        Err(f) => {
            if let Some(r) = after_failure(&f, "/") {
                return r;
            }
            let status = match f {
                Failure::Busy { .. } | Failure::Down(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let message = match &f {
                Failure::Busy { retry_after, .. } => {
                    format!("Payment is busy, so the order was not placed. Please try again in {retry_after} s.")
                }
                other => format!("The order was not placed. {}", other.message()),
            };
            home_page(&web, &visitor, Some(Note::Problem(message)), status, Some((&product, qty))).await
        }
    }
}

pub async fn cancel_order(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    s: Session,
    Path(id): Path<i64>,
    Form(f): FormData,
) -> Response {
    if let Some(r) = check_csrf(&s, f.get("csrf").map(String::as_str)) {
        return r;
    }
    match web.api.delete(Some(&s.token), &format!("/orders/{id}")).await {
        Ok(_) => see_other(&format!("/?cancelled={id}#orders")),
        Err(f) => {
            if let Some(r) = after_failure(&f, "/") {
                return r;
            }
            let (status, message) = match &f {
                Failure::Conflict(_) => (
                    StatusCode::CONFLICT,
                    format!("Order {id} cannot be cancelled: it has already been delivered."),
                ),
                Failure::Busy { retry_after, .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Order {id} is not cancelled: the cancellation cannot be recorded right now. Please try again in {retry_after} s."),
                ),
                Failure::NotFound(_) => (StatusCode::NOT_FOUND, format!("Order {id} was not found; it may already be cancelled.")),
                other => (StatusCode::SERVICE_UNAVAILABLE, format!("Order {id} is not cancelled. {}", other.message())),
            };
            home_page(&web, &visitor, Some(Note::Problem(message)), status, None).await
        }
    }
}

// ---- signing in and out ----

#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    expired: Option<String>,
}

pub async fn sign_in_page(visitor: Visitor, Query(q): Query<SignInQuery>) -> Response {
    let note = q.expired.as_ref().map(|_| Note::Problem("Your session has ended. Please sign in again.".into()));
    sign_in_render(&visitor, q.next.as_deref(), note, StatusCode::OK)
}

fn sign_in_render(visitor: &Visitor, next: Option<&str>, note: Option<Note>, status: StatusCode) -> Response {
    let next = session::safe_next(next);
    let body = html! {
        div.columns {
            section aria-labelledby="signin-title" {
                h2 id="signin-title" { "Sign in" }
                form method="post" action="/signin" {
                    input type="hidden" name="next" value=(next);
                    div.field { label for="username" { "Phone number or user name" } input #username name="username" autocomplete="username" required; }
                    div.field { label for="password" { "Password" } input #password type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
            section aria-labelledby="signup-title" {
                h2 id="signup-title" { "New here? Sign up" }
                form method="post" action="/signup" {
                    input type="hidden" name="next" value=(next);
                    div.field { label for="phone" { "Phone number" } input #phone type="tel" name="phoneNumber" autocomplete="tel" required inputmode="tel"; }
                    div.field { label for="new-password" { "Password (at least 8 characters)" } input #new-password type="password" name="password" autocomplete="new-password" minlength="8" required; }
                    button type="submit" { "Sign up" }
                }
            }
        }
    };
    render(status, page(Frame { title: "Sign in", session: visitor.session(), live: None, note }, body))
}

/// Signs in with `username` and `password`: the session cookie, then on to `next` (or the
/// page of the person's role).
async fn start_session(web: &Web, visitor: &Visitor, username: &str, password: &str, next: Option<&str>) -> Response {
    let answer =
        web.api.send(Method::POST, None, "/auth/token", json!({"username": username, "password": password})).await;
    match answer {
        Ok(t) => {
            let token = t["access_token"].as_str().unwrap_or_default();
            let ttl = t["expires_in"].as_u64().unwrap_or(3600);
            let role = t["role"].as_str().unwrap_or("customer");
            let next = session::safe_next(next);
            let to = match (next.as_str(), role) {
                ("/", "barista") => "/barista".to_string(),
                ("/", "rider") => "/rider".to_string(),
                ("/", "manager") => "/manager".to_string(),
                _ => next,
            };
            let mut res = see_other(&to);
            res.headers_mut().insert(header::SET_COOKIE, session::set_session(token, ttl));
            res
        }
        Err(f) => {
            let (status, message) = match &f {
                Failure::SignedOut => {
                    (StatusCode::UNAUTHORIZED, "That phone number or user name and password do not match.".to_string())
                }
                Failure::Busy { retry_after, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, format!("Too many tries. Please try again in {retry_after} s."))
                }
                other => (StatusCode::SERVICE_UNAVAILABLE, other.message()),
            };
            sign_in_render(visitor, next, Some(Note::Problem(message)), status)
        }
    }
}

pub async fn sign_in(State(web): State<Arc<Web>>, visitor: Visitor, Form(f): FormData) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    start_session(&web, &visitor, get("username").trim(), get("password"), f.get("next").map(String::as_str)).await
}

pub async fn sign_up(State(web): State<Arc<Web>>, visitor: Visitor, Form(f): FormData) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let (phone, password, next) = (get("phoneNumber").trim(), get("password"), f.get("next").map(String::as_str));
    match web.api.send(Method::POST, None, "/customers", json!({"phoneNumber": phone, "password": password})).await {
        Ok(_) => start_session(&web, &visitor, &phone.replace('-', ""), password, next).await,
        Err(f) => {
            let (status, message) = match &f {
                Failure::Conflict(_) => {
                    (StatusCode::CONFLICT, "That phone number already has an account: sign in instead.".into())
                }
                Failure::Invalid(d) => (StatusCode::UNPROCESSABLE_ENTITY, d.clone()),
                other => (StatusCode::SERVICE_UNAVAILABLE, other.message()),
            };
            sign_in_render(&visitor, next, Some(Note::Problem(message)), status)
        }
    }
}

pub async fn sign_out(visitor: Visitor, Form(f): FormData) -> Response {
    // An ended session may always be left; a live one only from its own page.
    if let Some(s) = visitor.session() {
        if let Some(r) = check_csrf(s, f.get("csrf").map(String::as_str)) {
            return r;
        }
    }
    let mut res = see_other("/");
    res.headers_mut().insert(header::SET_COOKIE, session::clear_session());
    res
}

// ---- the barista's page ----

pub fn drink_row(s: &Session, id: i64, order_id: i64, product: &str, qty: i64, status: &str) -> String {
    html! {
        tr id={"drink-" (id)} {
            td { (order_id) }
            td { (product) " × " (qty) }
            td { (status) }
            td.actions {
                @if status == "Received" {
                    form method="post" action={"/barista/drinks/" (id)} {
                        (csrf_field(s))
                        input type="hidden" name="status" value="Receipted";
                        button type="submit" aria-label={"Accept order " (order_id)} { "Accept" }
                    }
                }
                form method="post" action={"/barista/drinks/" (id)} {
                    (csrf_field(s))
                    input type="hidden" name="status" value="Made";
                    button type="submit" aria-label={"Order " (order_id) " is made"} { "Made" }
                }
            }
        }
    }
    .into_string()
}

pub async fn barista(State(web): State<Arc<Web>>, s: Session) -> Response {
    barista_page(&web, &s, None, StatusCode::OK).await
}

async fn barista_page(web: &Web, s: &Session, note: Option<Note>, status: StatusCode) -> Response {
    let live = Some(format!("/live?page=barista&since={}", web.hub.position()));
    let queue = web.api.get(Some(&s.token), "/orderinfos?size=200&sort=id,asc").await;
    if let Err(f) = &queue {
        if let Some(r) = after_failure(f, "/barista") {
            return r;
        }
    }
    let body = html! {
        p { "Paid orders, oldest first. New ones appear here as they are paid." }
        div id="live" {
            @match &queue {
                Ok(q) => {
                    table.queue {
                        caption.sr { "The barista queue, oldest first, updated live" }
                        thead { tr { th scope="col" { "Order" } th scope="col" { "What" } th scope="col" { "Status" } th scope="col" { span.sr { "Actions" } } } }
                        tbody id="queue" {
                            @for d in embedded(q, "orderinfos") {
                                (PreEscaped(drink_row(s, d["id"].as_i64().unwrap_or(0), d["orderId"].as_i64().unwrap_or(0),
                                    d["productName"].as_str().unwrap_or(""), d["qty"].as_i64().unwrap_or(0), d["status"].as_str().unwrap_or(""))))
                            }
                        }
                    }
                }
                Err(f) => p.note.problem role="alert" { "The queue cannot be shown right now: " (f.message()) }
            }
        }
    };
    render(status, page(Frame { title: "Barista", session: Some(s), live, note }, body))
}

pub async fn change_drink(State(web): State<Arc<Web>>, s: Session, Path(id): Path<i64>, Form(f): FormData) -> Response {
    if let Some(r) = check_csrf(&s, f.get("csrf").map(String::as_str)) {
        return r;
    }
    let status = f.get("status").map(String::as_str).unwrap_or("");
    if !matches!(status, "Receipted" | "Made") {
        return barista_page(
            &web,
            &s,
            Some(Note::Problem("Unknown drink status.".into())),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match web.api.send(Method::PATCH, Some(&s.token), &format!("/drinks/{id}"), json!({"status": status})).await {
        Ok(_) => see_other("/barista"),
        Err(f) => match after_failure(&f, "/barista") {
            Some(r) => r,
            None => barista_page(&web, &s, Some(Note::Problem(f.message())), StatusCode::CONFLICT).await,
        },
    }
}

// ---- the rider's page ----

pub fn delivery_row(s: &Session, id: i64, order_id: i64, product: &str, qty: i64, phone: &str) -> String {
    html! {
        tr id={"delivery-order-" (order_id)} {
            td { (id) }
            td { (order_id) }
            td { @if !product.is_empty() { (product) " × " (qty) } }
            td { (phone) }
            td.actions {
                form method="post" action={"/rider/deliveries/" (id) "/delivered"} {
                    (csrf_field(s))
                    button type="submit" aria-label={"Order " (order_id) " is delivered"} { "Delivered" }
                }
            }
        }
    }
    .into_string()
}

pub async fn rider(State(web): State<Arc<Web>>, s: Session) -> Response {
    rider_page(&web, &s, None, StatusCode::OK).await
}

async fn rider_page(web: &Web, s: &Session, note: Option<Note>, status: StatusCode) -> Response {
    let live = Some(format!("/live?page=rider&since={}", web.hub.position()));
    // The deliveries under way, from the delivery center's pages (one call: each carries
    // what was ordered and the phone), oldest first. A thousand at once at most: more riders
    // than that on the road is another cafe.
    let deliveries = web
        .api
        .get(Some(&s.token), "/deliverypages/search/findByStatus?status=Delivery%20Started&size=1000&sort=orderId,asc")
        .await;
    if let Err(f) = &deliveries {
        if let Some(r) = after_failure(f, "/rider") {
            return r;
        }
    }
    let body = html! {
        p { "Deliveries started and not yet delivered, oldest first." }
        div id="live" {
            @match &deliveries {
                Ok(list) => {
                    table.deliveries {
                        caption.sr { "Deliveries to make, updated live" }
                        thead { tr { th scope="col" { "Delivery" } th scope="col" { "Order" } th scope="col" { "What" } th scope="col" { "Phone" } th scope="col" { span.sr { "Actions" } } } }
                        tbody id="deliveries" {
                            @for d in embedded(list, "deliverypages") {
                                (PreEscaped(delivery_row(s, d["deliveryId"].as_i64().unwrap_or(0), d["orderId"].as_i64().unwrap_or(0),
                                    d["productName"].as_str().unwrap_or(""), d["qty"].as_i64().unwrap_or(0), d["phoneNumber"].as_str().unwrap_or(""))))
                            }
                        }
                    }
                }
                Err(f) => p.note.problem role="alert" { "Deliveries cannot be shown right now: " (f.message()) }
            }
        }
    };
    render(status, page(Frame { title: "Rider", session: Some(s), live, note }, body))
}

pub async fn delivered(State(web): State<Arc<Web>>, s: Session, Path(id): Path<i64>, Form(f): FormData) -> Response {
    if let Some(r) = check_csrf(&s, f.get("csrf").map(String::as_str)) {
        return r;
    }
    match web
        .api
        .send(Method::PATCH, Some(&s.token), &format!("/deliveries/{id}"), json!({"status": "Delivered"}))
        .await
    {
        Ok(_) => see_other("/rider"),
        Err(f) => match after_failure(&f, "/rider") {
            Some(r) => r,
            None => rider_page(&web, &s, Some(Note::Problem(f.message())), StatusCode::CONFLICT).await,
        },
    }
}

// ---- the delivery center ----

pub fn center_status_cell(order_id: i64, status: &str) -> String {
    html! { td id={"center-" (order_id) "-status"} { (status) } }.into_string()
}

pub fn center_row(
    order_id: i64,
    delivery_id: Option<i64>,
    product: &str,
    qty: i64,
    amt: i64,
    phone: &str,
    status: &str,
) -> String {
    html! {
        tr id={"center-" (order_id)} {
            td { (order_id) }
            td { @if let Some(d) = delivery_id { (d) } }
            td { (product) " × " (qty) }
            td.num { (won(amt)) }
            td { (phone) }
            (PreEscaped(center_status_cell(order_id, status)))
        }
    }
    .into_string()
}

const CENTER_STATUSES: [&str; 4] = ["Ordered", "Delivery Started", "Delivered", "Delivery Cancelled"];
const CENTER_PAGE_SIZE: usize = 20;

#[derive(Debug, Default, serde::Deserialize)]
pub struct CenterQuery {
    status: Option<String>,
    #[serde(default)]
    n: usize,
}

pub async fn center(State(web): State<Arc<Web>>, s: Session, Query(q): Query<CenterQuery>) -> Response {
    let filter = q.status.clone().filter(|f| CENTER_STATUSES.contains(&f.as_str()));
    let live = {
        let mut live = form_urlencoded::Serializer::new(String::from("/live?"));
        live.append_pair("page", "center").append_pair("since", &web.hub.position()).append_pair("n", &q.n.to_string());
        if let Some(f) = &filter {
            live.append_pair("status", f);
        }
        live.finish()
    };
    // The page asked for, filtered and paged by deliverycenter itself.
    let mut path = match &filter {
        Some(f) => form_urlencoded::Serializer::new(String::from("/deliverypages/search/findByStatus?"))
            .append_pair("status", f)
            .finish(),
        None => String::from("/deliverypages?"),
    };
    path.push_str(&format!("&size={CENTER_PAGE_SIZE}&page={}&sort=orderId,desc", q.n));
    let list = web.api.get(Some(&s.token), &path).await;
    if let Err(f) = &list {
        if let Some(r) = after_failure(f, "/center") {
            return r;
        }
    }
    let rows: Vec<&Value> = match &list {
        Ok(l) => embedded(l, "deliverypages").iter().collect(),
        Err(_) => vec![],
    };
    let total = list.as_ref().ok().and_then(|l| l["page"]["totalElements"].as_u64()).unwrap_or(0) as usize;
    let pages = total.div_ceil(CENTER_PAGE_SIZE).max(1);
    let n = q.n;
    let link = |n: usize| {
        let mut q = form_urlencoded::Serializer::new(String::from("/center?"));
        if let Some(f) = &filter {
            q.append_pair("status", f);
        }
        q.append_pair("n", &n.to_string());
        q.finish()
    };
    let body = html! {
        form.filter method="get" action="/center" {
            label for="status" { "Status" }
            select #status name="status" {
                option value="" { "All" }
                @for st in CENTER_STATUSES { option value=(st) selected[filter.as_deref() == Some(st)] { (st) } }
            }
            button type="submit" { "Filter" }
        }
        div id="live" {
            @match &list {
                Ok(_) => {
                    table.center {
                        caption.sr { "Every order with its delivery, newest first, updated live" }
                        thead { tr { th scope="col" { "Order" } th scope="col" { "Delivery" } th scope="col" { "What" } th scope="col" class="num" { "Amount" } th scope="col" { "Phone" } th scope="col" { "Status" } } }
                        tbody id="center" {
                            @for d in &rows {
                                (PreEscaped(center_row(d["orderId"].as_i64().unwrap_or(0), d["deliveryId"].as_i64(), d["productName"].as_str().unwrap_or(""),
                                    d["qty"].as_i64().unwrap_or(0), d["amt"].as_i64().unwrap_or(0), d["phoneNumber"].as_str().unwrap_or(""), d["status"].as_str().unwrap_or(""))))
                            }
                        }
                    }
                    nav.paging aria-label="Pages of the delivery center" {
                        @if n > 0 { a href=(link(n - 1)) rel="prev" { "← Newer" } }
                        span { "Page " (n + 1) " of " (pages) " (" (total) " orders)" }
                        @if n + 1 < pages { a href=(link(n + 1)) rel="next" { "Older →" } }
                    }
                }
                Err(f) => p.note.problem role="alert" { "The delivery page cannot be shown right now: " (f.message()) }
            }
        }
    };
    render(
        StatusCode::OK,
        page(Frame { title: "Delivery center", session: Some(&s), live: Some(live), note: None }, body),
    )
}

// ---- the manager's dashboard ----

pub async fn manager(State(web): State<Arc<Web>>, s: Session) -> Response {
    manager_page(&web, &s, None, StatusCode::OK).await
}

async fn manager_page(web: &Web, s: &Session, note: Option<Note>, status: StatusCode) -> Response {
    // What this replica has not seen on the bus (it may have started just now) comes from
    // the order API: the last thousand orders.
    match web.api.get(Some(&s.token), "/orders?size=1000&sort=id,desc").await {
        Ok(orders) => {
            let mut chart = web.hub.chart.lock().unwrap_or_else(|p| p.into_inner());
            for o in embedded(&orders, "orders") {
                if let (Some(id), Some(at)) = (o["id"].as_i64(), o["createTime"].as_str()) {
                    chart.count(id, at, o["amt"].as_i64().unwrap_or(0));
                }
            }
        }
        Err(Failure::SignedOut) => return session::sign_in_redirect("/manager", true),
        Err(_) => {}
    }
    let svg = web.hub.chart.lock().unwrap_or_else(|p| p.into_inner()).svg(time::OffsetDateTime::now_utc());
    let staff = web.api.get(Some(&s.token), "/auth/users?size=200&sort=id,asc").await;
    let status_html = manager_status(web).await;
    let live = Some(format!("/live?page=manager&since={}", web.hub.position()));
    let body = html! {
        section aria-labelledby="chart-heading" {
            h2 id="chart-heading" { "Orders and revenue per minute" }
            p.legend { span.key.bars {} " orders (bars) " span.key.line {} " revenue (line), last 30 minutes" }
            div.chart { (PreEscaped(svg)) }
        }
        section aria-labelledby="status-heading" {
            h2 id="status-heading" { "Services" }
            (PreEscaped(status_html))
        }
        section aria-labelledby="staff-heading" {
            h2 id="staff-heading" { "Staff accounts" }
            @match &staff {
                Ok(list) => {
                    table.staff {
                        caption.sr { "Accounts" }
                        thead { tr { th scope="col" { "User name" } th scope="col" { "Role" } } }
                        tbody {
                            @for u in embedded(list, "users").iter().filter(|u| u["role"] != "customer") {
                                tr { td { (u["username"].as_str().unwrap_or("")) } td { (u["role"].as_str().unwrap_or("")) } }
                            }
                        }
                    }
                }
                Err(f) => p.note.problem role="alert" { "Accounts cannot be shown right now: " (f.message()) }
            }
            h3 { "Add a staff account" }
            form method="post" action="/manager/staff" {
                (csrf_field(s))
                div.field { label for="staff-name" { "User name" } input #staff-name name="username" required autocomplete="off"; }
                div.field { label for="staff-password" { "Password (at least 8 characters)" } input #staff-password type="password" name="password" minlength="8" required autocomplete="new-password"; }
                div.field {
                    label for="staff-role" { "Role" }
                    select #staff-role name="role" { option { "barista" } option { "rider" } option { "manager" } }
                }
                button type="submit" { "Add account" }
            }
        }
    };
    render(status, page(Frame { title: "Manager", session: Some(s), live, note }, body))
}

pub async fn add_staff(State(web): State<Arc<Web>>, s: Session, Form(f): FormData) -> Response {
    if let Some(r) = check_csrf(&s, f.get("csrf").map(String::as_str)) {
        return r;
    }
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let body = json!({"username": get("username").trim(), "password": get("password"), "role": get("role")});
    match web.api.send(Method::POST, Some(&s.token), "/auth/users", body).await {
        Ok(_) => {
            let note = Note::Ok(format!("The account {} was added.", get("username").trim()));
            manager_page(&web, &s, Some(note), StatusCode::OK).await
        }
        Err(f) => match after_failure(&f, "/manager") {
            Some(r) => r,
            None => manager_page(&web, &s, Some(Note::Problem(f.message())), StatusCode::UNPROCESSABLE_ENTITY).await,
        },
    }
}

/// Each service's health, the payment circuit and the event lag, as a table with id `status`.
pub async fn manager_status(web: &Web) -> String {
    let checks = web.services.iter().map(|(name, urls)| async move {
        let mut up = 0;
        let mut circuit = None;
        let mut lag: Option<i64> = None;
        for url in urls {
            // Identity takes calls only through the gateway (in Kubernetes, by policy): its
            // health is asked there.
            let health = match *name {
                "identity" => web.probe.get(format!("{}/auth/health", web.api.base())).send().await,
                _ => web.probe.get(format!("{url}/actuator/health")).send().await,
            };
            let Ok(res) = health else { continue };
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if body["status"] == "UP" {
                up += 1;
            }
            if let Some(state) = body["components"]["paymentCircuit"]["details"]["state"].as_str() {
                circuit = Some(state.to_string());
            }
            if !web.readers.contains(name) {
                continue;
            }
            if let Ok(res) = web.probe.get(format!("{url}/actuator/prometheus")).send().await {
                let text = res.text().await.unwrap_or_default();
                for line in text.lines().filter(|l| l.starts_with("cafe_consumer_lag")) {
                    if let Some(n) = line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) {
                        lag = Some(lag.unwrap_or(0).max(n as i64));
                    }
                }
            }
        }
        (*name, urls.len(), up, circuit, lag)
    });
    let rows = futures::future::join_all(checks).await;
    html! {
        table id="status" {
            caption.sr { "Health of each service, updated every two seconds" }
            thead { tr { th scope="col" { "Service" } th scope="col" { "Health" } th scope="col" { "Circuit" } th scope="col" class="num" { "Event lag" } } }
            tbody {
                @for (name, instances, up, circuit, lag) in &rows {
                    tr id={"svc-" (name)} {
                        td { (name) }
                        td {
                            @if *up == 0 { span.down { "DOWN" } }
                            @else if up < instances { span.partial { "UP (" (up) " of " (instances) ")" } }
                            @else { span.up { "UP" } }
                        }
                        td { @if let Some(c) = circuit { span class={"circuit " (c.to_lowercase())} { "payment: " (c) } } }
                        td.num { @if let Some(l) = lag { (l) } }
                    }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_shown_in_won_with_thousands() {
        assert_eq!(won(4500), "₩4,500");
        assert_eq!(won(1_000_000), "₩1,000,000");
        assert_eq!(won(0), "₩0");
    }

    #[test]
    fn stages_move_forward_and_cancelling_stops_at_delivery() {
        assert!(Stage::Ordered.cancellable() && Stage::DeliveryStarted.cancellable());
        assert!(!Stage::Delivered.cancellable() && !Stage::Refunded.cancellable());
        assert!(Stage::Refunded.rank() > Stage::Cancelled.rank());
        assert_eq!(Stage::of_my_page("Payment Approved"), Stage::Ordered);
        assert_eq!(Stage::of_my_page("Payment Canceled"), Stage::Refunded);
    }
}
