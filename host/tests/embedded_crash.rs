//! The default, embedded mode survives SIGKILL: orders acknowledged before the kill but not
//! yet processed are processed after a restart, none twice. No Kafka, Cassandra or Redis is
//! involved: the host runs with its embedded backends on a data directory of its own.

mod support;

use std::time::Duration;

use orderpipe::config::Config;
use serde_json::Value;
use support::metrics;
use support::process::HostProcess;
use uuid::Uuid;

/// Slow events (the hostile plugin loops until its CPU budget is spent) so a backlog builds up.
const SLOW_EVENTS_PER_ORDER: u64 = 3;
const ORDERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_sigkill_in_embedded_mode() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    assert_eq!(
        config.backends.event_log,
        orderpipe::config::EventLogKind::Embedded,
        "embedded is the default"
    );
    config.backends.data_dir = data.path().to_path_buf();
    config.plugins.dir = support::plugins_dir();
    config.plugins.order = "hostile".into();
    config.plugins.limits.fuel = 400_000_000;
    config.plugins.limits.timeout_ms = 10_000;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let host = HostProcess::start(&config, "embedded-crash-1").await;
    let mut orders: Vec<Uuid> = Vec::new();
    for _ in 0..ORDERS {
        let answer: Value = http
            .post(host.url("/api/orders"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let order_id: Uuid = answer["order_id"].as_str().unwrap().parse().unwrap();
        for _ in 0..SLOW_EVENTS_PER_ORDER {
            let response = http
                .post(host.url(&format!("/api/orders/{order_id}/events")))
                .json(&serde_json::json!({"type": "loop"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        }
        orders.push(order_id);
    }
    let acknowledged = ORDERS as f64 * (1 + SLOW_EVENTS_PER_ORDER) as f64;
    let metrics_text = metrics::fetch(&http, &host.base, Duration::from_secs(10))
        .await
        .expect("metrics");
    let processed = metrics::total(&metrics_text, "orderpipe_events_processed_total");
    println!("killing the host with {processed} of {acknowledged} acknowledged events processed");
    assert!(
        processed < acknowledged,
        "no backlog to lose: the test would prove nothing"
    );
    host.kill();

    let host = HostProcess::start(&config, "embedded-crash-2").await;
    let checker = support::TestHost {
        host: None,
        config: config.clone(),
        base: host.base.clone(),
        http: http.clone(),
    };
    for order_id in &orders {
        let view = checker
            .wait_for_version(
                *order_id,
                1 + SLOW_EVENTS_PER_ORDER,
                Duration::from_secs(120),
            )
            .await;
        assert_eq!(view["status"], "processed");
        let history = checker.history(*order_id).await;
        assert_eq!(
            history.len() as u64,
            1 + SLOW_EVENTS_PER_ORDER,
            "{order_id}: {history:?}"
        );
        let seqs: Vec<u64> = history.iter().map(|h| h["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=1 + SLOW_EVENTS_PER_ORDER).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<&str> = history
            .iter()
            .map(|h| h["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            distinct.len(),
            history.len(),
            "{order_id}: an event recorded twice"
        );
        assert!(
            history[1..].iter().all(|h| h["outcome"] == "failed"),
            "{history:?}"
        );
    }
    println!("after the restart: all {acknowledged} acknowledged events recorded exactly once");
    host.stop().await;
}
