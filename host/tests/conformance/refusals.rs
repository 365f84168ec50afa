//! Refusals are not outages, on the real servers: a request Cassandra or Kafka refuses as such
//! (too large) comes back as [`BackendError::Invalid`], so the worker fails that one event
//! instead of retrying it forever; and the server goes on serving the next request. Only the
//! servers refuse these (the embedded backends take any size), so there is no embedded case.

use orderpipe::backend::kafka::{KafkaEventLog, ensure_topics};
use orderpipe::backend::{Applied, BackendError, EventLog};
use uuid::Uuid;

use crate::order_store::{Stores, advanced, entry_for, new_order};
use crate::{bounded, support};

/// Past Cassandra's 16 MiB `native_transport_max_frame_size` and Kafka's 1 MB
/// `message.max.bytes` alike.
const TOO_LARGE: usize = 20 * 1024 * 1024;

fn is_refusal(result: &Result<impl std::fmt::Debug, BackendError>) -> bool {
    matches!(result, Err(BackendError::Invalid(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_refuses_a_too_large_write_and_serves_the_next() {
    let stores = Stores::cassandra().await;
    let order = new_order();
    bounded("creating", stores.orders.create_order(&order))
        .await
        .expect("create");

    let mut huge = advanced(&order, "paid");
    huge.attributes.insert(
        "blob".into(),
        serde_json::Value::String("x".repeat(TOO_LARGE)),
    );
    let entry = entry_for(&order, &huge, orderpipe::order::Outcome::Transitioned);
    let refused = bounded(
        "a too-large record",
        stores.orders.record_event(&huge, 0, &entry),
    )
    .await;
    assert!(
        is_refusal(&refused),
        "a refusal, not an outage: {refused:?}"
    );
    let reason = format!("{:?}", refused.unwrap_err());
    assert!(
        reason.contains("too big") || reason.contains("refused"),
        "{reason}"
    );

    let plugin_write = bounded(
        "a too-large plugin write",
        stores
            .plugins
            .put("refusals", "t", "k", &"x".repeat(TOO_LARGE)),
    )
    .await;
    assert!(is_refusal(&plugin_write), "{plugin_write:?}");

    // The store goes on: the same order advances normally right after.
    let next = advanced(&order, "paid");
    let entry = entry_for(&order, &next, orderpipe::order::Outcome::Transitioned);
    let applied = bounded(
        "the next record",
        stores.orders.record_event(&next, 0, &entry),
    )
    .await
    .expect("Cassandra serves the next request");
    assert_eq!(applied, Applied::Yes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_refuses_a_too_large_message_and_serves_the_next() {
    let config = support::config("order").kafka;
    bounded(
        "creating topics",
        ensure_topics(&config, std::slice::from_ref(&config.topic)),
    )
    .await
    .expect("topics");
    let log = KafkaEventLog::new(&config, &config.topic).expect("producer");
    let refused = bounded(
        "a too-large message",
        log.publish(Uuid::new_v4(), &vec![b'x'; TOO_LARGE]),
    )
    .await;
    assert!(
        is_refusal(&refused),
        "a refusal, not an outage: {refused:?}"
    );
    let refused_letter = bounded(
        "a too-large dead letter",
        log.publish_dead_letter(None, &vec![b'x'; TOO_LARGE]),
    )
    .await;
    assert!(is_refusal(&refused_letter), "{refused_letter:?}");
    bounded("the next message", log.publish(Uuid::new_v4(), b"{}"))
        .await
        .expect("Kafka serves the next message");
}
