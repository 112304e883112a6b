//! Flags and environment variables: one typed struct per command, parsed before anything
//! binds. Every flag has an environment variable; the doc comment is its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use contracts::ServiceName;

#[derive(Parser, Debug)]
#[command(name = "cafe", version, about = "A drink-delivery cafe as event-driven microservices")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start and moved into its command: boxing the larger variants saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every service and the gateway in one process, with embedded storage and event log.
    Up(UpArgs),
    /// Run one service (or the gateway) as its own process.
    Serve(ServeArgs),
    /// Run a local distributed cafe on PostgreSQL and NATS: every service its own process.
    Cluster(ClusterArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// List and retry the events services could not handle, through the admin listener.
    DeadLetters(DeadLettersArgs),
    /// Print an API description (OpenAPI 3.1, JSON): the public API the gateway serves at
    /// `/openapi.json`, or one service's own (internal calls included).
    Openapi(OpenapiArgs),
}

#[derive(Args, Debug, Clone)]
pub struct OpenapiArgs {
    /// The service whose own description to print; the gateway's public one if not given.
    pub service: Option<ServiceName>,
}

#[derive(Args, Debug, Clone)]
pub struct DeadLettersArgs {
    /// The admin listener of `cafe up` (base port + 9) or `cafe cluster` (base port + 17).
    #[arg(long, env = "CAFE_ADMIN_URL", default_value = "http://127.0.0.1:8089", global = true)]
    pub admin: String,
    /// A manager's token (`POST /auth/token`), when auth is on.
    #[arg(long, env = "CAFE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: DeadLettersCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DeadLettersCommand {
    /// Every parked event: service, event id, type, tries, when, the last error.
    List,
    /// Hand a parked event to its service's handler again; unparked once handled.
    Retry {
        /// The service that parked it.
        service: ServiceName,
        /// The event's id.
        event_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a staff account (barista, rider or manager); the password is read from stdin.
    Add(UserAddArgs),
}

#[derive(Args, Debug, Clone)]
pub struct UserAddArgs {
    /// The user name.
    pub name: String,
    /// barista, rider or manager.
    #[arg(long)]
    pub role: platform::auth::Role,
    /// identity's database; default: the all-in-one cafe's under --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where `cafe up` keeps its databases.
    #[arg(long, env = "CAFE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Whether the API checks who calls (SPEC §9), and how hard the gateway lets one client push.
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// `on`: signed tokens and roles on every service, internal calls closed at the gateway.
    /// `off`: the original's open API, for its demonstrations and load tests (with a warning).
    #[arg(long = "auth", env = "CAFE_AUTH", default_value = "on")]
    pub auth: AuthMode,
    /// Requests a second one client may make at the gateway (a burst of twice that) before
    /// 429; 0 lifts the limit (load tests). Auth off never limits.
    #[arg(long, env = "CAFE_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// The menu, a JSON file `[{"productName": "latte", "price": 4500}, ...]`; default: the
    /// menu that ships.
    #[arg(long, env = "CAFE_MENU")]
    pub menu: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    On,
    Off,
}

impl AuthArgs {
    pub fn is_on(&self) -> bool {
        self.auth == AuthMode::On
    }

    /// What the gateway lets through.
    pub fn limits(&self) -> gateway::Limits {
        match self.auth {
            AuthMode::On => gateway::Limits { internal_routed: false, per_second: self.rate_limit },
            AuthMode::Off => gateway::Limits::OPEN,
        }
    }

