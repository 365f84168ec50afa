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

/// With one batch in flight, writes arriving meanwhile share the next request: each lands as
/// if sent alone, and a too-large one among them is refused without taking the others along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sharing_a_batch_each_land_and_a_refused_one_fails_alone() {
    let mut config = support::config("order").cassandra;
    config.batches_in_flight = 1;
    let stores = Stores::cassandra_with(config).await;
    let orders: Vec<_> = (0..24).map(|_| new_order()).collect();
    let mut writes = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let next = advanced(order, "paid");
        let entry = entry_for(order, &next, orderpipe::order::Outcome::Transitioned);
        let basis = orderpipe::backend::StoredOrder::not_stored(order.clone());
        let store = stores.orders.clone();
        let plugins = stores.plugins.clone();
        writes.push(tokio::spawn(async move {
            let recorded = store.record_next_event(&basis, &next, &entry).await;
            let value = if n == 7 {
                "x".repeat(TOO_LARGE)
            } else {
                format!("value {n}")
            };
            let put = plugins.put("batching", "t", &format!("k{n}"), &value).await;
            (recorded, put)
        }));
    }
    for (n, write) in writes.into_iter().enumerate() {
        let (recorded, put) = bounded("a write", write).await.expect("task");
        recorded.unwrap_or_else(|e| panic!("order {n} not recorded: {e}"));
        if n == 7 {
            assert!(is_refusal(&put), "{put:?}");
        } else {
            put.unwrap_or_else(|e| panic!("plugin write {n} failed: {e}"));
        }
    }
    for (n, order) in orders.iter().enumerate() {
        let stored = bounded("loading", stores.orders.load_order(order.id))
            .await
            .expect("load")
            .expect("stored");
        assert_eq!(stored.order.status, "paid", "order {n}");
        let value = bounded(
            "reading",
            stores.plugins.get("batching", "t", &format!("k{n}")),
        )
        .await
        .expect("get");
        let expected = (n != 7).then(|| format!("value {n}"));
        assert_eq!(value, expected, "plugin row {n}");
    }
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
