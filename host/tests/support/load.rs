//! The load generator and the counting shared by the fault suite (`faults.rs`) and the soak
//! (`soak.rs`): a steady stream of orders on loopback ([`Load`]), each request's answer and
//! latency ([`Sample`]), and after the load a bounded drain and exact counts of what was
//! acknowledged, processed, lost, stale and duplicated ([`count`]), read through the API and
//! straight from Cassandra, Redis and Kafka ([`Raw`], [`topic_messages`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderpipe::config::Config;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The client gives up on a request after this long (it then counts as "no answer").
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// No request may wait longer than this for its answer (issue 9).
pub const MAX_ANSWER: Duration = Duration::from_secs(5);
/// Bound on waiting for every acknowledged order to reach its final status.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(120);
/// What an order with the two usual items costs: 2 × 9.99 + 1 × 5.00.
pub const TOTAL: f64 = 24.98;

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

/// How long the load's client keeps an idle connection: shorter than the host's idle
/// keep-alive bound (`http.header_read_timeout_ms`, 10 s), as a client of any server should,
/// or a request sent just as the host closes the connection meets a reset (one of 36,000 in a
/// soak did).
const CLIENT_IDLE: Duration = Duration::from_secs(5);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(CLIENT_IDLE)
        .no_proxy()
        .build()
        .expect("HTTP client")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Order,
    Event,
}

#[derive(Debug, Clone)]
pub enum Outcome {
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
pub struct Sample {
    pub kind: Kind,
    pub started: Instant,
    pub finished: Instant,
    pub outcome: Outcome,
}

impl Sample {
    pub fn latency(&self) -> Duration {
        self.finished - self.started
    }

    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answer { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// What the final state of an acknowledged order must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
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
    pub fn matches(self, status: &str, version: u64) -> bool {
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
    pub fn events_sent(self) -> usize {
        match self {
            Expect::Processed => 1,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Placed {
    pub order_id: Uuid,
    pub expect: Expect,
}

#[derive(Default)]
pub struct Records {
    /// Every request's answer, in the order the answers came.
    pub samples: Mutex<Vec<Sample>>,
    /// Every acknowledged order and what its final state must be.
    pub placed: Mutex<Vec<Placed>>,
    /// Orders started so far (the last `n` given to [`place_order`]).
    pub posted: AtomicU64,
}

/// Sends one request and classifies what came back.
pub async fn send(kind: Kind, request: reqwest::RequestBuilder) -> (Sample, Option<Value>) {
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
pub async fn place_order(http: reqwest::Client, base: Arc<str>, n: u64, records: Arc<Records>) {
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
        // A 503 says the broker did not acknowledge the event, not that it did not keep it: a
        // broker killed after writing a message and before answering keeps it, and the
        // event is processed once the broker is back (`in_topic_unacknowledged` counts them).
        Outcome::Answer { status: 503, .. } => Expect::PaidOrAwaiting,
        // Any other answer, or no connection at all: not published.
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

/// A steady stream of `rate` orders per second against one base URL, until stopped.
pub struct Load {
    stop: CancellationToken,
    driver: tokio::task::JoinHandle<u64>,
    /// What the load has seen so far (read it while it runs; [`Load::finish`] takes it).
    pub records: Arc<Records>,
}

impl Load {
    pub fn start(http: &reqwest::Client, base: &str, rate: u64) -> Load {
        assert!(
            rate > 0,
            "a load needs a rate of at least one order per second"
        );
        let stop = CancellationToken::new();
        let records = Arc::new(Records::default());
        let driver = tokio::spawn({
            let stop = stop.clone();
            let records = records.clone();
            let http = http.clone();
            let base: Arc<str> = base.into();
            async move {
                let mut tasks = JoinSet::new();
                let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    n += 1;
                    records.posted.store(n, Ordering::Relaxed);
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

    pub async fn finish(self) -> (u64, Vec<Sample>, Vec<Placed>) {
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

pub fn view_state(view: &Value) -> Option<(String, u64)> {
    Some((
        view["status"].as_str()?.to_owned(),
        view["version"].as_u64()?,
    ))
}

/// GETs every order until it is at its final status or `within` passes. Returns the last
/// state seen through GET for each order.
pub async fn drain(
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
pub struct Raw {
    cassandra: scylla::client::session::Session,
    status_query: scylla::statement::prepared::PreparedStatement,
    redis: redis::aio::MultiplexedConnection,
    key_prefix: String,
}

impl Raw {
    pub async fn connect(config: &Config) -> Raw {
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
                super::KEYSPACE
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
    pub async fn cassandra_state(&self, order_id: Uuid) -> Result<Option<(String, u64)>, String> {
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
    pub async fn redis_state(&self, order_id: Uuid) -> Result<Option<(String, u64)>, String> {
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
pub fn topic_messages(config: &Config, topic: &str) -> Result<i64, String> {
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
pub struct Figures {
    pub posted: u64,
    pub requests: usize,
    pub acknowledged: usize,
    pub events_accepted: usize,
    pub processed: usize,
    pub lost: usize,
    pub not_final_in_cassandra: usize,
    pub stale: usize,
    pub redis_missing: usize,
    pub duplicates: usize,
    pub history_unreadable: usize,
    pub dead_letters: i64,
    pub answered_503: usize,
    pub non_503_5xx: usize,
    pub other_status: usize,
    pub bad_503: usize,
    pub timeouts: usize,
    pub refused: usize,
    pub broken: usize,
    pub unexcused_transport_errors: usize,
    pub slowest_down_ms: u128,
    pub slowest_ms: u128,
    pub down_ms: u128,
    pub drain_ms: u128,
    pub created_while_down: usize,
    pub first_event_after_restart_ms: Option<u128>,
    pub resumed_after_ms: Option<u128>,
    pub redelivered: Option<f64>,
    pub in_topic_unacknowledged: Option<i64>,
}

impl Figures {
    pub fn line(&self, fault: &str) -> String {
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

pub fn optional(value: Option<impl ToString>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

/// When the target was down, and whether transport errors are excused while it was (only
/// when the target is the process answering the requests).
pub struct Window {
    pub killed_at: Instant,
    pub back_at: Instant,
    pub answering_process_killed: bool,
}

/// One order after the drain: what GET, Cassandra, Redis and the history say.
pub type Check = (
    Placed,
    Option<(String, u64)>,
    Result<Option<(String, u64)>, String>,
    Result<Option<(String, u64)>, String>,
    Option<Vec<Value>>,
);

/// Counts everything about a finished run; `failures` collects what breaks the bar.
#[allow(clippy::too_many_arguments)]
pub async fn count(
    config: &Config,
    http: &reqwest::Client,
    base: &str,
    posted: u64,
    samples: &[Sample],
    placed: &[Placed],
    window: Option<&Window>,
    drain_within: Duration,
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
    let through_get = drain(http, base, placed, drain_within).await;
    figures.drain_ms = drain_started.elapsed().as_millis();

    let raw = Raw::connect(config).await;
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
        let config = config.clone();
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
