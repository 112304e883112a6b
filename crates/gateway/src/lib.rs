//! The API gateway: one front door. It routes by path prefix to a service's instances,
//! balances over them round-robin, and tells services where the client called
//! (`X-Forwarded-Host`, `-Proto`, `-Port`) so their links point back through the gateway.
//!
//! A request refused at connect time never reached an instance, so it is safely tried on
//! the next one; anything else is answered as the instance answered, or 503 if none could.
//!
//! With auth on (SPEC §9) the gateway is the public front door and closes what is not
//! public: the internal calls between services ([`contracts::calls::INTERNAL`]) are not
//! routed (404), and each client (by its address) gets at most [`Limits::per_second`]
//! requests a second, a burst of twice that, before 429 with `Retry-After`. It does not
//! check tokens itself: every service does, so reaching a service's own port gains nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response};
use axum::response::IntoResponse;
use axum::Router;
use contracts::ServiceName;
use platform::json::MAX_BODY_BYTES;
use platform::Problem;
use tokio_util::sync::CancellationToken;

/// A path prefix (`/orders`) and the base URLs of the instances that serve it.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub service: ServiceName,
    pub upstreams: Vec<String>,
}

/// The routes of SPEC §2: each service behind the gateway at its prefixes, served by the
/// instances `url_of` gives for it.
pub fn default_routes(url_of: impl Fn(ServiceName) -> Vec<String>) -> Vec<Route> {
    ServiceName::BEHIND_GATEWAY
        .into_iter()
        .flat_map(|service| {
            let upstreams = url_of(service);
            service.routes().iter().map(move |prefix| Route {
                prefix: prefix.to_string(),
                service,
                upstreams: upstreams.clone(),
            })
        })
        .collect()
}

struct Upstreams {
    route: Route,
    next: AtomicUsize,
    /// Per instance: did its last readiness probe answer UP? Starts true.
    ready: Vec<AtomicBool>,
}

pub struct Gateway {
    routes: Vec<Upstreams>,
    http: reqwest::Client,
    timeout: Duration,
    /// `POST` paths not routed: the internal calls between services.
    closed: &'static [&'static str],
    limiter: Option<RateLimiter>,
}

/// What the public front door lets through.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Route the internal calls too, as the original did (auth off).
    pub internal_routed: bool,
    /// Requests a second one client may make (a burst of twice that); 0 for no limit.
    pub per_second: u32,
}

impl Limits {
    /// The original's open gateway: everything routed, no limit.
    pub const OPEN: Limits = Limits { internal_routed: true, per_second: 0 };
}

impl Gateway {
    pub fn new(routes: Vec<Route>, timeout: Duration, limits: Limits) -> Gateway {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default settings");
        let routes = routes
            .into_iter()
            .map(|route| Upstreams {
                ready: route.upstreams.iter().map(|_| AtomicBool::new(true)).collect(),
                route,
                next: AtomicUsize::new(0),
            })
            .collect();
        Gateway {
            routes,
            http,
            timeout,
            closed: if limits.internal_routed { &[] } else { &contracts::calls::INTERNAL },
            limiter: (limits.per_second > 0).then(|| RateLimiter::new(limits.per_second)),
        }
    }

