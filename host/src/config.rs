//! The one typed configuration: defaults for loopback, then `orderpipe.toml` (or the file
//! named by `--config`), then `ORDERPIPE_*` environment variables (`__` separates levels,
//! e.g. `ORDERPIPE_KAFKA__BROKERS=127.0.0.1:9092`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::plugin_limits::{LimitOverrides, PluginLimits};

/// Which halves of the pipeline this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The HTTP API and the worker.
    All,
    /// Only the HTTP API (produces events).
    Api,
    /// Only the worker (consumes events and runs plugins); still serves health and metrics.
    Worker,
}

impl Mode {
    pub fn runs_api(self) -> bool {
        matches!(self, Mode::All | Mode::Api)
    }

    pub fn runs_worker(self) -> bool {
        matches!(self, Mode::All | Mode::Worker)
    }
}

/// Where the event log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLogKind {
    /// In-process and durable under `backends.data_dir`; one process per data directory.
    Embedded,
    Kafka,
}

/// Where orders, their history and plugin rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStoreKind {
    /// An embedded database (redb) under `backends.data_dir`.
    Embedded,
    Cassandra,
}

/// Where the status cache and plugin cache keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCacheKind {
    /// In process memory, bounded.
    Embedded,
    Redis,
}

/// Which implementation serves each backend role. Embedded is the default: a newcomer needs
/// nothing installed; production points each role at its server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendsConfig {
    pub event_log: EventLogKind,
    pub order_store: OrderStoreKind,
    pub status_cache: StatusCacheKind,
    /// Where the embedded event log and store keep their files.
    pub data_dir: PathBuf,
    /// Partitions of the embedded event log (fixed once the log exists).
    pub partitions: u32,
    /// The memory the embedded cache may use, in bytes, for order views and for plugin keys
    /// each (every entry weighed by its size).
    pub cache_max_bytes: u64,
    /// How long the embedded cache keeps an order view (`redis.ttl_seconds` is Redis's).
    pub cache_ttl_seconds: u64,
    /// The consumer group whose committed offsets the embedded event log keeps for this
    /// host's worker (`kafka.group_id` is Kafka's).
    pub consumer_group: String,
}

impl Default for BackendsConfig {
    fn default() -> Self {
        Self {
            event_log: EventLogKind::Embedded,
            order_store: OrderStoreKind::Embedded,
            status_cache: StatusCacheKind::Embedded,
            data_dir: PathBuf::from("data"),
            partitions: 6,
            cache_max_bytes: 64 * 1024 * 1024,
            cache_ttl_seconds: 24 * 3600,
            consumer_group: "orderpipe".into(),
        }
    }
}

impl BackendsConfig {
    /// How health checks and logs name each role's backend.
    pub fn names(&self) -> [&'static str; 3] {
        [
            match self.event_log {
                EventLogKind::Embedded => "embedded event log",
                EventLogKind::Kafka => "kafka",
            },
            match self.order_store {
                OrderStoreKind::Embedded => "embedded store",
                OrderStoreKind::Cassandra => "cassandra",
            },
            match self.status_cache {
                StatusCacheKind::Embedded => "embedded cache",
                StatusCacheKind::Redis => "redis",
            },
        ]
    }

