//! The fault-injection suite of issue 9: for each of Kafka, Cassandra, Redis, the worker
//! process and the whole host process, a steady load of about 40 orders per second on
//! loopback, the target SIGKILLed after 5 s, restarted 10 s later, 5 s more load, then a
//! bounded drain and exact counts: every order that got a 201 reaches its final status
//! (through GET, in Cassandra and in Redis), nothing is applied twice, no cache entry is
//! stale, nothing goes to the dead-letter topic, no answer takes more than 5 s, and every
//! answer is 201/202 or a 503 with a JSON error (never 500).
//!
//! The host runs as real separate processes (the `orderpipe` binary, configured through
//! `ORDERPIPE_*` variables) so it can be SIGKILLed; their logs go to
//! `target/tmp/faults/`. Its own test binary: it kills servers that other tests rely on,
//! and cargo runs test binaries one after another. Within it, every test holds `SERIAL`
//! for its whole duration, and a guard restarts a killed server even when a test fails.
//!
//! Run: `cargo xtask servers up`, then
//! `cargo test -p orderpipe --test faults -- --nocapture --test-threads=1`.

mod support;

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderpipe::config::{Config, Mode};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Orders posted per second (each order with items is followed by a payment event).
const RATE_PER_SECOND: u64 = 40;
/// Load before the kill.
const LOAD_BEFORE: Duration = Duration::from_secs(5);
/// How long the target stays dead.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// Load after the target is back.
const LOAD_AFTER: Duration = Duration::from_secs(5);
/// The client gives up on a request after this long (it then counts as "no answer").
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// No request may wait longer than this for its answer (issue 9).
const MAX_ANSWER: Duration = Duration::from_secs(5);
/// A (re)started worker must record its first event within this long of its start.
const RECOVERY_WITHIN: Duration = Duration::from_secs(5);
/// Bound on waiting for every acknowledged order to reach its final status.
const DRAIN_WITHIN: Duration = Duration::from_secs(120);
/// Bound on a host process starting to answer `/healthz`.
const START_WITHIN: Duration = Duration::from_secs(90);
/// What an order with the two usual items costs: 2 × 9.99 + 1 × 5.00.
const TOTAL: f64 = 24.98;

/// Tests in this binary kill shared servers: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------
// cargo xtask, servers
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The xtask binary next to `orderpipe`, built once (an older build is used if building
/// fails, e.g. while someone edits xtask); `None`: fall back to `cargo run`. Calling the
/// binary directly keeps a kill on time even when another build holds cargo's lock.
fn xtask_binary() -> Option<&'static PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let built = std::process::Command::new(env!("CARGO"))
                .current_dir(repo_root())
                .args(["build", "--quiet", "--package", "xtask"])
                .status()
                .is_ok_and(|s| s.success());
            let candidate = Path::new(env!("CARGO_BIN_EXE_orderpipe")).with_file_name("xtask");
            if !built {
                eprintln!(
                    "building xtask failed; using {} if it exists",
                    candidate.display()
                );
            }
            candidate.exists().then_some(candidate)
        })
        .as_ref()
}

/// Runs `cargo xtask <args>` (blocking).
fn xtask(args: &[&str]) -> Result<(), String> {
    let mut command = match xtask_binary() {
        Some(binary) => std::process::Command::new(binary),
        None => {
            let mut command = std::process::Command::new(env!("CARGO"));
            command.args(["run", "--quiet", "--package", "xtask", "--"]);
            command
        }
    };
    let status = command
        .current_dir(repo_root())
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo xtask {args:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo xtask {args:?} exited with {status}"))
    }
}

async fn xtask_async(args: &[&'static str]) -> Result<(), String> {
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || xtask(&args))
        .await
        .map_err(|e| format!("xtask task: {e}"))?
}

/// Brings a killed server back when dropped, unless [`RestoreServer::restored`] said it is
/// back already: later tests and test binaries find it running even after a failure here.
struct RestoreServer {
    name: &'static str,
    restored: bool,
}