    /// Probes every instance's readiness every `READINESS_EVERY` until `cancel`, so requests
    /// go only to instances that are ready (all of them, if none is).
    pub async fn watch_readiness(self: Arc<Self>, cancel: CancellationToken) {
        let http = &self.http;
        loop {
            let probes = self.routes.iter().flat_map(|u| {
                u.route.upstreams.iter().zip(&u.ready).map(move |(base, flag)| async move {
                    let up = http
                        .get(format!("{base}/actuator/health/readiness"))
                        .timeout(Duration::from_secs(1))
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if flag.swap(up, Ordering::Relaxed) != up {
                        tracing::info!(upstream = %base, ready = up, "instance readiness changed");
                    }
                })
            });
            futures::future::join_all(probes).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(READINESS_EVERY) => {}
            }
        }
    }

    fn route(&self, path: &str) -> Option<&Upstreams> {
        self.routes.iter().find(|u| {
            let p = u.route.prefix.as_str();
            // `/` (the web's pages) takes whatever no other prefix took: it comes last.
            p == "/" || path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// The gateway's routes: every path is proxied but the gateway's own health, the public
/// API's description `api` at `/openapi.json` and its readable docs at `/docs` (Swagger UI,
/// its assets compiled in: they need no network).
pub fn router(gateway: Arc<Gateway>, local_port: u16, api: serde_json::Value) -> Router {
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").external_urls_from_iter_unchecked([("/openapi.json", api)]);
    Router::new()
        .merge(docs)
        .route("/", axum::routing::any(proxy))
        .route("/{*path}", axum::routing::any(proxy))
        .with_state(gateway)
        .layer(axum::Extension(LocalPort(local_port)))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn forwarded_headers(incoming: &HeaderMap, local_port: Option<u16>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(incoming.len() + 3);
    for (k, v) in incoming {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    if !out.contains_key("x-forwarded-host") {
        if let Some(host) = incoming.get(header::HOST) {
            out.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
            if !out.contains_key("x-forwarded-port") {
                let host = host.to_str().unwrap_or("");
                let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()));
                if let (false, Some(port)) = (has_port, local_port) {
                    out.insert(HeaderName::from_static("x-forwarded-port"), HeaderValue::from(port));
                }
            }
        }
    }
    // The upstream's span is a child of the gateway's own.
    platform::trace::inject_http(&mut out);
    if !out.contains_key("x-forwarded-proto") {
        out.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("http"));
    }
    out
}

async fn proxy(State(gw): State<Arc<Gateway>>, req: Request) -> Result<Response<Body>, Problem> {
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let signed = match req.extensions().get::<platform::auth::Caller>() {
        Some(platform::auth::Caller::Signed(claims)) => Some(claims.sub.clone()),
        _ => None,
    };
    let client = signed.map(Client::Person).or(address.map(Client::Address));
    if let (Some(limiter), Some(client)) = (&gw.limiter, client) {
        limiter.admit(client).map_err(|wait| {
            let mut p = Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "too many requests from this client; please slow down",
            );
            p.retry_after = Some(wait);
            p
        })?;
    }
    let path = req.uri().path().to_string();
    let internal = req.method() == Method::POST && gw.closed.contains(&path.trim_end_matches('/'));
    let Some(up) = gw.route(&path).filter(|_| !internal) else {
        return Err(Problem::not_found(format!("no route for {path}")));
    };
    let local_port = req.extensions().get::<LocalPort>().map(|p| p.0);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let mut res = Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response();
            // The rest of the body is never read, so this connection cannot carry another
            // request: saying so keeps the client from sending its next one down it.
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(res);
        }
    };
    let headers = forwarded_headers(&parts.headers, local_port);
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let n = up.route.upstreams.len();
    if n == 0 {
        return Err(Problem::unavailable(format!("{} has no instances", up.route.service), 1));
    }
    let start = up.next.fetch_add(1, Ordering::Relaxed);
    // Ready instances first, in round-robin order; the others only as a last resort.
    let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    order.sort_by_key(|&i| !up.ready[i].load(Ordering::Relaxed));
    let idempotent =
        matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE);
    // A page's live stream (server-sent events) lasts as long as the page: only reaching the
    // instance is bounded, and the body is passed on as it comes.
    let streaming = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    for (attempt, &i) in order.iter().enumerate() {
        let base = &up.route.upstreams[i];
        let last = attempt + 1 == n;
        let request = gw
            .http
            .request(parts.method.clone(), format!("{base}{path_and_query}"))
            .headers(headers.clone())
            .body(body.clone());
        let result = if streaming {
            match tokio::time::timeout(gw.timeout, request.send()).await {
                Ok(result) => result,
                Err(_) => return Err(Problem::unavailable(format!("{} did not answer in time", up.route.service), 1)),
            }
        } else {
            request.timeout(gw.timeout).send().await
        };
        match result {
            Ok(res) => {
                let status = res.status();
                let mut out_headers = HeaderMap::with_capacity(res.headers().len());
                for (k, v) in res.headers() {
                    if !HOP_BY_HOP.contains(&k.as_str()) {
                        out_headers.append(k.clone(), v.clone());
                    }
                }
                if streaming && status.is_success() {
                    let mut response = Response::new(Body::from_stream(res.bytes_stream()));
                    *response.status_mut() = status;
                    *response.headers_mut() = out_headers;
                    return Ok(response);
                }
                let bytes = res.bytes().await.map_err(|e| {
                    tracing::warn!(upstream = %base, error = %e, "upstream body failed");
                    Problem::unavailable(format!("{} failed while answering", up.route.service), 1)
                })?;
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                *response.headers_mut() = out_headers;
                return Ok(response);
            }
            // Refused before anything was sent: the next instance may take it.
            Err(e) if e.is_connect() && !last => {
                tracing::debug!(upstream = %base, error = %e, "instance refused the connection");
                up.ready[i].store(false, Ordering::Relaxed);
                continue;
            }
            // A reads-only request may be retried on another instance whatever went wrong.
            Err(e) if idempotent && !e.is_timeout() && !last => {
                tracing::debug!(upstream = %base, error = %e, "instance failed; retrying a safe request elsewhere");
                continue;
            }
            Err(e) => {
                tracing::warn!(upstream = %base, error = %e, "upstream failed");
                let detail = if e.is_timeout() {
                    format!("{} did not answer in time; please retry shortly", up.route.service)
                } else {
                    format!("{} failed; please retry shortly", up.route.service)
                };
                return Err(Problem::unavailable(detail, 1));
            }
        }
    }
    Err(Problem::unavailable(format!("{} is unavailable; please retry shortly", up.route.service), 1))
}