    pub fn menu(&self) -> anyhow::Result<order::Menu> {
        use anyhow::Context;
        match &self.menu {
            None => Ok(order::Menu::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the menu {}", path.display()))?;
                order::Menu::from_json(&text).map_err(|e| anyhow::anyhow!("the menu {}: {e}", path.display()))
            }
        }
    }
}

/// The keys `cafe serve` is given (see [`crate::trust`]); secrets, so never echoed by `--help`.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Public key(s) that sign people's tokens (PEM).
    #[arg(long, env = crate::trust::TOKEN_PUBLIC_KEYS, hide_env_values = true)]
    pub token_public_keys: Option<String>,
    /// identity only: the private key it signs people's tokens with (PEM).
    #[arg(long, env = crate::trust::TOKEN_PRIVATE_KEY, hide_env_values = true)]
    pub token_private_key: Option<String>,
    /// Public key(s) that sign service tokens (PEM).
    #[arg(long, env = crate::trust::SERVICE_PUBLIC_KEYS, hide_env_values = true)]
    pub service_public_keys: Option<String>,
    /// A service that calls others (order): the private key it signs its service tokens with.
    #[arg(long, env = crate::trust::SERVICE_PRIVATE_KEY, hide_env_values = true)]
    pub service_private_key: Option<String>,
    /// identity only: the first manager's password, used if no manager exists yet.
    #[arg(long, env = "CAFE_MANAGER_PASSWORD", hide_env_values = true)]
    pub manager_password: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Gateway port; service instances take the next sixteen, the admin listener the one after.
    #[arg(long, env = "CAFE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// PostgreSQL server URL (without a database); each service gets `<namespace>_<service>`.
    #[arg(long, env = "CAFE_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
    /// NATS JetStream URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Prefix of every database, stream and consumer name.
    #[arg(long, env = "CAFE_NAMESPACE", default_value = "cafe")]
    pub namespace: String,
    /// Where the children's logs go.
    #[arg(long, env = "CAFE_LOG_DIR", default_value = "./logs")]
    pub log_dir: PathBuf,
    /// How long a stopping child keeps answering with readiness DOWN, in ms.
    #[arg(long, env = "CAFE_DRAIN_MS", default_value_t = 1500)]
    pub drain_ms: u64,
    /// Payment processing delay for every payment replica, e.g. 400-620.
    #[arg(long)]
    pub payment_delay_ms: Option<String>,
    /// Most PostgreSQL connections each child holds.
    #[arg(long, default_value_t = 4)]
    pub db_pool: u32,
    /// Where the cluster keeps its keys and the first manager's password.
    #[arg(long, env = "CAFE_DATA_DIR", default_value = "./data-cluster")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The service to run, or the gateway.
    pub service: ServiceName,
    /// Port to listen on.
    #[arg(long, env = "CAFE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "CAFE_HOST", default_value = "0.0.0.0")]
    pub host: std::net::IpAddr,
    /// The service's database: `postgres://user@host/db` (created if missing) or
    /// `sqlite://path?mode=rwc`. Default: SQLite under --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most PostgreSQL connections this process holds.
    #[arg(long, env = "CAFE_DB_POOL", default_value_t = platform::db::DEFAULT_POOL)]
    pub db_pool: u32,
    /// NATS JetStream URL. Without it, the embedded event log under --data-dir (one process only).
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Prefix of every stream and consumer name, so clusters never see each other's events.
    #[arg(long, env = "CAFE_NAMESPACE", default_value = "cafe")]
    pub namespace: String,
    /// Where SQLite files and the embedded event log live, when used.
    #[arg(long, env = "CAFE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub upstreams: Upstreams,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Where each service is reached: a comma-separated list of instance base URLs. The gateway
/// balances over them, and so does order over payment's and delivery's.
#[derive(Args, Debug, Clone)]
pub struct Upstreams {
    #[arg(long, env = "ORDER_URL", default_value = "http://order:8080")]
    pub order_url: String,
    #[arg(long, env = "PAYMENT_URL", default_value = "http://payment:8080")]
    pub payment_url: String,
    #[arg(long, env = "DRINK_URL", default_value = "http://drink:8080")]
    pub drink_url: String,
    #[arg(long, env = "CUSTOMERCENTER_URL", default_value = "http://customercenter:8080")]
    pub customercenter_url: String,
    #[arg(long, env = "DELIVERY_URL", default_value = "http://delivery:8080")]
    pub delivery_url: String,
    #[arg(long, env = "DELIVERYCENTER_URL", default_value = "http://deliverycenter:8080")]
    pub deliverycenter_url: String,
    #[arg(long, env = "IDENTITY_URL", default_value = "http://identity:8080")]
    pub identity_url: String,
    #[arg(long, env = "WEB_URL", default_value = "http://web:8080")]
    pub web_url: String,
    /// The web only: where it calls the public API, as any client does.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://gateway:8080")]
    pub gateway_url: String,
}

impl Upstreams {
    /// The base URLs of `service`'s instances; none for the gateway, which is no one's upstream.
    pub fn of(&self, service: ServiceName) -> Vec<String> {
        let list = match service {
            ServiceName::Gateway => return Vec::new(),
            ServiceName::Order => &self.order_url,
            ServiceName::Payment => &self.payment_url,
            ServiceName::Drink => &self.drink_url,
            ServiceName::Customercenter => &self.customercenter_url,
            ServiceName::Delivery => &self.delivery_url,
            ServiceName::Deliverycenter => &self.deliverycenter_url,
            ServiceName::Identity => &self.identity_url,
            ServiceName::Web => &self.web_url,
        };
        list.split(',').map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty()).collect()
    }

