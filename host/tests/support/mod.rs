//! Test harness: starts real hosts (in this process) against the real Kafka, Cassandra and
//! Redis servers started by `cargo xtask servers up`, and talks to them over HTTP.
//!
//! Every host gets its own topics, consumer group and Redis key prefix, so tests running in
//! parallel never see each other's events. All waits are bounded.

#![allow(dead_code)]

pub mod cpu;
pub mod jvm_pauses;
pub mod load;
pub mod metrics;
pub mod process;
pub mod report;
pub mod sse;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orderpipe::config::Config;
use orderpipe::server::Host;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

/// The admin token of every test host that needs one (`config.admin.token`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The keyspace every test host shares (orders never collide: their ids are random).
pub const KEYSPACE: &str = "orderpipe_test";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn plugins_dir() -> PathBuf {
    std::env::var_os("ORDERPIPE_PLUGINS__DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"))
}

/// A configuration pointing at the local test servers, with names unique to this call.
pub fn config(plugin: &str) -> Config {
    let suffix = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let mut config = Config::default();
    config.backends = orderpipe::config::BackendsConfig::servers();
    config.kafka.brokers = env_or("ORDERPIPE_KAFKA__BROKERS", "127.0.0.1:19092");
    config.kafka.topic = format!("orders-test-{suffix}");
    config.kafka.dead_letter_topic = format!("orders-test-{suffix}.dead-letter");
    config.kafka.group_id = format!("orderpipe-test-{suffix}");
    config.cassandra.nodes = env_or("ORDERPIPE_CASSANDRA__NODES", "127.0.0.1:19042");
    config.cassandra.keyspace = KEYSPACE.into();
    config.redis.url = env_or("ORDERPIPE_REDIS__URL", "redis://127.0.0.1:16379");
    config.redis.key_prefix = format!("orderpipe-test-{suffix}");
    config.http.addr = "127.0.0.1:0".parse().expect("socket address");
    config.plugins.dir = plugins_dir();
    config.plugins.order = plugin.into();
    // Each test host gets its own plugin registry, so a test activating a version never
    // changes what another test runs.
    config.plugins.registry_scope = format!("test-{suffix}");
    config.log.filter = "warn,orderpipe=warn".into();
    config.worker.initial_backoff_ms = 50;
    config.worker.max_backoff_ms = 1_000;
    config
}

/// Host start-ups are serialized: the first one applies the schema, and concurrent schema
/// changes are something Cassandra handles badly.
static START_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A [`TestHost`]'s client gives up on a request (`/metrics` included) after this long.
const REQUEST_WITHIN: Duration = Duration::from_secs(15);