/// Who a bucket is for: a signed-in person or service (by the token's subject, wherever
/// they call from: the web's calls on a person's behalf count as that person's), or else
/// the address a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    Person(String),
    Address(IpAddr),
}

/// A token bucket per client: `rate` a second, up to `2 × rate` saved up.
struct RateLimiter {
    rate: f64,
    clients: Mutex<HashMap<Client, (f64, Instant)>>,
}

/// Clients remembered at most; past that, the ones whose buckets have refilled are forgotten.
const MAX_CLIENTS: usize = 65_536;

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        RateLimiter { rate: f64::from(per_second), clients: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `client`, or says how many seconds until one is there.
    fn admit(&self, client: Client) -> Result<(), u64> {
        let (rate, burst, now) = (self.rate, 2.0 * self.rate, Instant::now());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = clients.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

const READINESS_EVERY: Duration = Duration::from_millis(500);

/// The gateway's own listening port, so `X-Forwarded-Port` is right when `Host` has none.
#[derive(Debug, Clone, Copy)]
pub struct LocalPort(pub u16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_routes_send_each_prefix_to_its_service() {
        let gw = Gateway::new(
            default_routes(|service| vec![format!("http://{service}:8080")]),
            Duration::from_secs(1),
            Limits::OPEN,
        );
        let routed = |path: &str| gw.route(path).map(|u| (u.route.service, u.route.upstreams.clone()));
        assert_eq!(routed("/orders"), Some((ServiceName::Order, vec!["http://order:8080".to_string()])));
        assert_eq!(routed("/orderinfos/3").map(|r| r.0), Some(ServiceName::Drink));
        assert_eq!(routed("/cancellations").map(|r| r.0), Some(ServiceName::Delivery));
        assert_eq!(routed("/deliverypages/search/findByOrderId").map(|r| r.0), Some(ServiceName::Deliverycenter));
        assert_eq!(routed("/ordersx").map(|r| r.0), Some(ServiceName::Web), "a prefix matches whole segments only");
        assert_eq!(routed("/admin/services/order/stop").map(|r| r.0), Some(ServiceName::Web), "pages take the rest");
        assert_eq!(routed("/").map(|r| r.0), Some(ServiceName::Web));
        assert_eq!(routed("/barista").map(|r| r.0), Some(ServiceName::Web));
        assert_eq!(routed("/menu").map(|r| r.0), Some(ServiceName::Order));
        assert_eq!(routed("/auth/token").map(|r| r.0), Some(ServiceName::Identity));
        assert_eq!(routed("/customers").map(|r| r.0), Some(ServiceName::Identity));
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_another_client_is_served() {
        let limiter = RateLimiter::new(5);
        let (a, b) = (Client::Address("10.0.0.1".parse().unwrap()), Client::Address("10.0.0.2".parse().unwrap()));
        for _ in 0..10 {
            assert_eq!(limiter.admit(a.clone()), Ok(()));
        }
        let wait = limiter.admit(a.clone()).expect_err("the burst is spent");
        assert!((1..=1).contains(&wait), "{wait}");
        assert_eq!(limiter.admit(b), Ok(()));
        // A person signed in has a bucket of their own, whichever address they call from.
        assert_eq!(limiter.admit(Client::Person("01055550001".into())), Ok(()));
    }
}