    /// Kafka, Cassandra and Redis for every role.
    pub fn servers() -> Self {
        Self {
            event_log: EventLogKind::Kafka,
            order_store: OrderStoreKind::Cassandra,
            status_cache: StatusCacheKind::Redis,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub mode: Mode,
    pub backends: BackendsConfig,
    pub http: HttpConfig,
    /// Live order streams (Server-Sent Events).
    pub stream: StreamConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
    pub redis: RedisConfig,
    pub plugins: PluginsConfig,
    /// The pipelines this host serves. Empty (the default): one `orders` pipeline on
    /// `kafka.topic` decided by `plugins.order`; see [`Config::pipelines`].
    pub pipelines: Vec<PipelineConfig>,
    pub worker: WorkerConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    /// The order-tracking page at `/`.
    pub web: WebConfig,
    pub log: LogConfig,
}

/// The name of the pipeline a configuration without `[[pipelines]]` serves, and the one
/// records stored before pipelines existed belong to.
pub const DEFAULT_PIPELINE: &str = "orders";
/// The longest pipeline name (it is a URL path segment and a metric label).
const MAX_PIPELINE_NAME_BYTES: usize = 64;
/// The longest topic name Kafka accepts.
const MAX_TOPIC_BYTES: usize = 249;

/// One pipeline: the events of one topic, decided by one plugin, served under
/// `/api/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// The route segment (`/api/<name>`), the metric label and what each record is tagged with.
    pub name: String,
    /// The event-log topic its events travel on.
    pub topic: String,
    /// The plugin (registry name, `plugins.dir/<plugin>.wasm` to seed it) deciding its events.
    pub plugin: String,
    /// The singular name of one record, used in answers (`"<entity>_id"`, `"<Entity> created
    /// successfully"`). Default: `name` without a trailing `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

impl PipelineConfig {
    /// The singular name of one record of this pipeline, e.g. `order` for `orders`.
    pub fn entity(&self) -> String {
        match &self.entity {
            Some(entity) => entity.clone(),
            None => self
                .name
                .strip_suffix('s')
                .filter(|stem| !stem.is_empty())
                .unwrap_or(&self.name)
                .to_owned(),
        }
    }
}

/// A configuration that cannot run, found before anything is started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "admin.token is {0} bytes long; it must be at least {MIN_ADMIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    ShortAdminToken(usize),
    #[error("http.{0} must be greater than 0")]
    ZeroHttpBound(&'static str),
    #[error("stream.{0} must be greater than 0")]
    ZeroStreamBound(&'static str),
    #[error("two pipelines are named {0:?}; pipeline names must be unique")]
    DuplicatePipelineName(String),
    #[error(
        "pipelines {first:?} and {second:?} both use topic {topic:?}; each pipeline needs its own topic"
    )]
    DuplicatePipelineTopic {
        topic: String,
        first: String,
        second: String,
    },
    #[error(
        "pipeline name {0:?} is not path-safe: use 1 to {MAX_PIPELINE_NAME_BYTES} lowercase letters, \
         digits, '-' or '_', starting with a letter (it becomes /api/<name>)"
    )]
    InvalidPipelineName(String),
    #[error("pipeline name {0:?} is reserved by another route")]
    ReservedPipelineName(String),
    #[error(
        "topic {topic:?} of pipeline {pipeline:?} is invalid: use 1 to {MAX_TOPIC_BYTES} letters, \
         digits, '.', '-' or '_'"
    )]
    InvalidTopic { pipeline: String, topic: String },
    #[error("topic {0:?} is the dead-letter topic; a pipeline cannot consume it")]
    DeadLetterTopic(String),
    #[error("pipeline {0:?} names no plugin")]
    MissingPlugin(String),
    #[error(
        "entity name {entity:?} of pipeline {pipeline:?} must be 1 to {MAX_PIPELINE_NAME_BYTES} lowercase letters, digits or '_'"
    )]
    InvalidEntity { pipeline: String, entity: String },
    #[error("auth: {0}")]
    Auth(String),
}

/// How callers prove who they are (`[auth]`). README's "Authentication and roles" says what
/// each role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No credential: today's open, seed-compatible API (the default; loopback only).
    None,
    /// Bearer JWTs from an OpenID Connect issuer: customers (and admins, services).
    Jwt,
    /// `X-Api-Key` keys, stored as SHA-256 digests: services.
    ApiKeys,
}

/// `[auth]`: the modes served and their settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// One mode (`mode = "jwt"`); combined with `modes` when both are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Several modes at once, e.g. `["jwt", "api_keys"]` (JWT for people, keys for services).
    pub modes: Vec<AuthMode>,
    pub jwt: JwtConfig,
    /// Service keys: `[[auth.api_keys]] name, digest (hex SHA-256 of the key), service`.
    pub api_keys: Vec<ApiKeyConfig>,
    /// What each service may post, per pipeline: `[auth.services.payments] orders =
    /// ["payment_received"]`.
    pub services: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// The event kinds a customer may post on their own records, per pipeline.
    pub customer_events: BTreeMap<String, Vec<String>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: None,
            modes: Vec::new(),
            jwt: JwtConfig::default(),
            api_keys: Vec::new(),
            services: BTreeMap::new(),
            customer_events: BTreeMap::from([(
                DEFAULT_PIPELINE.to_owned(),
                vec!["cancel_requested".to_owned()],
            )]),
        }
    }
}

impl AuthConfig {
    /// The modes served: `mode` and `modes` together; `none` when neither names one.
    pub fn enabled_modes(&self) -> Vec<AuthMode> {
        let mut modes: Vec<AuthMode> = self.mode.into_iter().chain(self.modes.clone()).collect();
        modes.dedup();
        if modes.is_empty() {
            modes.push(AuthMode::None);
        }
        modes
    }

