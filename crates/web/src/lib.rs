//! The web pages for people (SPEC §10): the customer's ordering page, the barista's queue,
//! the rider's deliveries, the delivery center and the manager's dashboard, served as HTML
//! from the server, live through server-sent events.
//!
//! The web service is a client of the cafe like any other: it calls the public API through
//! the gateway with the signed-in person's token ([`api`]), so every rule of SPEC §9 holds
//! for the pages too; it owns no data. Who is signed in is the session cookie
//! ([`session`]); what changes live comes from the event bus ([`live`]), each replica
//! tailing it on its own. The pages themselves are in [`pages`], the manager's chart in
//! [`chart`], and the one stylesheet and one script are compiled in ([`assets`]).

pub mod api;
mod assets;
pub mod chart;
pub mod live;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use platform::auth::Auth;
use platform::EventBus;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pages::{BARISTA_PAGE, CUSTOMER_PAGE, MANAGER_PAGE, RIDER_PAGE};
use crate::session::page_for;

/// What the web service needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the public API is: the gateway.
    pub gateway_url: String,
    /// Each service's own instances, for the manager's health table.
    pub services: Vec<(&'static str, Vec<String>)>,
    /// The services that consume events: the ones with an event lag to show.
    pub readers: Vec<&'static str>,
    /// How tokens are verified (as every service verifies them).
    pub auth: Auth,
}

/// One web instance.
pub struct Web {
    pub api: api::Api,
    pub hub: Arc<live::Hub>,
    pub services: Vec<(&'static str, Vec<String>)>,
    pub readers: Vec<&'static str>,
    /// For the health probes: short timeouts.
    probe: reqwest::Client,
}

/// Starts tailing `bus` (on `tracker`, until `cancel`) and gives the web's routes.
pub fn start(bus: Arc<dyn EventBus>, config: Config, cancel: CancellationToken, tracker: &TaskTracker) -> Router {
    let hub = live::Hub::new();
    tracker.spawn(hub.clone().run(bus, cancel));
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("an HTTP client with default settings");
    let web = Arc::new(Web {
        api: api::Api::new(&config.gateway_url),
        hub,
        services: config.services,
        readers: config.readers,
        probe,
    });
    router(web, config.auth)
}

/// Every page and form, each with who may use it beside it: [`page_for`] for a role's
/// pages (sign in first, or a 403 page), nothing for what anyone may see.
pub fn router(web: Arc<Web>, auth: Auth) -> Router {
    Router::new()
        // Anyone: the menu, signing in and up, and the assets.
        .route("/", get(pages::home))
        .route("/signin", get(pages::sign_in_page).post(pages::sign_in))
        .route("/signup", post(pages::sign_up))
        .route("/signout", post(pages::sign_out))
        .route("/assets/cafe.css", get(assets::css))
        .route("/assets/cafe.js", get(assets::js))
        // A customer's own orders.
        .route("/order", post(pages::place_order).route_layer(page_for(CUSTOMER_PAGE)))
        .route("/my/orders/{id}/cancel", post(pages::cancel_order).route_layer(page_for(CUSTOMER_PAGE)))
        // Staff, each their page.
        .route("/barista", get(pages::barista).route_layer(page_for(BARISTA_PAGE)))
        .route("/barista/drinks/{id}", post(pages::change_drink).route_layer(page_for(BARISTA_PAGE)))
        .route("/rider", get(pages::rider).route_layer(page_for(RIDER_PAGE)))
        .route("/rider/deliveries/{id}/delivered", post(pages::delivered).route_layer(page_for(RIDER_PAGE)))
        .route("/center", get(pages::center).route_layer(page_for(RIDER_PAGE)))
        .route("/manager", get(pages::manager).route_layer(page_for(MANAGER_PAGE)))
        .route("/manager/staff", post(pages::add_staff).route_layer(page_for(MANAGER_PAGE)))
        // Every signed-in page's live stream; the stream checks the page's own roles.
        .route("/live", get(live::stream).route_layer(page_for(platform::auth::SIGNED_IN)))
        .layer(axum::middleware::from_fn(session::same_origin))
        .layer(axum::middleware::from_fn_with_state(auth, session::visit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// What every answer of the web says to the browser: only our own scripts, styles and
/// forms; never in a frame; no referrer to other sites.
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