impl Drop for RestoreServer {
    fn drop(&mut self) {
        if !self.restored
            && let Err(error) = xtask(&["servers", "up", "--only", self.name])
        {
            eprintln!("could not restore {}: {error}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------
// host processes
// ---------------------------------------------------------------------------------------

fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&dir).expect("log directory");
    dir
}

/// The names and settings shared by every process of one scenario (unique topic, group and
/// key prefix, as `support::config` makes them).
struct Setup {
    label: String,
    config: Config,
    suffix: String,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let config = support::config("order");
        let suffix = config
            .kafka
            .topic
            .rsplit('-')
            .next()
            .unwrap_or_default()
            .to_owned();
        let plugin = config.plugins.dir.join("order.wasm");
        assert!(
            plugin.exists(),
            "{} is missing: run `cargo xtask plugins` (or set ORDERPIPE_PLUGINS__DIR)",
            plugin.display()
        );
        Setup {
            label: label.to_owned(),
            config,
            suffix,
        }
    }

    /// The process environment (through `support::process::environment`, so it follows
    /// the configuration as it grows), in `mode` on `port`.
    fn env(&self, mode: &str, port: u16, role: &str) -> Vec<(String, String)> {
        let mut config = self.config.clone();
        config.mode = match mode {
            "api" => Mode::Api,
            "worker" => Mode::Worker,
            _ => Mode::All,
        };
        config.http.addr = format!("127.0.0.1:{port}").parse().expect("address");
        if mode != "api" {
            // Static group membership, as the README recommends for crash recovery: a stable
            // id per worker (its "pod name"), the same across a restart.
            config.kafka.instance_id = Some(format!("{}-{role}", config.kafka.group_id));
        }
        let mut env = support::process::environment(&config);
        env.push((
            "ORDERPIPE_WORKER__INITIAL_BACKOFF_MS".into(),
            config.worker.initial_backoff_ms.to_string(),
        ));
        env.push((
            "ORDERPIPE_WORKER__MAX_BACKOFF_MS".into(),
            config.worker.max_backoff_ms.to_string(),
        ));
        env
    }
}

/// One `orderpipe serve` process.
struct HostProcess {
    role: String,
    child: Child,
    log: PathBuf,
    base: String,
    spawned_at: Instant,
}

impl HostProcess {
    /// Starts `orderpipe serve` in `mode` on `port`; `role` names it in logs (and gives a
    /// worker its static group member id, the same for a restarted process).
    fn spawn(setup: &Setup, mode: &str, port: u16, role: &str) -> HostProcess {
        let dir = log_dir();
        let mut n = 1;
        let log = loop {
            let candidate = dir.join(format!("{}-{}-{role}-{n}.log", setup.label, setup.suffix));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderpipe"));
        command
            .arg("serve")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ORDERPIPE_") {
                command.env_remove(&key);
            }
        }
        command.env_remove("RUST_LOG").env("NO_COLOR", "1");
        command.envs(setup.env(mode, port, role));
        let child = command.spawn().expect("starting orderpipe serve");
        println!(
            "[{}] started {role} ({mode}) pid {:?} on 127.0.0.1:{port}, log {}",
            setup.label,
            child.id(),
            log.display()
        );
        HostProcess {
            role: role.to_owned(),
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            spawned_at: Instant::now(),
        }
    }

