//! Two workers processing the same partitions at once — what a zombie does after a rebalance
//! it has not noticed yet — apply each event exactly once. There is no consensus round on
//! Cassandra: a worker that finds an event recorded skips it, and two workers deciding it on
//! the same state decide alike and write the same cells (`OrderStore::record_next_event`),
//! so each order ends with one history entry per event, in order, and the store and the
//! cache agree.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::{Backends, TestHost, config};

const ORDERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_the_same_partitions_apply_each_event_once() {
    let first_config = config("order");
    let mut first = TestHost::start(first_config.clone()).await;
    // Same topic, store, cache and registry; another consumer group, so this worker is
    // assigned every partition the first one owns, at the same time.
    let mut zombie_config = first_config.clone();
    zombie_config.kafka.group_id = format!("{}-zombie", zombie_config.kafka.group_id);
    let mut zombie = TestHost::start(zombie_config).await;

    let orders = first.post_shipped_orders("z", ORDERS).await;
    let events_per_order = 3u64;
    let messages = ORDERS as f64 * events_per_order as f64;

    for order_id in &orders {
        let view = first
            .wait_for_version(*order_id, events_per_order, Duration::from_secs(90))
            .await;
        assert_eq!(view["status"], "shipped", "{order_id}: {view}");
    }
    // Both workers have handled every message: each either recorded it (both may, deciding
    // alike on the same state) or found it recorded by the other.
    let transitioned =
        "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (applied, redelivered) = loop {
        let applied = first.metric(transitioned).await + zombie.metric(transitioned).await;
        let redelivered = first.metric("orderpipe_events_redelivered_total").await
            + zombie.metric("orderpipe_events_redelivered_total").await;
        if applied + redelivered >= 2.0 * messages || std::time::Instant::now() > deadline {
            break (applied, redelivered);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        applied + redelivered,
        2.0 * messages,
        "each worker handles each message once"
    );
    assert!(applied >= messages, "every event recorded: {applied}");
    for outcome in ["rejected", "failed"] {
        let sample = format!(
            "orderpipe_events_processed_total{{outcome=\"{outcome}\",pipeline=\"orders\"}}"
        );
        assert_eq!(
            first.metric(&sample).await + zombie.metric(&sample).await,
            0.0,
            "a {outcome} event"
        );
    }

    let mut backends = Backends::connect(&first.config).await;
    for order_id in &orders {
        let history = first.history(*order_id).await;
        assert_eq!(
            history.len() as u64,
            events_per_order,
            "{order_id}: {history:?}"
        );
        let distinct: HashSet<String> = history
            .iter()
            .map(|entry| entry["event_id"].to_string())
            .collect();
        assert_eq!(
            distinct.len(),
            history.len(),
            "{order_id}: an event recorded twice"
        );
        // One step after another: each entry starts where the previous one ended.
        let steps: Vec<(String, String)> = history
            .iter()
            .map(|entry| {
                (
                    entry["from"].as_str().unwrap_or_default().to_owned(),
                    entry["to"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for pair in steps.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].0,
                "{order_id}: steps do not chain: {steps:?}"
            );
        }
        assert_eq!(
            steps.last().map(|step| step.1.as_str()),
            Some("shipped"),
            "{order_id}: {steps:?}"
        );
        let stored = backends
            .cassandra_status_at(*order_id, events_per_order, Duration::from_secs(5))
            .await;
        assert_eq!(stored, Some(("shipped".to_owned(), events_per_order)));
        assert_eq!(
            backends.redis_status(*order_id).await,
            stored,
            "{order_id}: cache behind the store"
        );
    }
    let split = (
        first.metric(transitioned).await,
        zombie.metric(transitioned).await,
    );
    println!(
        "{messages} events, two workers on the same partitions: recorded {applied} times in all \
         ({} by the first, {} by the zombie; the same cells where both did), {redelivered} \
         found recorded",
        split.0, split.1
    );
    zombie.stop().await;
    first.stop().await;
}