    /// The environment variable that lists `service`'s instances (`ORDER_URL`), as
    /// `cafe cluster` sets it for its children.
    pub fn variable(service: ServiceName) -> String {
        format!("{}_URL", service.as_str().to_uppercase())
    }
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Gateway port; the services take the next eight (order, payment, drink, customercenter,
    /// delivery, deliverycenter, identity, web) and the admin listener (on 127.0.0.1) the one
    /// after. 0 gives every listener a free port.
    #[arg(long, env = "CAFE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "CAFE_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Where the services' databases and the event log live.
    #[arg(long, env = "CAFE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl UpArgs {
    /// The flags of `cafe up` (without the command), read as the command line reads them,
    /// environment variables and defaults included. For building a cafe in a test.
    pub fn from_flags<I, T>(flags: I) -> Result<UpArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        #[command(name = "cafe up")]
        struct Up {
            #[command(flatten)]
            args: UpArgs,
        }
        let flags = std::iter::once(std::ffi::OsString::from("up")).chain(flags.into_iter().map(Into::into));
        Ok(Up::try_parse_from(flags)?.args)
    }
}

/// What `cafe up` and `cafe serve` both take: where logs and traces go, how a stopping
/// server drains, and the resilience and auth settings of the services they run.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Where application and access logs go (`<log-dir>/<service>/`, rolled daily, 30 kept).
    #[arg(long, env = "CAFE_LOG_DIR", default_value = "./logs")]
    pub log_dir: PathBuf,
    /// How long a stopping server lets in-flight requests finish, in seconds.
    #[arg(long, env = "CAFE_GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// After SIGTERM, how long to keep answering with readiness DOWN before closing the
    /// listener, in ms (time for a gateway or Kubernetes to stop sending).
    #[arg(long, env = "CAFE_DRAIN_MS", default_value_t = 0)]
    pub drain_ms: u64,
    /// OTLP/HTTP collector to export traces to (`<endpoint>/v1/traces`, JSON). Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(flatten)]
    pub resilience: ResilienceArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// How long what makes delivery exactly-once is kept: the inbox's memory of handled events,
/// and the events on the bus. The reasons for the defaults are in docs/OPERATIONS.md,
/// "Retention".
#[derive(Args, Debug, Clone)]
pub struct RetentionArgs {
    /// How long a service remembers an event it handled, so that a redelivery or republish
    /// of it is dropped (e.g. 7d, 12h, 90s). Must outlast --stream-max-age and any outage.
    #[arg(long, env = "CAFE_INBOX_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub inbox_retention: std::time::Duration,
    /// How often each service prunes its inbox and the bus drops the events every consumer
    /// group has handled.
    #[arg(long, env = "CAFE_HOUSEKEEPING_EVERY", default_value = "60s", value_parser = parse_duration)]
    pub housekeeping_every: std::time::Duration,
    /// NATS stream: most bytes kept. A full stream refuses new events (they wait in the
    /// outboxes) rather than dropping events not yet handled.
    #[arg(long, env = "CAFE_STREAM_MAX_BYTES", default_value = "4GiB", value_parser = parse_bytes)]
    pub stream_max_bytes: i64,
    /// NATS stream: oldest event kept, handled or not (0: no age limit, the default; events
    /// leave once every consumer group has handled them).
    #[arg(long, env = "CAFE_STREAM_MAX_AGE", default_value = "0", value_parser = parse_duration)]
    pub stream_max_age: std::time::Duration,
}