/// A running host and an HTTP client for it.
pub struct TestHost {
    pub host: Option<Host>,
    pub config: Config,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestHost {
    pub async fn start(config: Config) -> TestHost {
        orderpipe::telemetry::init_logging(&config.log);
        let host = {
            let _guard = START_LOCK.lock().await;
            Host::start(config.clone())
                .await
                .expect("host starts against the local servers (cargo xtask servers up)")
        };
        let base = format!("http://{}", host.addr());
        let http = reqwest::Client::builder()
            .timeout(REQUEST_WITHIN)
            .build()
            .expect("client");
        TestHost {
            host: Some(host),
            config,
            base,
            http,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(host) = self.host.take() {
            tokio::time::timeout(Duration::from_secs(60), host.stop())
                .await
                .expect("host stops within 60 s")
                .expect("host stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs an order (raw body) and returns the status and JSON answer.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_order(&self, body: Option<&Value>) -> Uuid {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, answer) = self.post_raw("/api/orders", body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["message"], "Order created successfully");
        answer["order_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("order id")
    }

    pub async fn post_event(&self, order_id: Uuid, kind: &str, data: Value) -> Uuid {
        let body = serde_json::json!({ "type": kind, "data": data }).to_string();
        let (status, answer) = self
            .post_raw(&format!("/api/orders/{order_id}/events"), body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer["event_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("event id")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn order(&self, order_id: Uuid) -> Value {
        let (status, answer) = self.get(&format!("/api/orders/{order_id}")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    pub async fn history(&self, order_id: Uuid) -> Vec<Value> {
        let (status, answer) = self.get(&format!("/api/orders/{order_id}/history")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["history"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the order has recorded `version` events; returns the order's view.
    pub async fn wait_for_version(&self, order_id: Uuid, version: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let view = self.order(order_id).await;
            if view["version"].as_u64() >= Some(version) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} stuck at {view} (waiting for version {version})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one metric sample (name and exact label set) in `/metrics`, 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metrics::sample_at(&self.http, &self.base, sample, REQUEST_WITHIN).await
    }

    /// Posts `count` orders (customers `<tag>0`, `<tag>1`, …; one item each), each paid and
    /// shipped; returns their ids.
    pub async fn post_shipped_orders(&self, tag: &str, count: usize) -> Vec<Uuid> {
        let mut orders = Vec::new();
        for n in 0..count {
            let body = serde_json::json!({"customer": format!("{tag}{n}"), "items": [{"sku": "S", "qty": 1, "unit_price": 2.5}]});
            let order_id = self.create_order(Some(&body)).await;
            self.post_event(
                order_id,
                "payment_received",
                serde_json::json!({"amount": 2.5, "payment_id": format!("p-{order_id}")}),
            )
            .await;
            self.post_event(order_id, "shipped", serde_json::json!({}))
                .await;
            orders.push(order_id);
        }
        orders
    }

    /// The host's whole `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        metrics::fetch(&self.http, &self.base, REQUEST_WITHIN)
            .await
            .expect("metrics")
    }
}

/// `POST <base>/api/plugins/<plugin>/versions` uploading `component` as the admin `token`:
/// the upload request every hot-swap test makes (send it and check the answer).
pub fn upload_version(
    http: &reqwest::Client,
    base: &str,
    plugin: &str,
    token: &str,
    component: Vec<u8>,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/api/plugins/{plugin}/versions"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(component)
}

/// `PUT <base>/api/plugins/<plugin>/active` naming `version`, as the admin `token`: the
/// activation request of the hot-swap tests (send it and check the answer).
pub fn activate_version(
    http: &reqwest::Client,
    base: &str,
    plugin: &str,
    token: &str,
    version: &str,
) -> reqwest::RequestBuilder {
    http.put(format!("{base}/api/plugins/{plugin}/active"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "version": version }))
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown_token().cancel();
        }
    }
}

/// Waits (up to `within`) until the host at `base` runs `version` of `plugin`, as its
/// `orderpipe_plugin_active` gauge says; returns how long after `since` that was. For an
/// in-process [`TestHost`] and a [`process::HostProcess`] alike (pass its `base`).
pub async fn wait_for_active(
    base: &str,
    plugin: &str,
    version: &str,
    since: Instant,
    within: Duration,
) -> Duration {
    let sample = format!("orderpipe_plugin_active{{plugin=\"{plugin}\",version=\"{version}\"}}");
    let http = reqwest::Client::new();
    loop {
        if metrics::sample_at(&http, base, &sample, Duration::from_secs(10)).await >= 1.0 {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "{base}: {plugin} did not run {version} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Raw access to the servers, to check what the host wrote without going through it.
pub struct Backends {
    pub cassandra: scylla::client::session::Session,
    pub redis: redis::aio::MultiplexedConnection,
    pub key_prefix: String,
}

impl Backends {
    pub async fn connect(config: &Config) -> Backends {
        let cassandra = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&config.cassandra.nodes)
            .build()
            .await
            .expect("cassandra");
        let redis = redis::Client::open(config.redis.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        Backends {
            cassandra,
            redis,
            key_prefix: config.redis.key_prefix.clone(),
        }
    }

    /// The original service's table, `order_status`: the status and version projected there.
    pub async fn cassandra_status(&self, order_id: Uuid) -> Option<(String, u64)> {
        let (status, version) = self
            .cassandra
            .query_unpaged(
                format!("SELECT status, version FROM {KEYSPACE}.order_status WHERE order_id = ?"),
                (order_id,),
            )
            .await
            .expect("query")
            .into_rows_result()
            .expect("rows")
            .maybe_first_row::<(Option<String>, Option<i64>)>()
            .expect("row")?;
        Some((status?, u64::try_from(version?).ok()?))
    }

    /// `order_status` once it holds `version` or later. The worker writes that projection and
    /// the Redis cache at the same time, so GET (read from the cache) may show a version a
    /// moment before `order_status` does; past `within`, whatever the table holds is returned.
    pub async fn cassandra_status_at(
        &self,
        order_id: Uuid,
        version: u64,
        within: Duration,
    ) -> Option<(String, u64)> {
        let deadline = Instant::now() + within;
        loop {
            let projected = self.cassandra_status(order_id).await;
            if projected.as_ref().is_some_and(|(_, v)| *v >= version) || Instant::now() >= deadline
            {
                return projected;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The status and version in the cached order view.
    pub async fn redis_status(&mut self, order_id: Uuid) -> Option<(String, u64)> {
        let view: Option<String> = redis::cmd("HGET")
            .arg(format!("{}:order:{order_id}", self.key_prefix))
            .arg("view")
            .query_async(&mut self.redis)
            .await
            .expect("redis HGET");
        let view: Value = serde_json::from_str(&view?).ok()?;
        Some((
            view["status"].as_str()?.to_owned(),
            view["version"].as_u64()?,
        ))
    }

    pub async fn plugin_row(&self, plugin: &str, table: &str, key: &str) -> Option<String> {
        self.cassandra
            .query_unpaged(
                format!("SELECT value FROM {KEYSPACE}.plugin_data WHERE plugin = ? AND tbl = ? AND key = ?"),
                (plugin, table, key),
            )
            .await
            .expect("query")
            .into_rows_result()
            .expect("rows")
            .maybe_first_row::<(Option<String>,)>()
            .expect("row")
            .and_then(|(value,)| value)
    }

    pub async fn plugin_cache_key(&mut self, plugin: &str, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}:plugin:{plugin}:{key}", self.key_prefix))
            .query_async(&mut self.redis)
            .await
            .expect("redis GET")
    }
}

/// Runs `orderpipe plugin ...` against `host` and returns its stdout; panics on failure.
pub fn orderpipe_plugin(host: &TestHost, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderpipe"))
        .arg("plugin")
        .args(args)
        .args(["--url", &host.base])
        .env("ORDERPIPE_ADMIN__TOKEN", ADMIN_TOKEN)
        .output()
        .expect("orderpipe runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "orderpipe plugin {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
