//! A hostile plugin's attacks on the host itself, on real servers and a real host process:
//! a huge decision, a huge write, a log flood, state carried from one order to the next,
//! ambient time and randomness, more concurrent invocations than instance slots. Each is
//! contained, its reason recorded, the host's log holds at most the log budget, `/readyz`
//! never reports the worker paused, and an ordinary order posted right after each attack
//! reaches its status within 2 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::process::HostProcess;
use crate::support::{TestHost, config};

/// How soon an ordinary order posted right after an attack must be processed.
const NEXT_ORDER_WITHIN: Duration = Duration::from_secs(2);
/// How long an attack's own event may take to be recorded (a log flood runs until its
/// budget of host work is spent; a 20 MB decision crosses the boundary twice).
const ATTACK_RECORDED_WITHIN: Duration = Duration::from_secs(60);

/// An HTTP client for a host process, with the in-process host's helpers.
fn client(host: &HostProcess, config: &orderpipe::config::Config) -> TestHost {
    TestHost {
        host: None,
        config: config.clone(),
        base: host.base.clone(),
        http: reqwest::Client::new(),
    }
}

/// Polls `/readyz` every 100 ms until dropped; counts the answers that were not 200.
struct ReadinessWatch {
    not_ready: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadinessWatch {
    fn start(url: String) -> Self {
        let not_ready = Arc::new(AtomicU32::new(0));
        let counter = not_ready.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let ok = http
                    .get(&url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if !ok {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { not_ready, task }
    }

    fn not_ready(&self) -> u32 {
        self.not_ready.load(Ordering::Relaxed)
    }
}

impl Drop for ReadinessWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Posts one attack on `order` (at `version`), waits for its history entry and returns it;
/// then checks that a new, ordinary order reaches `processed` within [`NEXT_ORDER_WITHIN`].
async fn attack(client: &TestHost, order: Uuid, version: u64, kind: &str, data: Value) -> Value {
    client.post_event(order, kind, data).await;
    client
        .wait_for_version(order, version + 1, ATTACK_RECORDED_WITHIN)
        .await;
    let history = client.history(order).await;
    let entry = history
        .iter()
        .find(|entry| entry["seq"].as_u64() == Some(version + 1))
        .cloned()
        .unwrap_or_else(|| panic!("{kind}: no history entry {} in {history:?}", version + 1));
    assert_eq!(entry["event_type"], kind, "{entry}");
    let next = client.create_order(None).await;
    let view = client.wait_for_version(next, 1, NEXT_ORDER_WITHIN).await;
    assert_eq!(view["status"], "processed", "after {kind}: {view}");
    entry
}

fn reason(entry: &Value) -> &str {
    entry["reason"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_on_the_host_fails_at_most_its_own_event() {
    // Room for the 2 MB payloads to be built: the bounds under test are the decision's, the
    // write's and the log's, not the CPU budget.
    let mut config = config("hostile");
    config.plugins.limits.fuel = 1_000_000_000;
    config.plugins.limits.timeout_ms = 20_000;
    let host = HostProcess::start(&config, "hostile-bounds").await;
    let client = client(&host, &config);
    let readiness = ReadinessWatch::start(host.url("/readyz"));
    let order = client.create_order(None).await;
    client
        .wait_for_version(order, 1, Duration::from_secs(60))
        .await;
    let mut version = 1;
    let mut next = |kind| {
        version += 1;
        let _ = kind;
        version - 1
    };

    // 1. A decision over its bounds (2 MB, far past the default 16 KiB attribute).
    let entry = attack(
        &client,
        order,
        next("huge_attribute"),
        "huge_attribute",
        json!({"bytes": 2_000_000}),
    )
    .await;
    assert_eq!(entry["outcome"], "failed", "{entry}");
    assert!(
        reason(&entry).contains("attribute_value_bytes limit of 16384"),
        "{entry}"
    );
    let view = client.order(order).await;
    assert!(
        view["attributes"].get("blob").is_none(),
        "nothing of it was stored: {view}"
    );

    // 2. A write over its bound, whose refusal the plugin then ignores.
    let entry = attack(
        &client,
        order,
        next("huge_write"),
        "huge_write",
        json!({"bytes": 2_000_000}),
    )
    .await;
    assert_eq!(entry["outcome"], "failed", "{entry}");
    assert!(
        reason(&entry).contains("write_bytes limit of 65536"),
        "{entry}"
    );

    // 3. A log flood: 100,000 lines of 4 KiB; the host's log gets at most the budget.
    let log_before = std::fs::read_to_string(&host.log).unwrap_or_default();
    let entry = attack(
        &client,
        order,
        next("log_flood"),
        "log_flood",
        json!({"lines": 100_000, "bytes": 4_096}),
    )
    .await;
    assert_eq!(entry["outcome"], "unchanged", "{entry}");
    let log_after = std::fs::read_to_string(&host.log).unwrap_or_default();
    let added = &log_after[log_before.len().min(log_after.len())..];
    let flood_lines = added.lines().filter(|l| l.contains("LLLLLLLL")).count();
    let budget = orderpipe::plugin::PluginLimits::default();
    assert!(
        flood_lines <= budget.log_lines as usize,
        "{flood_lines} flood lines in the host log, over the budget of {}",
        budget.log_lines
    );
    let flood_bytes: usize = added
        .lines()
        .filter(|l| l.contains("LLLLLLLL"))
        .map(|l| l.matches('L').count())
        .sum();
    assert!(
        flood_bytes <= budget.log_bytes as usize + budget.log_lines as usize * 64,
        "{flood_bytes} bytes of the plugin's lines reached the log"
    );
    assert!(
        added.contains("dropped") && added.contains("past the log budget"),
        "one line says how many were dropped"
    );
    let dropped = host
        .metric("orderpipe_plugin_log_dropped_total{plugin=\"hostile\",version=\"0.1.0\"}")
        .await;
    assert_eq!(dropped, 100_000.0 - flood_lines as f64);

    // 4. State carried in a global from one order to the next.
    for _ in 0..3 {
        let fresh = client.create_order(None).await;
        client
            .wait_for_version(fresh, 1, Duration::from_secs(30))
            .await;
        let entry = attack(&client, fresh, 1, "remember", json!({})).await;
        assert_eq!(reason(&entry), "remember: previous=none", "{entry}");
    }

    // 5. Ambient time and randomness: the wall clock is the event's time.
    let entry = attack(&client, order, next("ambient"), "ambient", json!({})).await;
    assert!(
        reason(&entry).starts_with("ambient: wall_is_event_time=true"),
        "{entry}"
    );

    // 6. A store write made by a decision that then fails is never applied.
    let entry = attack(
        &client,
        order,
        next("write_then_trap"),
        "write_then_trap",
        json!({}),
    )
    .await;
    assert_eq!(entry["outcome"], "failed", "{entry}");
    let entry = attack(
        &client,
        order,
        next("read_foreign"),
        "read_foreign",
        json!({"table": "dropped", "key": order.to_string(), "cache_key": "none"}),
    )
    .await;
    assert!(
        reason(&entry).starts_with("read_foreign: store=none"),
        "the failed decision's write was dropped: {entry}"
    );

    for entry in client.history(order).await {
        assert!(!reason(&entry).contains("ESCAPED"), "{entry}");
    }
    assert_eq!(
        readiness.not_ready(),
        0,
        "/readyz never reported the worker paused"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_cassandra_refuses_fails_one_event_and_the_next_order_flows() {
    // An operator raised the bounds as far as they go: the 20 MB decision passes the host's
    // checks and reaches Cassandra, which refuses it ("Request is too big").
    let mut config = config("hostile");
    config.plugins.limits.decision_bytes = orderpipe::plugin_limits::MAX_DECISION_BYTES;
    config.plugins.limits.attribute_value_bytes = orderpipe::plugin_limits::MAX_DECISION_BYTES;
    config.plugins.limits.memory_mib = 256;
    config.plugins.limits.fuel = 2_000_000_000;
    config.plugins.limits.timeout_ms = 30_000;
    let host = HostProcess::start(&config, "hostile-refused").await;
    let client = client(&host, &config);
    let readiness = ReadinessWatch::start(host.url("/readyz"));
    let order = client.create_order(None).await;
    client
        .wait_for_version(order, 1, Duration::from_secs(60))
        .await;
    let entry = attack(
        &client,
        order,
        1,
        "huge_attribute",
        json!({"bytes": 20_000_000}),
    )
    .await;
    assert_eq!(entry["outcome"], "failed", "{entry}");
    assert!(reason(&entry).contains("refused"), "{entry}");
    let view = client.order(order).await;
    assert_eq!(view["status"], "processed", "{view}");
    assert!(view["attributes"].get("blob").is_none(), "{view}");
    assert_eq!(
        host.metric("orderpipe_dead_letters_total{cause=\"refused\",pipeline=\"orders\"}")
            .await,
        1.0
    );
    assert_eq!(
        readiness.not_ready(),
        0,
        "/readyz never reported the worker paused"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_decisions_than_instance_slots_wait_and_none_fails() {
    let mut config = config("hostile");
    config.plugins.instance_slots = 1;
    // Each decision spins a while (tens of ms), so several are due at once.
    config.plugins.limits.fuel = 1_000_000_000;
    config.plugins.limits.timeout_ms = 20_000;
    let host = HostProcess::start(&config, "hostile-slots").await;
    let client = client(&host, &config);
    let mut orders = Vec::new();
    for _ in 0..12 {
        orders.push(client.create_order(None).await);
    }
    for order in &orders {
        client
            .wait_for_version(*order, 1, Duration::from_secs(60))
            .await;
    }
    // Posted all at once (one after another, a fast worker may finish each before the next).
    futures::future::join_all(
        orders
            .iter()
            .map(|order| client.post_event(*order, "spin", json!({"iterations": 5_000_000}))),
    )
    .await;
    for order in &orders {
        client
            .wait_for_version(*order, 2, Duration::from_secs(90))
            .await;
        let history = client.history(*order).await;
        assert_eq!(history[1]["outcome"], "unchanged", "{:?}", history[1]);
        assert!(
            reason(&history[1]).starts_with("spin: done"),
            "{:?}",
            history[1]
        );
    }
    let waited = host
        .metric("orderpipe_plugin_slot_wait_seconds_count{plugin=\"hostile\",version=\"0.1.0\"}")
        .await;
    assert!(
        waited >= 1.0,
        "some decision waited for the one slot ({waited})"
    );
    assert_eq!(
        host.metric("orderpipe_plugin_invocations_total{plugin=\"hostile\",result=\"failed\",version=\"0.1.0\"}")
            .await,
        0.0
    );
    host.stop().await;
}