    /// Waits until `/healthz` answers 200; fails if the process exits or takes too long.
    async fn wait_healthy(&mut self, http: &reqwest::Client) -> Result<Duration, String> {
        let deadline = self.spawned_at + START_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before answering; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            if let Ok(response) = http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && response.status() == 200
            {
                return Ok(self.spawned_at.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not healthy {START_WITHIN:?} after start; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `/readyz` answers 200.
    async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        let mut last = String::new();
        loop {
            if let Ok(response) = http
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                if response.status() == 200 {
                    return Ok(());
                }
                last = response.text().await.unwrap_or_default();
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready within {START_WITHIN:?}: {last}; log {}",
                    self.role,
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn sigkill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// SIGTERM, bounded wait, then SIGKILL.
    async fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(40), self.child.wait())
                .await
                .is_err()
            {
                println!(
                    "{} did not stop within 40 s of SIGTERM; killing it (log {})",
                    self.role,
                    self.log.display()
                );
                self.sigkill().await;
            }
        }
    }
}

/// Events the process at `base` has recorded or recognised as redelivered (`/metrics`).
async fn events_handled(http: &reqwest::Client, base: &str) -> Option<f64> {
    let mut total = 0.0;
    for name in [
        "orderpipe_events_processed_total",
        "orderpipe_events_redelivered_total",
    ] {
        total += metric(http, base, name).await?;
    }
    Some(total)
}

/// The sum of every sample of metric `name` at `base` (0 when absent).
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// How long after `spawned_at` the (worker) process at `base` handled its first event;
/// `None` if it did not within `within`.
async fn first_event_handled(
    http: &reqwest::Client,
    base: &str,
    spawned_at: Instant,
    within: Duration,
) -> Option<Duration> {
    let deadline = spawned_at + within;
    while Instant::now() < deadline {
        if events_handled(http, base).await.unwrap_or(0.0) > 0.0 {
            return Some(spawned_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// WARN and ERROR lines of a process log (count and the last few), for failure reports.
fn log_digest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let notable: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .collect();
    let mut out = format!(
        "--- {} ({} lines, {} WARN/ERROR) ---\n",
        path.display(),
        text.lines().count(),
        notable.len()
    );
    for line in &notable[notable.len().saturating_sub(12)..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("HTTP client")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Order,
    Event,
}

#[derive(Debug, Clone)]
enum Outcome {
    /// An HTTP answer: status, whether the body is JSON with an "error" string, and whether
    /// it carries Retry-After.
    Answer {
        status: u16,
        json_error: bool,
        retry_after: bool,
    },
    /// The connection was refused: nothing listened (the host process was down).
    Refused,
    /// No complete answer within the client timeout.
    Timeout,
    /// The connection broke mid-request (the host process was killed).
    Broken(#[allow(dead_code)] String), // read through Debug in failure reports
}

#[derive(Debug, Clone)]
struct Sample {
    kind: Kind,
    started: Instant,
    finished: Instant,
    outcome: Outcome,
}

impl Sample {
    fn latency(&self) -> Duration {
        self.finished - self.started
    }

    fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answer { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// What the final state of an acknowledged order must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Empty body: `processed`, version 1.
    Processed,
    /// Items and an accepted payment: `paid`, version 2.
    Paid,
    /// Items, payment answered but not accepted: `awaiting_payment`, version 1.
    AwaitingPayment,
    /// Items, payment request without an answer: either.
    PaidOrAwaiting,
}

impl Expect {
    fn matches(self, status: &str, version: u64) -> bool {
        match self {
            Expect::Processed => (status, version) == ("processed", 1),
            Expect::Paid => (status, version) == ("paid", 2),
            Expect::AwaitingPayment => (status, version) == ("awaiting_payment", 1),
            Expect::PaidOrAwaiting => {
                (status, version) == ("paid", 2) || (status, version) == ("awaiting_payment", 1)
            }
        }
    }

    /// Events that may have been sent for the order (its creation included).
    fn events_sent(self) -> usize {
        match self {
            Expect::Processed => 1,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone)]
struct Placed {
    order_id: Uuid,
    expect: Expect,
}

#[derive(Default)]
struct Records {
    samples: Mutex<Vec<Sample>>,
    placed: Mutex<Vec<Placed>>,
}

/// Sends one request and classifies what came back.
async fn send(kind: Kind, request: reqwest::RequestBuilder) -> (Sample, Option<Value>) {
    let started = Instant::now();
    let result = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, retry_after, bytes))
    }
    .await;
    let finished = Instant::now();
    let (outcome, body) = match result {
        Ok((status, retry_after, bytes)) => {
            let body: Option<Value> = serde_json::from_slice(&bytes).ok();
            let json_error = body
                .as_ref()
                .is_some_and(|b| b["error"].as_str().is_some_and(|e| !e.is_empty()));
            (
                Outcome::Answer {
                    status,
                    json_error,
                    retry_after,
                },
                body,
            )
        }
        Err(error) if error.is_timeout() => (Outcome::Timeout, None),
        Err(error) if error.is_connect() => (Outcome::Refused, None),
        Err(error) => (Outcome::Broken(format!("{error:?}")), None),
    };
    (
        Sample {
            kind,
            started,
            finished,
            outcome,
        },
        body,
    )
}

/// Order `n`: even → empty body (→ `processed`); odd → two items (→ `awaiting_payment`),
/// then a payment of the full amount (→ `paid`).
async fn place_order(http: reqwest::Client, base: Arc<str>, n: u64, records: Arc<Records>) {
    let with_items = n % 2 == 1;
    let body = if with_items {
        json!({
            "customer": format!("fault-{n}"),
            "items": [
                {"sku": "A-1", "qty": 2, "unit_price": 9.99},
                {"sku": "B-2", "qty": 1, "unit_price": 5.0},
            ],
            "currency": "EUR",
        })
        .to_string()
    } else {
        String::new()
    };
    let (sample, answer) = send(
        Kind::Order,
        http.post(format!("{base}/api/orders"))
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    let created = sample.status() == Some(201);
    records.samples.lock().unwrap().push(sample);
    if !created {
        return;
    }
    let Some(order_id) = answer
        .as_ref()
        .and_then(|a| a["order_id"].as_str())
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        panic!("201 without an order id: {answer:?}");
    };
    if !with_items {
        records.placed.lock().unwrap().push(Placed {
            order_id,
            expect: Expect::Processed,
        });
        return;
    }
    let event = json!({
        "type": "payment_received",
        "data": {"amount": TOTAL, "payment_id": format!("pay-{order_id}")},
    });
    let (sample, _) = send(
        Kind::Event,
        http.post(format!("{base}/api/orders/{order_id}/events"))
            .header("content-type", "application/json")
            .body(event.to_string()),
    )
    .await;
    let expect = match &sample.outcome {
        Outcome::Answer { status: 202, .. } => Expect::Paid,
        // A definite answer other than 202, or no connection at all: not published.
        Outcome::Answer { .. } | Outcome::Refused => Expect::AwaitingPayment,
        Outcome::Timeout | Outcome::Broken(_) => Expect::PaidOrAwaiting,
    };
    records.samples.lock().unwrap().push(sample);
    records
        .placed
        .lock()
        .unwrap()
        .push(Placed { order_id, expect });
}

/// A steady stream of orders against one base URL, until stopped.
struct Load {
    stop: CancellationToken,
    driver: tokio::task::JoinHandle<u64>,
    records: Arc<Records>,
}

impl Load {
    fn start(http: &reqwest::Client, base: &str) -> Load {
        let stop = CancellationToken::new();
        let records = Arc::new(Records::default());
        let driver = tokio::spawn({
            let stop = stop.clone();
            let records = records.clone();
            let http = http.clone();
            let base: Arc<str> = base.into();
            async move {
                let mut tasks = JoinSet::new();
                let mut tick =
                    tokio::time::interval(Duration::from_millis(1_000 / RATE_PER_SECOND));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    n += 1;
                    tasks.spawn(place_order(http.clone(), base.clone(), n, records.clone()));
                    while tasks.try_join_next().is_some() {}
                }
                // Every request is bounded by the client timeout.
                while let Some(joined) = tasks.join_next().await {
                    if let Err(error) = joined
                        && error.is_panic()
                    {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
                n
            }
        });
        Load {
            stop,
            driver,
            records,
        }
    }

    async fn finish(self) -> (u64, Vec<Sample>, Vec<Placed>) {
        self.stop.cancel();
        let posted = tokio::time::timeout(CLIENT_TIMEOUT * 3, self.driver)
            .await
            .expect("the load stops within its requests' timeouts")
            .expect("load driver");
        let samples = std::mem::take(&mut *self.records.samples.lock().unwrap());
        let placed = std::mem::take(&mut *self.records.placed.lock().unwrap());
        (posted, samples, placed)
    }
}

// ---------------------------------------------------------------------------------------
// drain and count
// ---------------------------------------------------------------------------------------

fn view_state(view: &Value) -> Option<(String, u64)> {
    Some((
        view["status"].as_str()?.to_owned(),
        view["version"].as_u64()?,
    ))
}

/// GETs every order until it is at its final status or `within` passes. Returns the last
/// state seen through GET for each order.
async fn drain(
    http: &reqwest::Client,
    base: &str,
    placed: &[Placed],
    within: Duration,
) -> HashMap<Uuid, Option<(String, u64)>> {
    let deadline = Instant::now() + within;
    let mut last: HashMap<Uuid, Option<(String, u64)>> =
        placed.iter().map(|p| (p.order_id, None)).collect();
    let mut pending: Vec<&Placed> = placed.iter().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let seen: Vec<(Uuid, Option<(String, u64)>)> = futures::stream::iter(pending.iter())
            .map(|p| async move {
                let state = async {
                    let response = http
                        .get(format!("{base}/api/orders/{}", p.order_id))
                        .send()
                        .await
                        .ok()?;
                    if response.status() != 200 {
                        return None;
                    }
                    view_state(&response.json::<Value>().await.ok()?)
                }
                .await;
                (p.order_id, state)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (order_id, state) in seen {
            if state.is_some() {
                last.insert(order_id, state);
            }
        }
        pending.retain(|p| {
            !last[&p.order_id]
                .as_ref()
                .is_some_and(|(status, version)| p.expect.matches(status, *version))
        });
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    last
}

/// Raw reads of what the host wrote, bypassing it.
struct Raw {
    cassandra: scylla::client::session::Session,
    status_query: scylla::statement::prepared::PreparedStatement,
    redis: redis::aio::MultiplexedConnection,
    key_prefix: String,
}

impl Raw {
    async fn connect(config: &Config) -> Raw {
        let cassandra = tokio::time::timeout(
            Duration::from_secs(60),
            scylla::client::session_builder::SessionBuilder::new()
                .known_node(&config.cassandra.nodes)
                .build(),
        )
        .await
        .expect("Cassandra connects within 60 s")
        .expect("cassandra");
        let status_query = cassandra
            .prepare(format!(
                "SELECT status, version FROM {}.order_status WHERE order_id = ?",
                support::KEYSPACE
            ))
            .await
            .expect("prepare");
        let redis = tokio::time::timeout(
            Duration::from_secs(30),
            redis::Client::open(config.redis.url.as_str())
                .expect("redis url")
                .get_multiplexed_async_connection(),
        )
        .await
        .expect("Redis connects within 30 s")
        .expect("redis");
        Raw {
            cassandra,
            status_query,
            redis,
            key_prefix: config.redis.key_prefix.clone(),
        }
    }

    /// `order_status` (the original's table): status and version.
    async fn cassandra_state(&self, order_id: Uuid) -> Result<Option<(String, u64)>, String> {
        let row = self
            .cassandra
            .execute_unpaged(&self.status_query, (order_id,))
            .await
            .map_err(|e| e.to_string())?
            .into_rows_result()
            .map_err(|e| e.to_string())?
            .maybe_first_row::<(Option<String>, Option<i64>)>()
            .map_err(|e| e.to_string())?;
        Ok(match row {
            Some((Some(status), Some(version))) => Some((status, version as u64)),
            _ => None,
        })
    }

    /// The cached view's status and version.
    async fn redis_state(&self, order_id: Uuid) -> Result<Option<(String, u64)>, String> {
        let mut connection = self.redis.clone();
        let view: Option<String> = redis::cmd("HGET")
            .arg(format!("{}:order:{order_id}", self.key_prefix))
            .arg("view")
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        Ok(view
            .and_then(|v| serde_json::from_str::<Value>(&v).ok())
            .and_then(|v| view_state(&v)))
    }
}

/// Messages in `topic` (the sum over its partitions of high minus low watermark).
fn topic_messages(config: &Config, topic: &str) -> Result<i64, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", format!("{}-inspect", config.kafka.group_id))
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {topic} not found"));
    }
    let mut total = 0;
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        total += high - low;
    }
    Ok(total)
}

/// The figures of one scenario.
#[derive(Debug, Default)]
struct Figures {
    posted: u64,
    requests: usize,
    acknowledged: usize,
    events_accepted: usize,
    processed: usize,
    lost: usize,
    not_final_in_cassandra: usize,
    stale: usize,
    redis_missing: usize,
    duplicates: usize,
    history_unreadable: usize,
    dead_letters: i64,
    answered_503: usize,
    non_503_5xx: usize,
    other_status: usize,
    bad_503: usize,
    timeouts: usize,
    refused: usize,
    broken: usize,
    unexcused_transport_errors: usize,
    slowest_down_ms: u128,
    slowest_ms: u128,
    down_ms: u128,
    drain_ms: u128,
    created_while_down: usize,
    first_event_after_restart_ms: Option<u128>,
    resumed_after_ms: Option<u128>,
    redelivered: Option<f64>,
    in_topic_unacknowledged: Option<i64>,
}

impl Figures {
    fn line(&self, fault: &str) -> String {
        format!(
            "fault={fault} acknowledged={} processed={} lost={} stale={} duplicates={} \
             non_503_5xx={} slowest_ms={} | posted={} requests={} events_accepted={} \
             created_while_down={} answered_503={} other_status={} bad_503={} timeouts={} \
             refused={} broken={} unexcused_transport_errors={} not_final_in_cassandra={} \
             redis_missing={} history_unreadable={} dead_letters={} slowest_overall_ms={} \
             down_ms={} drain_ms={} first_event_after_restart_ms={} resumed_after_ms={} \
             redelivered={} in_topic_unacknowledged={}",
            self.acknowledged,
            self.processed,
            self.lost,
            self.stale,
            self.duplicates,
            self.non_503_5xx,
            self.slowest_down_ms,
            self.posted,
            self.requests,
            self.events_accepted,
            self.created_while_down,
            self.answered_503,
            self.other_status,
            self.bad_503,
            self.timeouts,
            self.refused,
            self.broken,
            self.unexcused_transport_errors,
            self.not_final_in_cassandra,
            self.redis_missing,
            self.history_unreadable,
            self.dead_letters,
            self.slowest_ms,
            self.down_ms,
            self.drain_ms,
            optional(self.first_event_after_restart_ms),
            optional(self.resumed_after_ms),
            optional(self.redelivered),
            optional(self.in_topic_unacknowledged),
        )
    }
}

fn optional(value: Option<impl ToString>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

/// When the target was down, and whether transport errors are excused while it was (only
/// when the target is the process answering the requests).
struct Window {
    killed_at: Instant,
    back_at: Instant,
    answering_process_killed: bool,
}

/// One order after the drain: what GET, Cassandra, Redis and the history say.
type Check = (
    Placed,
    Option<(String, u64)>,
    Result<Option<(String, u64)>, String>,
    Result<Option<(String, u64)>, String>,
    Option<Vec<Value>>,
);

/// Counts everything about a finished run; `failures` collects what breaks the bar.
#[allow(clippy::too_many_arguments)]
async fn count(
    setup: &Setup,
    http: &reqwest::Client,
    base: &str,
    posted: u64,
    samples: &[Sample],
    placed: &[Placed],
    window: Option<&Window>,
    failures: &mut Vec<String>,
) -> Figures {
    let mut figures = Figures {
        posted,
        requests: samples.len(),
        acknowledged: placed.len(),
        ..Figures::default()
    };

    // The answers.
    let mut examples: Vec<String> = Vec::new();
    for sample in samples {
        let latency = sample.latency().as_millis();
        figures.slowest_ms = figures.slowest_ms.max(latency);
        let during_outage =
            window.is_some_and(|w| sample.finished >= w.killed_at && sample.started <= w.back_at);
        if during_outage {
            figures.slowest_down_ms = figures.slowest_down_ms.max(latency);
            if sample.kind == Kind::Order && sample.status() == Some(201) {
                figures.created_while_down += 1;
            }
        }
        match &sample.outcome {
            Outcome::Answer {
                status,
                json_error,
                retry_after,
            } => match (sample.kind, *status) {
                (Kind::Order, 201) => {}
                (Kind::Event, 202) => figures.events_accepted += 1,
                (_, 503) => {
                    figures.answered_503 += 1;
                    if !json_error || !retry_after {
                        figures.bad_503 += 1;
                        if examples.len() < 5 {
                            examples.push(format!(
                                "503 without JSON error or Retry-After ({:?})",
                                sample.kind
                            ));
                        }
                    }
                }
                (_, status) => {
                    if status >= 500 {
                        figures.non_503_5xx += 1;
                    } else {
                        figures.other_status += 1;
                    }
                    if examples.len() < 5 {
                        examples.push(format!(
                            "{:?} answered {status} after {latency} ms",
                            sample.kind
                        ));
                    }
                }
            },
            outcome => {
                match outcome {
                    Outcome::Timeout => figures.timeouts += 1,
                    Outcome::Refused => figures.refused += 1,
                    _ => figures.broken += 1,
                }
                // The answering process itself was dead: a refused connection while it was
                // down, or one it was killed in the middle of, is the best a client can get.
                let excused = !matches!(outcome, Outcome::Timeout)
                    && window.is_some_and(|w| {
                        w.answering_process_killed
                            && sample.finished >= w.killed_at
                            && sample.started <= w.back_at
                    });
                if !excused {
                    figures.unexcused_transport_errors += 1;
                    if examples.len() < 5 {
                        examples.push(format!(
                            "{:?} got no answer ({outcome:?}) after {latency} ms",
                            sample.kind
                        ));
                    }
                }
            }
        }
    }
    if let Some(w) = window {
        figures.down_ms = (w.back_at - w.killed_at).as_millis();
    }
    // Answers per phase, for the log: (phase, kind, answer) → count, slowest.
    let mut phases: std::collections::BTreeMap<(u8, String, String), (usize, u128)> =
        std::collections::BTreeMap::new();
    for sample in samples {
        let phase = match window {
            Some(w) if sample.started < w.killed_at => 0,
            Some(w) if sample.started <= w.back_at => 1,
            Some(_) => 2,
            None => 0,
        };
        let answer = match &sample.outcome {
            Outcome::Answer { status, .. } => status.to_string(),
            Outcome::Refused => "refused".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Broken(_) => "broken".into(),
        };
        let entry = phases
            .entry((phase, format!("{:?}", sample.kind), answer))
            .or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(sample.latency().as_millis());
    }
    for ((phase, kind, answer), (n, slowest)) in &phases {
        let phase = ["before", "down", "after"][*phase as usize];
        println!("    {phase:<6} {kind:<5} {answer:<7} {n:>5}  slowest {slowest} ms");
    }

    // Drain: every acknowledged order must reach its final status through GET.
    let drain_started = Instant::now();
    let through_get = drain(http, base, placed, DRAIN_WITHIN).await;
    figures.drain_ms = drain_started.elapsed().as_millis();

    let raw = Raw::connect(&setup.config).await;
    let raw = &raw;
    let checks: Vec<Check> = futures::stream::iter(placed.iter().cloned())
        .map(|p| {
            let state = through_get[&p.order_id].clone();
            async move {
                let cassandra = raw.cassandra_state(p.order_id).await;
                let redis = raw.redis_state(p.order_id).await;
                let history = async {
                    let response = http
                        .get(format!("{base}/api/orders/{}/history", p.order_id))
                        .send()
                        .await
                        .ok()?;
                    if response.status() != 200 {
                        return None;
                    }
                    response.json::<Value>().await.ok()?["history"]
                        .as_array()
                        .cloned()
                }
                .await;
                (p, state, cassandra, redis, history)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut lost_examples = Vec::new();
    let mut stale_examples = Vec::new();
    let mut duplicate_examples = Vec::new();
    for (p, state, cassandra, redis, history) in checks {
        let final_through_get = state
            .as_ref()
            .is_some_and(|(status, version)| p.expect.matches(status, *version));
        if final_through_get {
            figures.processed += 1;
        } else {
            figures.lost += 1;
            if lost_examples.len() < 5 {
                lost_examples.push(format!(
                    "{} expected {:?}, GET says {state:?}, Cassandra {cassandra:?}, Redis {redis:?}",
                    p.order_id, p.expect
                ));
            }
        }
        let cassandra_final = cassandra
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .is_some_and(|(status, version)| p.expect.matches(status, *version));
        if !cassandra_final {
            figures.not_final_in_cassandra += 1;
        }
        match (&cassandra, &redis) {
            (Ok(c), Ok(r)) => {
                if r.is_none() {
                    figures.redis_missing += 1;
                }
                if c != r {
                    figures.stale += 1;
                    if stale_examples.len() < 5 {
                        stale_examples
                            .push(format!("{}: Redis {r:?}, Cassandra {c:?}", p.order_id));
                    }
                }
            }
            _ => {
                figures.stale += 1;
                if stale_examples.len() < 5 {
                    stale_examples.push(format!(
                        "{}: unreadable: Cassandra {cassandra:?}, Redis {redis:?}",
                        p.order_id
                    ));
                }
            }
        }
        match history {
            Some(history) => {
                let ids: HashSet<&str> = history
                    .iter()
                    .filter_map(|h| h["event_id"].as_str())
                    .collect();
                let repeats = history.len() - ids.len();
                let excess = history.len().saturating_sub(p.expect.events_sent());
                let duplicated = repeats.max(excess);
                if duplicated > 0 {
                    figures.duplicates += duplicated;
                    if duplicate_examples.len() < 5 {
                        duplicate_examples.push(format!(
                            "{}: {}",
                            p.order_id,
                            Value::Array(history.clone())
                        ));
                    }
                }
            }
            None => figures.history_unreadable += 1,
        }
    }
    let (dead, in_topic) = tokio::task::spawn_blocking({
        let config = setup.config.clone();
        move || {
            (
                topic_messages(&config, &config.kafka.dead_letter_topic),
                topic_messages(&config, &config.kafka.topic),
            )
        }
    })
    .await
    .expect("topic counts");
    match dead {
        Ok(n) => figures.dead_letters = n,
        Err(error) => failures.push(format!("could not count dead letters: {error}")),
    }
    // Informational: messages on the topic that no client was told about (a 503 for a
    // message Kafka did keep, or a request cut off or timed out).
    if let Ok(n) = in_topic {
        figures.in_topic_unacknowledged =
            Some(n - (figures.acknowledged + figures.events_accepted) as i64);
    }

    // The bar.
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    check(
        figures.acknowledged > 0,
        "no order was acknowledged at all".into(),
    );
    check(
        figures.lost == 0,
        format!(
            "{} of {} acknowledged orders not final through GET after {} ms: {lost_examples:#?}",
            figures.lost, figures.acknowledged, figures.drain_ms
        ),
    );
    check(
        figures.not_final_in_cassandra == 0,
        format!(
            "{} orders not at their final status in Cassandra's order_status",
            figures.not_final_in_cassandra
        ),
    );
    check(
        figures.stale == 0,
        format!(
            "{} Redis views differ from Cassandra ({} missing): {stale_examples:#?}",
            figures.stale, figures.redis_missing
        ),
    );
    check(
        figures.duplicates == 0,
        format!(
            "{} duplicated transitions: {duplicate_examples:#?}",
            figures.duplicates
        ),
    );
    check(
        figures.history_unreadable == 0,
        format!("{} histories unreadable", figures.history_unreadable),
    );
    check(
        figures.dead_letters == 0,
        format!(
            "{} messages in the dead-letter topic (an outage must never send one there)",
            figures.dead_letters
        ),
    );
    check(
        figures.non_503_5xx == 0 && figures.other_status == 0,
        format!(
            "answers other than 201/202/503: {} 5xx, {} other: {examples:#?}",
            figures.non_503_5xx, figures.other_status
        ),
    );
    check(
        figures.bad_503 == 0,
        format!(
            "{} 503s without a JSON error or Retry-After",
            figures.bad_503
        ),
    );
    check(
        figures.unexcused_transport_errors == 0,
        format!(
            "{} requests without an answer (timeouts {}, refused {}, broken {}): {examples:#?}",
            figures.unexcused_transport_errors, figures.timeouts, figures.refused, figures.broken
        ),
    );
    check(
        figures.slowest_ms <= MAX_ANSWER.as_millis(),
        format!(
            "slowest answer {} ms (while down {} ms), the bar is {} ms",
            figures.slowest_ms,
            figures.slowest_down_ms,
            MAX_ANSWER.as_millis()
        ),
    );
    figures
}

// ---------------------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    Server(&'static str),
    Worker,
    Host,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Server(name) => name,
            Fault::Worker => "worker",
            Fault::Host => "host",
        }
    }
}

/// Load, kill, wait, restart, load, drain, count; asserts the bar.
async fn run_fault(fault: Fault) {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let label = fault.label();
    let setup = Setup::new(label);
    let http = client();
    let mut failures: Vec<String> = Vec::new();
    if let Fault::Server(_) = fault {
        // Build (or find) xtask now, so the kill later happens on time.
        tokio::task::spawn_blocking(|| {
            xtask_binary();
        })
        .await
        .expect("xtask build");
    }

    // Processes: an all-mode host, or (worker fault) an API and a separate worker.
    let api_port = support::process::free_port();
    let mut api = match fault {
        Fault::Worker => HostProcess::spawn(&setup, "api", api_port, "api"),
        _ => HostProcess::spawn(&setup, "all", api_port, "host"),
    };
    api.wait_healthy(&http).await.unwrap();
    let worker_port = support::process::free_port();
    let mut worker = match fault {
        Fault::Worker => {
            let mut worker = HostProcess::spawn(&setup, "worker", worker_port, "worker");
            worker.wait_healthy(&http).await.unwrap();
            Some(worker)
        }
        _ => None,
    };
    api.wait_ready(&http).await.unwrap();
    if let Some(worker) = worker.as_mut() {
        worker.wait_ready(&http).await.unwrap();
    }
    let mut logs: Vec<PathBuf> = vec![api.log.clone()];
    logs.extend(worker.as_ref().map(|w| w.log.clone()));
    println!(
        "[{label}] processes up after {:.1} s; load {RATE_PER_SECOND}/s",
        started.elapsed().as_secs_f64()
    );

    let load = Load::start(&http, &api.base);
    tokio::time::sleep(LOAD_BEFORE).await;

    let killed_at = Instant::now();
    let mut restore = None;
    match fault {
        Fault::Server(name) => {
            restore = Some(RestoreServer {
                name,
                restored: false,
            });
            xtask_async(&["servers", "kill", name]).await.unwrap();
        }
        Fault::Worker => worker.as_mut().unwrap().sigkill().await,
        Fault::Host => api.sigkill().await,
    }
    println!(
        "[{label}] SIGKILLed at +{:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(DOWN_FOR.saturating_sub(killed_at.elapsed())).await;

    // Restart, and for a worker (or the whole host) measure how soon it handles an event.
    let mut first_event: Option<tokio::task::JoinHandle<Option<Duration>>> = None;
    let back_at = match fault {
        Fault::Server(name) => {
            let result = xtask_async(&["servers", "up", "--only", name]).await;
            if let Some(restore) = restore.as_mut() {
                restore.restored = result.is_ok();
            }
            result.unwrap();
            Instant::now()
        }
        Fault::Worker => {
            let mut restarted = HostProcess::spawn(&setup, "worker", worker_port, "worker");
            logs.push(restarted.log.clone());
            restarted.wait_healthy(&http).await.unwrap();
            let back_at = Instant::now();
            worker = Some(restarted);
            back_at
        }
        Fault::Host => {
            let mut restarted = HostProcess::spawn(&setup, "all", api_port, "host");
            logs.push(restarted.log.clone());
            restarted.wait_healthy(&http).await.unwrap();
            let back_at = Instant::now();
            api = restarted;
            back_at
        }
    };
    let restarted_worker = match fault {
        Fault::Worker => worker.as_ref(),
        Fault::Host => Some(&api),
        Fault::Server(_) => None,
    };
    let mut resumed: Option<tokio::task::JoinHandle<Option<Duration>>> = None;
    if let Fault::Server(_) = fault {
        // How soon after the server is back the worker handles events again.
        let http = http.clone();
        let base = api.base.clone();
        resumed = Some(tokio::spawn(async move {
            let baseline = events_handled(&http, &base).await.unwrap_or(0.0);
            while back_at.elapsed() < Duration::from_secs(90) {
                if events_handled(&http, &base).await.unwrap_or(0.0) > baseline {
                    return Some(back_at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }));
    }
    if let Some(process) = restarted_worker {
        let http = http.clone();
        let base = process.base.clone();
        let spawned_at = process.spawned_at;
        first_event = Some(tokio::spawn(async move {
            first_event_handled(&http, &base, spawned_at, Duration::from_secs(60)).await
        }));
    }
    println!(
        "[{label}] back at +{:.1} s ({:.1} s after the kill)",
        started.elapsed().as_secs_f64(),
        (back_at - killed_at).as_secs_f64()
    );
    tokio::time::sleep(LOAD_AFTER).await;
    let (posted, samples, placed) = load.finish().await;
    println!(
        "[{label}] load stopped at +{:.1} s: {posted} orders posted, {} acknowledged",
        started.elapsed().as_secs_f64(),
        placed.len()
    );

    let first_event_after_restart = match first_event {
        Some(handle) => {
            let measured = handle.await.expect("first-event probe");
            match measured {
                Some(after) if after <= RECOVERY_WITHIN => {}
                Some(after) => failures.push(format!(
                    "the restarted {label} handled its first event {} ms after its start (bar: {} ms)",
                    after.as_millis(),
                    RECOVERY_WITHIN.as_millis()
                )),
                None => failures.push(format!(
                    "the restarted {label} handled no event within 60 s of its start"
                )),
            }
            measured
        }
        None => None,
    };

    let window = Window {
        killed_at,
        back_at,
        answering_process_killed: matches!(fault, Fault::Host),
    };
    let mut figures = count(
        &setup,
        &http,
        &api.base,
        posted,
        &samples,
        &placed,
        Some(&window),
        &mut failures,
    )
    .await;
    figures.first_event_after_restart_ms = first_event_after_restart.map(|d| d.as_millis());
    if let Some(resumed) = resumed {
        figures.resumed_after_ms = resumed.await.expect("resume probe").map(|d| d.as_millis());
    }
    let worker_base = worker.as_ref().map_or(&api.base, |w| &w.base);
    figures.redelivered = metric(&http, worker_base, "orderpipe_events_redelivered_total").await;
    println!("{}", figures.line(label));

    if let Some(worker) = worker.as_mut() {
        worker.terminate().await;
    }
    api.terminate().await;
    println!("[{label}] done in {:.1} s", started.elapsed().as_secs_f64());
    drop(restore);
    if !failures.is_empty() {
        let digests: Vec<String> = logs.iter().map(|l| log_digest(l)).collect();
        panic!(
            "fault={label}: {} failure(s):\n- {}\n{}",
            failures.len(),
            failures.join("\n- "),
            digests.join("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_killed_for_10s_under_load() {
    run_fault(Fault::Server("kafka")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_killed_for_10s_under_load() {
    run_fault(Fault::Server("cassandra")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_for_10s_under_load() {
    run_fault(Fault::Server("redis")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process_killed_for_10s_under_load() {
    run_fault(Fault::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_host_killed_for_10s_under_load() {
    run_fault(Fault::Host).await;
}

/// Orders produced while no worker ran at all are processed by the first worker of a
/// brand-new group, which starts handling them within 5 s of its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_produced_before_any_worker_ran_are_all_processed() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let label = "before-worker";
    let setup = Setup::new(label);
    let http = client();
    let mut failures = Vec::new();

    let api_port = support::process::free_port();
    let mut api = HostProcess::spawn(&setup, "api", api_port, "api");
    api.wait_healthy(&http).await.unwrap();
    api.wait_ready(&http).await.unwrap();

    // Two seconds of load with no worker anywhere.
    let load = Load::start(&http, &api.base);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (posted, samples, placed) = load.finish().await;
    println!(
        "[{label}] {posted} orders posted with no worker running, {} acknowledged",
        placed.len()
    );

    // The worker's group is brand new (the API's configured group never consumed).
    let mut config = setup.config.clone();
    config.kafka.group_id = format!("{}-fresh", setup.config.kafka.group_id);
    let worker_setup = Setup {
        label: setup.label.clone(),
        config,
        suffix: setup.suffix.clone(),
    };
    let mut worker = HostProcess::spawn(
        &worker_setup,
        "worker",
        support::process::free_port(),
        "worker",
    );
    worker.wait_healthy(&http).await.unwrap();
    let first = first_event_handled(
        &http,
        &worker.base,
        worker.spawned_at,
        Duration::from_secs(60),
    )
    .await;
    match first {
        Some(after) if after <= RECOVERY_WITHIN => {}
        Some(after) => failures.push(format!(
            "the new worker handled its first event {} ms after its start (bar: {} ms)",
            after.as_millis(),
            RECOVERY_WITHIN.as_millis()
        )),
        None => failures.push("the new worker handled no event within 60 s of its start".into()),
    }

    let mut figures = count(
        &setup,
        &http,
        &api.base,
        posted,
        &samples,
        &placed,
        None,
        &mut failures,
    )
    .await;
    figures.first_event_after_restart_ms = first.map(|d| d.as_millis());
    figures.redelivered = metric(&http, &worker.base, "orderpipe_events_redelivered_total").await;
    println!("{}", figures.line(label));

    worker.terminate().await;
    api.terminate().await;
    println!("[{label}] done in {:.1} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        panic!(
            "{label}: {} failure(s):\n- {}\n{}{}",
            failures.len(),
            failures.join("\n- "),
            log_digest(&api.log),
            log_digest(&worker.log)
        );
    }
}
