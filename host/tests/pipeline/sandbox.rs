//! A misbehaving plugin fails its events, not the host; it cannot reach another plugin's
//! rows or keys, files, the environment or the network.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backends, TestHost, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugin_fails_its_events_and_cannot_escape() {
    // The order plugin leaves data behind for a victim customer...
    let order_config = config("order");
    let mut order_host = TestHost::start(order_config.clone()).await;
    let mut backends = Backends::connect(&order_config).await;
    let customer = format!("victim-{}", Uuid::new_v4().simple());
    let body = json!({"customer": customer, "items": [{"sku": "S", "qty": 1, "unit_price": 2.0}]});
    let victim_order = order_host.create_order(Some(&body)).await;
    let payment_id = format!("secret-{}", Uuid::new_v4().simple());
    order_host
        .post_event(
            victim_order,
            "payment_received",
            json!({"amount": 2.0, "payment_id": payment_id}),
        )
        .await;
    order_host
        .wait_for_version(victim_order, 2, Duration::from_secs(60))
        .await;
    let row_key = format!("{customer}/{victim_order}");
    let cache_key = format!("payment:{payment_id}");
    assert!(
        backends
            .plugin_row("order", "orders-by-customer", &row_key)
            .await
            .is_some(),
        "the order plugin's row exists"
    );
    assert!(
        backends
            .plugin_cache_key("order", &cache_key)
            .await
            .is_some(),
        "the order plugin's cache key exists"
    );
    order_host.stop().await;

    // ...and the hostile plugin runs on the same keyspace and Redis prefix.
    let mut hostile_config = config("hostile");
    hostile_config.redis.key_prefix = order_config.redis.key_prefix.clone();
    hostile_config.plugins.limits.fuel = 100_000_000;
    hostile_config.plugins.limits.memory_mib = 16;
    let mut host = TestHost::start(hostile_config).await;
    let order_id = host.create_order(None).await;
    host.wait_for_version(order_id, 1, Duration::from_secs(60))
        .await;

    let attempts: Vec<(&str, Value, &str, &str)> = vec![
        (
            "trap",
            json!({}),
            "failed",
            "hostile plugin trapped on purpose",
        ),
        ("loop", json!({}), "failed", "CPU budget"),
        ("grow_memory", json!({}), "failed", "memory limit of 16 MiB"),
        (
            "illegal_transition",
            json!({}),
            "failed",
            "illegal transition processed -> shipped",
        ),
        (
            "skip_state",
            json!({}),
            "failed",
            "not an allowed transition",
        ),
        ("read_file", json!({}), "rejected", "read_file denied"),
        ("read_env", json!({}), "rejected", "read_env denied"),
        (
            "open_socket",
            json!({"port": 19042}),
            "rejected",
            "open_socket denied",
        ),
        (
            "read_foreign",
            json!({"table": "orders-by-customer", "key": row_key, "cache_key": cache_key}),
            "rejected",
            "store=none, cache=none",
        ),
        ("host_call_flood", json!({}), "rejected", "quota"),
    ];
    for (kind, data, _, _) in &attempts {
        host.post_event(order_id, kind, data.clone()).await;
    }
    let view = host
        .wait_for_version(order_id, 1 + attempts.len() as u64, Duration::from_secs(90))
        .await;
    assert_eq!(view["status"], "processed", "no failure changed the status");
    let history = host.history(order_id).await;
    for ((kind, _, outcome, reason), entry) in attempts.iter().zip(&history[1..]) {
        assert_eq!(entry["event_type"], *kind);
        assert_eq!(entry["outcome"], *outcome, "{kind}: {entry}");
        let recorded = entry["reason"].as_str().unwrap_or_default();
        assert!(
            recorded.contains(reason),
            "{kind}: reason {recorded:?} lacks {reason:?}"
        );
        assert!(!recorded.contains("ESCAPED"), "{kind} escaped: {recorded}");
    }
    assert_eq!(
        host.metric("orderpipe_dead_letters_total{cause=\"plugin_failure\",pipeline=\"orders\"}")
            .await,
        5.0
    );

    // The host goes on: the next order is processed normally.
    let next = host.create_order(None).await;
    let view = host
        .wait_for_version(next, 1, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "processed");
    host.stop().await;
}