    /// Whether callers are served without any credential.
    pub fn is_open(&self) -> bool {
        self.enabled_modes() == [AuthMode::None]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let modes = self.enabled_modes();
        if modes.len() > 1 && modes.contains(&AuthMode::None) {
            return Err(ConfigError::Auth(
                "mode \"none\" cannot be combined with other modes".into(),
            ));
        }
        if modes.contains(&AuthMode::Jwt) {
            if self.jwt.issuer.trim().is_empty() {
                return Err(ConfigError::Auth(
                    "jwt.issuer is required in jwt mode".into(),
                ));
            }
            if self.jwt.audience.trim().is_empty() {
                return Err(ConfigError::Auth(
                    "jwt.audience is required in jwt mode".into(),
                ));
            }
            if self.jwt.roles_claim.split('.').any(str::is_empty) {
                return Err(ConfigError::Auth(format!(
                    "jwt.roles_claim {:?} is not a dotted claim path",
                    self.jwt.roles_claim
                )));
            }
        }
        if modes.contains(&AuthMode::ApiKeys) && self.api_keys.is_empty() {
            return Err(ConfigError::Auth(
                "mode \"api_keys\" needs at least one [[auth.api_keys]]".into(),
            ));
        }
        for key in &self.api_keys {
            if key.digest.len() != 64 || !key.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Auth(format!(
                    "api key {:?}: digest must be the 64 hex digits of the key's SHA-256 \
                     (`printf %s KEY | sha256sum`)",
                    key.name
                )));
            }
        }
        Ok(())
    }
}

/// `[auth.jwt]`: which tokens are accepted and how their claims name roles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    /// The `iss` every token must carry, e.g. `http://127.0.0.1:18080/realms/orderpipe`.
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// Where the issuer's signing keys are; default: the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// A static RSA or EC public key (PEM) instead of a JWKS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// The dotted path of the claim listing the caller's roles.
    pub roles_claim: String,
    /// The role that makes a token's subject a customer.
    pub customer_role: String,
    /// The role that makes a token a service, named by `service_claim`.
    pub service_role: String,
    /// The role that makes a token an admin.
    pub admin_role: String,
    /// The claim naming a service (Keycloak: `azp`, the client id).
    pub service_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// The shortest time between two fetches of the JWKS (an unknown `kid` triggers one).
    pub jwks_min_refetch_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: "orderpipe".into(),
            jwks_url: None,
            public_key_pem: None,
            roles_claim: "realm_access.roles".into(),
            customer_role: "customer".into(),
            service_role: "service".into(),
            admin_role: "admin".into(),
            service_claim: "azp".into(),
            leeway_seconds: 30,
            jwks_min_refetch_seconds: 10,
        }
    }
}

/// One service key: only its SHA-256 digest is configured, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyConfig {
    /// What logs call this key.
    pub name: String,
    /// Hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub digest: String,
    /// The service the key authenticates (its `[auth.services.<service>]` applies).
    pub service: String,
}

/// The admin API (`/api/plugins`): served only when a token is configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Bearer token required on every admin request (`ORDERPIPE_ADMIN__TOKEN`), at least
    /// [`MIN_ADMIN_TOKEN_BYTES`] long.
    pub token: Option<String>,
}

/// The shortest admin token accepted at start-up: long enough that guessing is hopeless.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::All,
            backends: BackendsConfig::default(),
            http: HttpConfig::default(),
            stream: StreamConfig::default(),
            kafka: KafkaConfig::default(),
            cassandra: CassandraConfig::default(),
            redis: RedisConfig::default(),
            plugins: PluginsConfig::default(),
            pipelines: Vec::new(),
            worker: WorkerConfig::default(),
            admin: AdminConfig::default(),
            auth: AuthConfig::default(),
            web: WebConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// The HTTP edge: where the API listens and every bound a client meets there. README's
/// "Limits and abuse" says what a client sees past each one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Where the API listens; port 5000 like the original Flask service.
    pub addr: SocketAddr,
    /// The largest request body accepted, in bytes (admin uploads have their own limit,
    /// `plugins.max_component_bytes`).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's line and headers, counted from the
    /// moment the connection waits for them: after connecting, and again after each answer
    /// on a kept-alive connection (so it is also the idle keep-alive timeout). Past it the
    /// connection is closed.
    pub header_read_timeout_ms: u64,
    /// The longest pause allowed while a request body arrives; past it the request is
    /// answered `408`.
    pub body_read_timeout_ms: u64,
    /// How long one request may take, body and answer included; past it the answer is `408`.
    /// Plugin uploads have their own, [`HttpConfig::upload_timeout_ms`].
    pub request_timeout_ms: u64,
    /// How long one plugin upload (`POST /api/plugins/{name}/versions`) may take, body and
    /// the component's compilation included: a JavaScript or Python component (12-18 MB)
    /// takes seconds to compile in a release build and a minute or more in a dev build.
    /// Past it the answer is `408` and the compiled result is dropped.
    pub upload_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes.
    pub max_connections: usize,
    /// Requests per second one client address may make on average (a token bucket refilled
    /// at this rate); `0` turns rate limiting off. Off by default: a host behind a proxy sees
    /// one address for everybody, and the loopback bench and tests need full speed.
    pub rate_limit_per_second: u32,
    /// How many requests a client may make at once before the rate applies (the bucket's
    /// size).
    pub rate_limit_burst: u32,
    /// The most events one order (or any record) may have recorded; posting another is
    /// answered `409`.
    pub max_events_per_order: u64,
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("upload_timeout_ms", self.upload_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("rate_limit_burst", u64::from(self.rate_limit_burst)),
            ("max_events_per_order", self.max_events_per_order),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroHttpBound(name));
            }
        }
        Ok(())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            max_body_bytes: 64 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            upload_timeout_ms: 300_000,
            max_connections: 4_096,
            rate_limit_per_second: 0,
            rate_limit_burst: 100,
            max_events_per_order: 10_000,
        }
    }
}

