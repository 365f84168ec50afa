//! With Kafka stopped, POST answers 503 (never 201) and `/readyz` names Kafka; after Kafka
//! restarts, `/readyz` recovers, orders are accepted again within seconds, and every order
//! acknowledged before the outage is processed.
//!
//! Its own test binary: it stops a server that other tests rely on, and cargo runs test
//! binaries one after another.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::{TestHost, config};

fn xtask(args: &[&str]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .status()
        .expect("running cargo xtask");
    assert!(status.success(), "cargo xtask {args:?} failed");
}

/// Restarts Kafka even when the test fails half-way, so later tests find it running.
struct RestartKafkaOnDrop;

impl Drop for RestartKafkaOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            xtask(&["servers", "up", "--only", "kafka"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_kafka_outage_and_posts_fail_fast_with_503() {
    let mut config = config("order");
    config.kafka.produce_timeout_ms = 3_000;
    let mut host = TestHost::start(config).await;

    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        acknowledged.push(host.create_order(None).await);
    }

    let _guard = RestartKafkaOnDrop;
    xtask(&["servers", "kill", "kafka"]);

    for _ in 0..3 {
        let started = Instant::now();
        let response = host
            .http
            .post(host.url("/api/orders"))
            .send()
            .await
            .expect("an answer, not a hang");
        let waited = started.elapsed();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "never 201 while Kafka is down"
        );
        assert!(response.headers().contains_key("retry-after"));
        let answer: serde_json::Value = response.json().await.expect("JSON error");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("kafka"),
            "{answer}"
        );
        assert!(waited < Duration::from_secs(6), "POST took {waited:?}");
    }
    let (status, answer) = host.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("kafka"),
        "{answer}"
    );
    assert_eq!(answer["checks"]["cassandra"], "ok");

    xtask(&["servers", "up", "--only", "kafka"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, _) = host.get("/readyz").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host not ready 90 s after Kafka restarted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A restarted broker names itself leader in its metadata a moment before it takes
    // messages ("not leader for partition"): a POST then may still answer 503 with
    // Retry-After, never 201 for an order it did not keep, and is accepted soon after.
    let accept_deadline = Instant::now() + Duration::from_secs(30);
    let order_id = loop {
        let (status, answer) = host.post_raw("/api/orders", "").await;
        if status == StatusCode::CREATED {
            break answer["order_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("order id");
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert!(
            Instant::now() < accept_deadline,
            "no order accepted 30 s after /readyz said ready: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    acknowledged.push(order_id);
    for order_id in &acknowledged {
        let view = host
            .wait_for_version(*order_id, 1, Duration::from_secs(90))
            .await;
        assert_eq!(view["status"], "processed", "{order_id}");
    }
    println!(
        "{} acknowledged orders, all processed after the Kafka outage",
        acknowledged.len()
    );
    host.stop().await;
}
