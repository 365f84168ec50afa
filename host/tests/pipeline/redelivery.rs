//! Replaying the whole topic (a consumer group starting from the beginning) applies
//! nothing twice. A new order's `created` event is decided without a read only when no
//! worker was handed it before: never on a replay.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestHost, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_whole_topic_applies_no_transition_twice() {
    let first_config = config("order");
    let mut first = TestHost::start(first_config.clone()).await;
    // One order processed first: from then on the worker holds its partitions, and every
    // new order's `created` event is handed to it for the first time.
    let mut orders = vec![(first.create_order(None).await, 1)];
    let mut messages = 1;
    first
        .wait_for_version(orders[0].0, 1, Duration::from_secs(60))
        .await;
    for n in 0..10 {
        orders.push((first.create_order(None).await, 1));
        messages += 1;
        let body = json!({"customer": format!("r{n}"), "items": [{"sku": "S", "qty": 1, "unit_price": 3.5}]});
        let order_id = first.create_order(Some(&body)).await;
        first
            .post_event(
                order_id,
                "payment_received",
                json!({"amount": 3.5, "payment_id": format!("p-{order_id}")}),
            )
            .await;
        first.post_event(order_id, "shipped", json!({})).await;
        orders.push((order_id, 3));
        messages += 3;
    }
    let mut before = Vec::new();
    for (order_id, version) in &orders {
        first
            .wait_for_version(*order_id, *version, Duration::from_secs(60))
            .await;
        before.push(first.history(*order_id).await);
    }
    let unread_new_orders = first
        .metric("orderpipe_worker_order_states_total{source=\"new\"}")
        .await;
    assert!(
        unread_new_orders >= (orders.len() - 1) as f64,
        "only {unread_new_orders} of {} new orders were decided without a read",
        orders.len() - 1
    );
    first.stop().await;

    // Same topic, a group that has never committed: every message is delivered again.
    let mut replay_config = first_config;
    replay_config.kafka.group_id = format!("{}-replay", replay_config.kafka.group_id);
    let mut replay = TestHost::start(replay_config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = replay.metric("orderpipe_events_redelivered_total").await;
        if seen >= messages as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {messages} messages were replayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ((order_id, version), history) in orders.iter().zip(&before) {
        let view = replay.order(*order_id).await;
        assert_eq!(
            view["version"], *version,
            "{order_id} moved on replay: {view}"
        );
        assert_eq!(
            &replay.history(*order_id).await,
            history,
            "{order_id}: history changed on replay"
        );
    }
    for outcome in ["transitioned", "rejected", "unchanged", "failed"] {
        let sample = format!(
            "orderpipe_events_processed_total{{outcome=\"{outcome}\",pipeline=\"orders\"}}"
        );
        assert_eq!(
            replay.metric(&sample).await,
            0.0,
            "the replay recorded a {outcome} event"
        );
    }
    assert_eq!(
        replay
            .metric("orderpipe_worker_order_states_total{source=\"new\"}")
            .await,
        0.0,
        "a replayed created event was decided without a read"
    );
    println!(
        "{unread_new_orders} new orders decided without a read; replayed {messages} messages: 0 applied again"
    );
    replay.stop().await;
}

/// A second worker joining the group, then the first leaving it, move partitions between
/// them while orders arrive: each worker counts a message as a first delivery only past the
/// log end it read when it was assigned the partition, so every event is applied once and
/// each order's history is its three steps, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_orders_are_decided_once_across_rebalances_in_the_group() {
    let config = config("order");
    let mut first = TestHost::start(config.clone()).await;
    let mut orders = first.post_shipped_orders("a", 10).await;
    let mut second = TestHost::start(config.clone()).await;
    orders.extend(first.post_shipped_orders("b", 10).await);
    for order_id in &orders {
        first
            .wait_for_version(*order_id, 3, Duration::from_secs(90))
            .await;
    }
    let unread = "orderpipe_worker_order_states_total{source=\"new\"}";
    let transitioned =
        "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}";
    let mut decided_unread = first.metric(unread).await + second.metric(unread).await;
    let mut applied = first.metric(transitioned).await;
    first.stop().await;
    orders.extend(second.post_shipped_orders("c", 10).await);
    for order_id in &orders {
        let view = second
            .wait_for_version(*order_id, 3, Duration::from_secs(90))
            .await;
        assert_eq!(view["status"], "shipped", "{order_id}: {view}");
    }
    decided_unread += second.metric(unread).await;
    applied += second.metric(transitioned).await;
    for order_id in &orders {
        let history = second.history(*order_id).await;
        let steps: Vec<(u64, &str, &str)> = history
            .iter()
            .map(|entry| {
                (
                    entry["seq"].as_u64().unwrap_or_default(),
                    entry["from"].as_str().unwrap_or_default(),
                    entry["to"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (1, "created", "awaiting_payment"),
                (2, "awaiting_payment", "paid"),
                (3, "paid", "shipped")
            ],
            "{order_id}"
        );
    }
    // Every event applied (a revoked partition's last events may be decided by both
    // workers, alike, so the count may be higher; the histories above say once each).
    assert!(
        applied >= (orders.len() * 3) as f64,
        "{applied} transitions for {} orders",
        orders.len()
    );
    assert!(
        decided_unread > 0.0,
        "no new order was decided without a read"
    );
    println!(
        "{} orders over two rebalances: {applied} transitions, {decided_unread} new orders decided without a read",
        orders.len()
    );
    second.stop().await;
}
