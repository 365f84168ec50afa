//! Replaying the whole topic (a consumer group starting from the beginning) applies
//! nothing twice.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestHost, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_whole_topic_applies_no_transition_twice() {
    let first_config = config("order");
    let mut first = TestHost::start(first_config.clone()).await;
    let mut orders = Vec::new();
    let mut messages = 0;
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
    println!("replayed {messages} messages: 0 applied again");
    replay.stop().await;
}