/// The order-tracking page the host serves at `/` (README: "The web page"). People sign in
/// as `[auth]` says: with `jwt`, through `auth.jwt.issuer`'s login page as the public client
/// `client_id`; with `none`, through a development sign-in that only picks a customer name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// Whether `/`, `/assets/*` and `/web-config.json` are served (only where the API is).
    pub enabled: bool,
    /// The issuer's public client the page signs people in with (authorization code + PKCE).
    pub client_id: String,
    /// The scopes the page asks the issuer for.
    pub scope: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            client_id: "orderpipe-web".into(),
            scope: "openid".into(),
        }
    }
}

/// The bounds of live order streams (`GET /api/<pipeline>/<id>/stream` and
/// `GET /api/<pipeline>/stream`, Server-Sent Events). README's "Limits and abuse" says what a
/// client sees past each one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Streams one client address may hold open at once; one more is answered `429`.
    pub max_per_client: usize,
    /// Streams this host holds open at once, all clients together; one more is answered `503`.
    pub max_total: usize,
    /// How often a quiet stream sends a heartbeat comment, so proxies and clients see it alive.
    pub heartbeat_ms: u64,
    /// How long one stream stays open; then it ends and the client reconnects with
    /// `Last-Event-ID`, missing nothing.
    pub max_lifetime_ms: u64,
    /// Changes this host's stream fan-out (and each pipeline stream) may fall behind the
    /// change feed by; past it the streams read what they missed from the order store. (An
    /// order's stream has a buffer of its own, 16 changes.)
    pub buffer: usize,
}