impl RetentionArgs {
    /// The services' part, checked: the inbox must remember an event for as long as the
    /// stream may hand it out again.
    pub fn retention(&self) -> anyhow::Result<crate::services::Retention> {
        let age = self.stream_max_age;
        if !age.is_zero() && age < std::time::Duration::from_secs(120) {
            anyhow::bail!("--stream-max-age must be 0 or at least 2m, the stream's duplicate window");
        }
        if !age.is_zero() && self.inbox_retention <= age {
            anyhow::bail!(
                "--inbox-retention ({:?}) must be longer than --stream-max-age ({age:?}): a consumer replaying the stream would otherwise handle events again",
                self.inbox_retention
            );
        }
        if self.housekeeping_every.is_zero() {
            anyhow::bail!("--housekeeping-every must be more than 0");
        }
        Ok(crate::services::Retention { inbox: self.inbox_retention, every: self.housekeeping_every })
    }

    /// What the NATS stream keeps.
    pub fn stream(&self) -> platform::nats::Limits {
        platform::nats::Limits { max_bytes: self.stream_max_bytes, max_age: self.stream_max_age }
    }
}

/// `7d`, `12h`, `30m`, `90s`, `250ms`, or `0`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: give a unit (7d, 12h, 30m, 90s, 250ms)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration like 7d, 12h, 30m, 90s"))?;
    let secs = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is one of ms, s, m, h, d")),
    };
    n.checked_mul(secs).map(std::time::Duration::from_secs).ok_or_else(|| format!("{s:?} is too long"))
}

/// `4GiB`, `512MiB`, `64KiB`, or a number of bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| format!("{s:?} is not a size like 4GiB, 512MiB or 1048576"))?;
    let scale: i64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{s:?}: the unit is one of B, KiB, MiB, GiB")),
    };
    n.checked_mul(scale).filter(|b| *b > 0).ok_or_else(|| format!("{s:?} is not a usable size"))
}

impl CommonArgs {
    /// What the services need: where order reaches payment and delivery, the resilience
    /// settings, who may call what (`trust`), the menu's prices and how long things are kept.
    pub fn wiring(
        &self,
        payment_url: &str,
        delivery_url: &str,
        trust: crate::trust::Trust,
    ) -> anyhow::Result<crate::services::Wiring> {
        let r = &self.resilience;
        Ok(crate::services::Wiring {
            trust,
            menu: self.auth.menu()?,
            payment_url: payment_url.to_string(),
            delivery_url: delivery_url.to_string(),
            call_timeout: std::time::Duration::from_millis(r.call_timeout_ms),
            settle_after: std::time::Duration::from_millis(r.settle_after_ms),
            payment_delay_ms: r.payment_delay_ms,
            retry_after_secs: r.retry_after_secs,
            breaker: r.breaker(),
            payment_retries: r.payment_retries,
            retention: self.retention.retention()?,
            web: Default::default(),
        })
    }

