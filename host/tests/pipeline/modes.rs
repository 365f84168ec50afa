//! The API and the worker run as separate processes (here: separate hosts) sharing a topic,
//! and a message the worker cannot decode goes to the dead-letter topic without stopping it.

use std::time::Duration;

use orderpipe::config::Mode;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::support::{TestHost, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_only_and_worker_only_hosts_split_the_pipeline() {
    let mut api_config = config("order");
    api_config.mode = Mode::Api;
    let mut worker_config = api_config.clone();
    worker_config.mode = Mode::Worker;

    let mut api = TestHost::start(api_config.clone()).await;
    let mut worker = TestHost::start(worker_config).await;

    // The worker-only host serves health and metrics but no order routes.
    let (status, _) = worker.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = worker
        .get(&format!("/api/orders/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);

    let order_id = api.create_order(None).await;
    let view = api
        .wait_for_version(order_id, 1, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "processed");
    assert_eq!(
        api.metric(
            "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}"
        )
        .await,
        0.0
    );
    assert_eq!(
        worker
            .metric(
                "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}"
            )
            .await,
        1.0
    );

    // Garbage on the topic: dead-lettered, and the worker goes on.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &api_config.kafka.brokers)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(&api_config.kafka.topic)
                .key("garbage")
                .payload("this is not an event"),
            Duration::from_secs(5),
        )
        .await
        .expect("garbage produced");
    let next = api.create_order(None).await;
    api.wait_for_version(next, 1, Duration::from_secs(60)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker
        .metric("orderpipe_dead_letters_total{cause=\"undecodable\",pipeline=\"orders\"}")
        .await
        < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the undecodable message was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    worker.stop().await;
    api.stop().await;
}