impl StreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("max_per_client", self.max_per_client as u64),
            ("max_total", self.max_total as u64),
            ("heartbeat_ms", self.heartbeat_ms),
            ("max_lifetime_ms", self.max_lifetime_ms),
            ("buffer", self.buffer as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroStreamBound(name));
            }
        }
        Ok(())
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            max_per_client: 8,
            max_total: 1_000,
            heartbeat_ms: 15_000,
            max_lifetime_ms: 30 * 60 * 1_000,
            buffer: 1_024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    /// Partitions for topics created at start-up; orders on different partitions are
    /// processed concurrently, each order's events stay in order.
    pub partitions: i32,
    pub replication_factor: i32,
    /// How long a POST waits for Kafka's acknowledgement before answering 503.
    pub produce_timeout_ms: u64,
    /// How long the producer holds a message for others to share its request
    /// (`linger.ms`). 0 sends at once; messages still share a request when they wait for
    /// one in flight. 1 added about 1.2 ms to each POST at light load (BENCHMARKS.md).
    pub linger_ms: u64,
    /// Static group membership (`group.instance.id`): give each worker a stable, unique id
    /// (e.g. its pod name) so a restarted worker gets its partitions back at once instead
    /// of waiting for the session timeout. Unset: dynamic membership.
    pub instance_id: Option<String>,
    /// How long the group waits for a silent worker before moving its partitions.
    pub session_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "orders".into(),
            dead_letter_topic: "orders.dead-letter".into(),
            group_id: "orderpipe".into(),
            partitions: 6,
            replication_factor: 1,
            produce_timeout_ms: 3_000,
            linger_ms: 0,
            instance_id: None,
            session_timeout_ms: 6_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CassandraConfig {
    /// Comma-separated contact points.
    pub nodes: String,
    pub keyspace: String,
    pub replication_factor: u32,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Per-request timeout; keeps an API answer bounded while Cassandra is down.
    pub request_timeout_ms: u64,
    /// Statements one request carries at most: writes waiting at the same time (of several
    /// events and orders) go to Cassandra as one unlogged batch. 1 sends every write alone.
    pub batch_statements: usize,
    /// Bytes of values one batch carries at most (estimated; a larger write goes alone).
    /// Cassandra warns about every batch past its `batch_size_warn_threshold` (5 KiB by
    /// default: raise it to 64 KiB, or set this to 4096) and refuses one past
    /// `batch_size_fail_threshold` (50 KiB; a refused batch is retried write by write).
    pub batch_max_bytes: usize,
    /// Orders one state read asks for at most: the states concurrent events read at the same
    /// time go to Cassandra as one `IN` query. 1 reads every order alone.
    pub read_batch_keys: usize,
    /// Batches of writes (and queries of reads) in flight at once; writes and reads arriving
    /// meanwhile wait and join the next. 4: on a two-core node, 15-20 % more orders per second
    /// than 2 once the worker's queue stopped capping the drain (BENCHMARKS.md, 2026-12-04).
    pub batches_in_flight: usize,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: "127.0.0.1:9042".into(),
            keyspace: "orders".into(),
            replication_factor: 1,
            username: None,
            password: None,
            request_timeout_ms: 2_000,
            batch_statements: 48,
            batch_max_bytes: 16 * 1024,
            read_batch_keys: 32,
            batches_in_flight: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    pub url: String,
    /// How long a cached order view lives.
    pub ttl_seconds: u64,
    /// Prefix of every key this host writes.
    pub key_prefix: String,
    pub timeout_ms: u64,
    /// Bytes of order views (their JSON) kept in this process in front of Redis, coherent
    /// through Redis's client-side-caching pushes (`CLIENT TRACKING`, Redis 6 or later):
    /// a repeated `GET` of an order is answered from memory. 0 turns it off.
    pub near_cache_max_bytes: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            ttl_seconds: 24 * 3600,
            key_prefix: "orderpipe".into(),
            timeout_ms: 1_000,
            near_cache_max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Directory holding `<name>.wasm` components.
    pub dir: PathBuf,
    /// The plugin that decides order events. Its active version comes from the registry;
    /// when the registry has none, `dir/<order>.wasm` is uploaded and activated.
    pub order: String,
    /// The limits of every plugin invocation, unless overridden for the plugin (among them
    /// `instance_reuse`: 1, a fresh instance for every event, unless a plugin is opted in).
    pub limits: PluginLimits,
    /// Limits of one plugin replacing some defaults (`[plugins.limits_for.<name>]`); an
    /// override set through the admin API (`PUT /api/plugins/<name>/limits`) wins.
    pub limits_for: BTreeMap<String, LimitOverrides>,
    /// The most memory any plugin may be given, in MiB: the pooling allocator's per-instance
    /// maximum, and the ceiling for every `memory_mib`.
    pub max_memory_mib: u32,
    /// Plugin instances that may exist at once on this host (the pooling allocator's slots,
    /// idle warm instances included). An invocation that finds none free waits for one.
    pub instance_slots: u32,
    /// How long an invocation waits for a free instance slot before the event is retried
    /// later (never recorded as the plugin's failure).
    pub slot_wait_ms: u64,
    /// Linear memory kept resident per instance slot between uses, in bytes: a fresh instance
    /// then finds its pages in place instead of faulting them in (0: give them back to the
    /// kernel after every event).
    pub resident_memory_bytes: usize,
    /// Give each event a fresh instance by returning the last event's instance to its state
    /// right after instantiation (memories reset in place, globals, tables and handles put
    /// back) rather than instantiating again; an instance that cannot be returned exactly is
    /// dropped. False: instantiate for every event. Plugins opted into `instance_reuse` keep
    /// their state between events either way.
    pub reset_instances: bool,
    /// Name every plugin's compiled functions for `perf` (`/tmp/perf-<pid>.map`, written as a
    /// component is compiled), so a profile of the host shows `wasm[8]::function[4035]`, with
    /// the function's name when the component keeps its name section, where it would show
    /// bare addresses. Costs nothing per event; off by default because the file grows with
    /// every version compiled.
    pub perf_map: bool,
    /// The largest component the registry accepts, in bytes.
    pub max_component_bytes: usize,
    /// How often a host checks the registry for a newly activated version or new limits,
    /// in case it missed an announcement (announcements make it switch at once).
    pub watch_interval_ms: u64,
    /// Separates plugin registries that share a keyspace (e.g. staging and production).
    pub registry_scope: String,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("plugins/dist"),
            order: "order".into(),
            limits: PluginLimits::default(),
            limits_for: BTreeMap::new(),
            max_memory_mib: 256,
            instance_slots: crate::plugin_limits::DEFAULT_INSTANCE_SLOTS,
            slot_wait_ms: crate::plugin_limits::DEFAULT_SLOT_WAIT_MS,
            resident_memory_bytes: crate::plugin_limits::DEFAULT_RESIDENT_MEMORY_BYTES,
            reset_instances: true,
            perf_map: false,
            max_component_bytes: 32 * 1024 * 1024,
            watch_interval_ms: 2_000,
            registry_scope: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Attempts for a plugin that fails before the event is recorded as failed.
    pub plugin_attempts: u32,
    /// First backoff after a backend error while processing; doubles up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Messages held per partition ahead of its processing task; past it (or past
    /// `partition_queue_bytes`) the partition is paused at the event log until its task
    /// catches up. Deep on purpose: a paused partition delivers again only after a new fetch,
    /// and with 64 the drain ran at 1,536 events/s, pausing each partition twice a second.
    pub partition_queue: usize,
    /// Payload bytes held per partition ahead of its processing task (see `partition_queue`).
    pub partition_queue_bytes: usize,
    /// Messages of one partition handled at once (one at a time per order).
    pub events_in_flight_per_partition: usize,
    /// Order states kept per partition between their events (so an order's next event is
    /// decided without reading the store); past it the partition's states are dropped and
    /// read again. 0 reads the store for every event. About 1 KiB each (the soak: 54 MiB for
    /// 57,000 kept orders); an order in a final state of its plugin's state machine is not kept.
    pub kept_orders_per_partition: usize,
    /// Decide a new order's `created` event on the order the event describes, without
    /// reading the store first, when no worker was handed the event before (Kafka only; see
    /// `backend::kafka::first_deliveries`). `false` reads every new order first.
    pub decide_new_orders_unread: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            plugin_attempts: 2,
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            partition_queue: 1_024,
            partition_queue_bytes: 4 * 1024 * 1024,
            events_in_flight_per_partition: 16,
            kept_orders_per_partition: 1_000,
            decide_new_orders_unread: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info,orderpipe=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if it exists, or fails if it was named explicitly and is
    /// missing), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("orderpipe.toml")),
        }
        figment = figment.merge(Env::prefixed("ORDERPIPE_").split("__"));
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The pipelines to serve: `[[pipelines]]` when given, else the single `orders` pipeline
    /// on `kafka.topic` decided by `plugins.order` (the configuration before pipelines).
    pub fn pipelines(&self) -> Vec<PipelineConfig> {
        if !self.pipelines.is_empty() {
            return self.pipelines.clone();
        }
        vec![PipelineConfig {
            name: DEFAULT_PIPELINE.to_owned(),
            topic: self.kafka.topic.clone(),
            plugin: self.plugins.order.clone(),
            entity: None,
        }]
    }

    /// Checks what can be checked before connecting anywhere: pipeline names are unique and
    /// path-safe, topics are unique, valid and not the dead-letter topic.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin.token
            && token.len() < MIN_ADMIN_TOKEN_BYTES
        {
            return Err(ConfigError::ShortAdminToken(token.len()));
        }
        self.http.validate()?;
        self.auth.validate()?;
        self.stream.validate()?;
        let pipelines = self.pipelines();
        for (n, pipeline) in pipelines.iter().enumerate() {
            if !is_path_safe_name(&pipeline.name) {
                return Err(ConfigError::InvalidPipelineName(pipeline.name.clone()));
            }
            if RESERVED_PIPELINE_NAMES.contains(&pipeline.name.as_str()) {
                return Err(ConfigError::ReservedPipelineName(pipeline.name.clone()));
            }
            if !is_valid_topic(&pipeline.topic) {
                return Err(ConfigError::InvalidTopic {
                    pipeline: pipeline.name.clone(),
                    topic: pipeline.topic.clone(),
                });
            }
            if pipeline.topic == self.kafka.dead_letter_topic {
                return Err(ConfigError::DeadLetterTopic(pipeline.topic.clone()));
            }
            if pipeline.plugin.trim().is_empty() {
                return Err(ConfigError::MissingPlugin(pipeline.name.clone()));
            }
            let entity = pipeline.entity();
            if !is_path_safe_name(&entity) || entity.contains('-') {
                return Err(ConfigError::InvalidEntity {
                    pipeline: pipeline.name.clone(),
                    entity,
                });
            }
            for earlier in &pipelines[..n] {
                if earlier.name == pipeline.name {
                    return Err(ConfigError::DuplicatePipelineName(pipeline.name.clone()));
                }
                if earlier.topic == pipeline.topic {
                    return Err(ConfigError::DuplicatePipelineTopic {
                        topic: pipeline.topic.clone(),
                        first: earlier.name.clone(),
                        second: pipeline.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The configuration as JSON with secrets replaced, for the start-up log.
    pub fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        if copy.cassandra.password.is_some() {
            copy.cassandra.password = Some("***".into());
        }
        copy.redis.url = redact_url_password(&copy.redis.url);
        if copy.admin.token.is_some() {
            copy.admin.token = Some("***".into());
        }
        // Key digests are not secrets, but nobody needs them in a log either.
        for key in &mut copy.auth.api_keys {
            key.digest = "***".into();
        }
        serde_json::to_value(copy).unwrap_or_default()
    }
}

/// Route segments under `/api/` that belong to other routes.
const RESERVED_PIPELINE_NAMES: &[&str] = &["plugins"];

/// 1 to 64 of `[a-z0-9_-]`, starting with a letter: safe in a URL path, a metric label and
/// a file name.
fn is_path_safe_name(name: &str) -> bool {
    name.len() <= MAX_PIPELINE_NAME_BYTES
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// What Kafka accepts as a topic name (`[A-Za-z0-9._-]`, at most 249), minus `.` and `..`;
/// also safe as part of a file name for the embedded log.
fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_BYTES
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let mut config = Config::default();
        config.cassandra.password = Some("hunter2".into());
        config.redis.url = "redis://app:s3cret@10.0.0.1:6379/0".into();
        let text = config.redacted().to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("redis://app:***@10.0.0.1:6379/0"), "{text}");
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        let mut config = Config::default();
        config.admin.token = Some("change-me".into());
        let error = config.validate().unwrap_err();
        assert_eq!(error, ConfigError::ShortAdminToken(9));
        assert!(error.to_string().contains("at least 16"), "{error}");
        config.admin.token = Some("a-long-enough-admin-token".into());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn auth_is_open_by_default_and_checked_when_on() {
        let mut config = Config::default();
        assert!(config.auth.is_open());
        assert_eq!(config.validate(), Ok(()));
        config.auth.mode = Some(AuthMode::Jwt);
        assert!(matches!(config.validate(), Err(ConfigError::Auth(e)) if e.contains("issuer")));
        config.auth.jwt.issuer = "http://127.0.0.1:18080/realms/orderpipe".into();
        assert_eq!(config.validate(), Ok(()));
        assert!(!config.auth.is_open());
        config.auth.modes = vec![AuthMode::None];
        assert!(matches!(config.validate(), Err(ConfigError::Auth(e)) if e.contains("none")));
        config.auth.modes = vec![AuthMode::ApiKeys];
        assert!(matches!(config.validate(), Err(ConfigError::Auth(e)) if e.contains("api_keys")));
        config.auth.api_keys = vec![ApiKeyConfig {
            name: "k".into(),
            digest: "not-hex".into(),
            service: "payments".into(),
        }];
        assert!(matches!(config.validate(), Err(ConfigError::Auth(e)) if e.contains("digest")));
        config.auth.api_keys[0].digest = "ab".repeat(32);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.auth.enabled_modes(),
            vec![AuthMode::Jwt, AuthMode::ApiKeys]
        );
        assert!(!config.redacted().to_string().contains(&"ab".repeat(32)));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the error type.
    fn auth_modes_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERPIPE_AUTH__MODE", "jwt");
            jail.set_env(
                "ORDERPIPE_AUTH__JWT__ISSUER",
                "http://127.0.0.1:18080/realms/x",
            );
            let config = Config::load(None).expect("loads");
            assert_eq!(config.auth.enabled_modes(), vec![AuthMode::Jwt]);
            assert_eq!(config.auth.jwt.audience, "orderpipe");
            Ok(())
        });
    }

    #[test]
    fn zero_http_bounds_are_refused() {
        let mut config = Config::default();
        config.http.header_read_timeout_ms = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroHttpBound("header_read_timeout_ms"))
        );
    }

    #[test]
    fn zero_stream_bounds_are_refused() {
        let mut config = Config::default();
        config.stream.max_per_client = 0;
        let error = config.validate().unwrap_err();
        assert_eq!(error, ConfigError::ZeroStreamBound("max_per_client"));
        assert_eq!(
            error.to_string(),
            "stream.max_per_client must be greater than 0"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the error type.
    fn stream_bounds_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERPIPE_STREAM__MAX_PER_CLIENT", "3");
            jail.set_env("ORDERPIPE_STREAM__HEARTBEAT_MS", "500");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.stream.max_per_client, 3);
            assert_eq!(config.stream.heartbeat_ms, 500);
            assert_eq!(config.stream.max_total, StreamConfig::default().max_total);
            Ok(())
        });
    }

    #[test]
    fn defaults_are_loopback_and_port_5000() {
        let config = Config::default();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:5000");
        assert!(config.kafka.brokers.starts_with("127.0.0.1"));
    }

    fn with_pipelines(pipelines: Vec<PipelineConfig>) -> Config {
        Config {
            pipelines,
            ..Config::default()
        }
    }

    fn pipeline(name: &str, topic: &str, plugin: &str) -> PipelineConfig {
        PipelineConfig {
            name: name.into(),
            topic: topic.into(),
            plugin: plugin.into(),
            entity: None,
        }
    }

    #[test]
    fn without_pipelines_the_orders_pipeline_uses_the_old_keys() {
        let mut config = Config::default();
        config.kafka.topic = "legacy-orders".into();
        config.plugins.order = "review".into();
        assert_eq!(
            config.pipelines(),
            vec![pipeline("orders", "legacy-orders", "review")]
        );
        assert_eq!(config.pipelines()[0].entity(), "order");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn entity_defaults_to_the_singular_of_the_name() {
        assert_eq!(pipeline("invoices", "t", "p").entity(), "invoice");
        assert_eq!(pipeline("stock", "t", "p").entity(), "stock");
        let mut shipments = pipeline("shipments", "t", "p");
        shipments.entity = Some("parcel".into());
        assert_eq!(shipments.entity(), "parcel");
    }

    #[test]
    fn two_pipelines_with_their_own_names_and_topics_are_valid() {
        let config = with_pipelines(vec![
            pipeline("orders", "orders", "order"),
            pipeline("invoices", "invoices", "invoice"),
        ]);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn duplicate_pipeline_names_are_refused() {
        let config = with_pipelines(vec![
            pipeline("orders", "orders", "order"),
            pipeline("orders", "orders-2", "order"),
        ]);
        assert_eq!(
            config.validate(),
            Err(ConfigError::DuplicatePipelineName("orders".into()))
        );
    }

    #[test]
    fn duplicate_pipeline_topics_are_refused() {
        let config = with_pipelines(vec![
            pipeline("orders", "shared", "order"),
            pipeline("invoices", "shared", "invoice"),
        ]);
        let error = config.validate().unwrap_err();
        assert_eq!(
            error,
            ConfigError::DuplicatePipelineTopic {
                topic: "shared".into(),
                first: "orders".into(),
                second: "invoices".into(),
            }
        );
        assert!(
            error.to_string().contains("both use topic \"shared\""),
            "{error}"
        );
    }

    #[test]
    fn names_that_are_not_path_safe_are_refused() {
        for bad in [
            "",
            "Orders",
            "in voices",
            "a/b",
            "..",
            "9lives",
            "é",
            "plugins",
        ] {
            let config = with_pipelines(vec![pipeline(bad, "topic", "order")]);
            assert!(
                matches!(
                    config.validate(),
                    Err(ConfigError::InvalidPipelineName(_) | ConfigError::ReservedPipelineName(_))
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bad_topics_and_missing_plugins_are_refused() {
        let mut config = with_pipelines(vec![pipeline("orders", "a/b", "order")]);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidTopic { .. })
        ));
        config.pipelines = vec![pipeline("orders", "orders.dead-letter", "order")];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DeadLetterTopic(_))
        ));
        config.pipelines = vec![pipeline("orders", "orders", " ")];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::MissingPlugin(_))
        ));
    }

    #[test]
    fn the_example_configuration_serves_orders_and_invoices() {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(include_str!("../../orderpipe.example.toml")))
            .extract()
            .expect("the example configuration parses");
        assert_eq!(config.validate(), Ok(()));
        let pipelines = config.pipelines();
        let routes: Vec<_> = pipelines
            .iter()
            .map(|p| (p.name.as_str(), p.topic.as_str(), p.plugin.as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("orders", "orders", "order"),
                ("invoices", "invoices", "invoice")
            ]
        );
        assert_eq!(pipelines[1].entity(), "invoice");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the error type.
    fn pipelines_load_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "orderpipe.toml",
                r#"
                [[pipelines]]
                name = "orders"
                topic = "orders"
                plugin = "order"

                [[pipelines]]
                name = "invoices"
                topic = "invoices"
                plugin = "invoice"
                "#,
            )?;
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let names: Vec<_> = config.pipelines().into_iter().map(|p| p.name).collect();
            assert_eq!(names, ["orders", "invoices"]);
            jail.create_file(
                "orderpipe.toml",
                r#"
                [[pipelines]]
                name = "orders"
                topic = "orders"
                plugin = "order"

                [[pipelines]]
                name = "orders"
                topic = "other"
                plugin = "order"
                "#,
            )?;
            let error = Config::load(None).unwrap_err().to_string();
            assert!(
                error.contains("two pipelines are named \"orders\""),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the error type.
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERPIPE_KAFKA__BROKERS", "127.0.0.1:19092");
            jail.set_env("ORDERPIPE_PLUGINS__LIMITS__FUEL", "1234");
            jail.set_env("ORDERPIPE_MODE", "worker");
            jail.set_env("ORDERPIPE_PLUGINS__LIMITS_FOR__ORDER__HOST_CALLS", "7");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.plugins.limits_for["order"].host_calls, Some(7));
            assert_eq!(config.plugins.limits_for["order"].fuel, None);
            assert_eq!(config.kafka.brokers, "127.0.0.1:19092");
            assert_eq!(config.plugins.limits.fuel, 1234);
            assert_eq!(config.mode, Mode::Worker);
            Ok(())
        });
    }
}