    pub fn stop(&self) -> platform::server::Stop {
        platform::server::Stop {
            drain: std::time::Duration::from_millis(self.drain_ms),
            grace: std::time::Duration::from_secs(self.grace_secs),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ResilienceArgs {
    /// Timeout of each synchronous call (order → payment, order → delivery), in ms.
    #[arg(long, env = "CAFE_CALL_TIMEOUT_MS", alias = "payment-timeout-ms", default_value_t = 610)]
    pub call_timeout_ms: u64,
    /// Age after which the reconciler settles an order left pending by a crash, in ms.
    #[arg(long, env = "CAFE_SETTLE_AFTER_MS", default_value_t = 5000)]
    pub settle_after_ms: u64,
    /// Payment processing delay, uniform in LO-HI ms (e.g. 400-620), to reproduce the
    /// original's load test. Off by default.
    #[arg(long, env = "CAFE_PAYMENT_DELAY_MS", value_parser = parse_range)]
    pub payment_delay_ms: Option<(u64, u64)>,
    /// Circuit breaker: rolling window over which calls are counted, in seconds.
    #[arg(long, env = "CAFE_BREAKER_WINDOW_SECS", default_value_t = 10)]
    pub breaker_window_secs: u64,
    /// Circuit breaker: fewest calls in the window before it may open.
    #[arg(long, env = "CAFE_BREAKER_MIN_CALLS", default_value_t = 20)]
    pub breaker_min_calls: u32,
    /// Circuit breaker: failure percentage at which it opens.
    #[arg(long, env = "CAFE_BREAKER_FAILURE_PERCENT", default_value_t = 10.0)]
    pub breaker_failure_percent: f64,
    /// Circuit breaker: how long it stays open before a trial call, in ms.
    #[arg(long, env = "CAFE_BREAKER_OPEN_MS", default_value_t = 5000)]
    pub breaker_open_ms: u64,
    /// Extra attempts at a payment call that timed out (safe: payment is idempotent per order).
    #[arg(long, env = "CAFE_PAYMENT_RETRIES", default_value_t = 1)]
    pub payment_retries: u32,
    /// Test hook (debug builds only): crash the process at this named point.
    #[arg(long, hide = true)]
    pub failpoint: Vec<String>,
    /// Seconds a client is told to wait (`Retry-After`) when a dependency is unavailable.
    #[arg(long, env = "CAFE_RETRY_AFTER_SECS", default_value_t = 1)]
    pub retry_after_secs: u64,
}

impl ResilienceArgs {
    pub fn breaker(&self) -> platform::breaker::Settings {
        platform::breaker::Settings {
            window: std::time::Duration::from_secs(self.breaker_window_secs.max(1)),
            buckets: 10,
            min_calls: self.breaker_min_calls,
            failure_ratio: self.breaker_failure_percent / 100.0,
            open_for: std::time::Duration::from_millis(self.breaker_open_ms),
        }
    }
}

/// `400-620` or `500`.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: u64 = lo.trim().parse().map_err(|_| format!("'{s}' is not LO-HI in milliseconds"))?;
    let hi: u64 = hi.trim().parse().map_err(|_| format!("'{s}' is not LO-HI in milliseconds"))?;
    if lo > hi {
        return Err(format!("'{s}': LO must not exceed HI"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_ranges_parse() {
        assert_eq!(parse_range("400-620"), Ok((400, 620)));
        assert_eq!(parse_range("5"), Ok((5, 5)));
        assert!(parse_range("620-400").is_err());
        assert!(parse_range("x").is_err());
    }

    #[test]
    fn serve_takes_only_the_services_there_are() {
        let parsed = Cli::try_parse_from(["cafe", "serve", "customercenter"]).expect("a service");
        assert!(matches!(parsed.command, Command::Serve(ServeArgs { service: ServiceName::Customercenter, .. })));
        assert!(Cli::try_parse_from(["cafe", "serve", "kitchen"]).is_err());
    }

    #[test]
    fn every_upstream_flag_reads_the_variable_the_cluster_sets() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("the serve command");
        for service in ServiceName::BEHIND_GATEWAY {
            let id = format!("{service}_url");
            let arg = serve.get_arguments().find(|a| a.get_id() == id.as_str()).unwrap_or_else(|| panic!("no --{id}"));
            let variable = Upstreams::variable(service);
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&variable)), "--{id}");
        }
    }

    #[test]
    fn upstreams_split_and_trim_each_services_list() {
        let args = UpArgs::from_flags(["--port", "0"]).expect("flags");
        assert_eq!(args.port, 0);
        let parsed = Cli::try_parse_from(["cafe", "serve", "gateway", "--payment-url", "http://a:1/, http://b:2"]);
        let Command::Serve(serve) = parsed.expect("flags").command else { panic!("not serve") };
        assert_eq!(serve.upstreams.of(ServiceName::Payment), ["http://a:1", "http://b:2"]);
        assert!(serve.upstreams.of(ServiceName::Gateway).is_empty());
    }
}
