//! The event log role: [`EventLog`] (publishing, dead letters) and [`EventStream`] (one
//! consumer group's member), against the embedded log and Kafka.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orderpipe::backend::embedded::EmbeddedEventLog;
use orderpipe::backend::kafka::{KafkaEventLog, KafkaEventStream, ensure_topics};
use orderpipe::backend::{Delivery, EventLog, EventStream};
use orderpipe::config::KafkaConfig;
use uuid::Uuid;

use crate::{bounded, support};

/// The consumer group of the embedded fixture.
const GROUP: &str = "conformance";

/// An event log that can be opened again, like a restarted host: each [`EventLogs::open`]
/// gives a producer and a member of the same consumer group.
pub struct EventLogs {
    backend: Backend,
}

enum Backend {
    /// The data directory (open by one handle at a time, like one process owns it).
    Embedded(tempfile::TempDir),
    Kafka(KafkaConfig),
}

/// A producer and a consumer of one log.
pub struct Opened {
    pub log: Arc<dyn EventLog>,
    pub stream: Arc<dyn EventStream>,
}

impl EventLogs {
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        EventLogs {
            backend: Backend::Embedded(dir),
        }
    }

    pub async fn kafka() -> Self {
        let config = support::config("order").kafka;
        bounded(
            "creating the test topics",
            ensure_topics(&config, std::slice::from_ref(&config.topic)),
        )
        .await
        .expect("Kafka answers (cargo xtask servers up)");
        EventLogs {
            backend: Backend::Kafka(config),
        }
    }

    /// Opens the log and joins the consumer group. Close the stream and drop what the
    /// previous call returned before calling it again.
    pub async fn open(&self) -> Opened {
        match &self.backend {
            Backend::Embedded(dir) => {
                let log = EmbeddedEventLog::open(dir.path(), 6).expect("open the embedded log");
                let stream = log.subscribe(GROUP).expect("subscribe");
                Opened {
                    log: Arc::new(log),
                    stream: Arc::new(stream),
                }
            }
            Backend::Kafka(config) => Opened {
                log: Arc::new(KafkaEventLog::new(config, &config.topic).expect("Kafka producer")),
                stream: Arc::new(
                    KafkaEventStream::subscribe(config, &config.topic).expect("Kafka consumer"),
                ),
            },
        }
    }
}

/// A payload naming its order and sequence number, with bytes that are not UTF-8 so a lossy
/// conversion anywhere would show.
fn payload(order_id: Uuid, n: u32) -> Vec<u8> {
    let mut bytes = format!("{order_id}/{n}/").into_bytes();
    bytes.extend([0x00, 0xff, 0xfe, 0x80]);
    bytes
}

/// The (order id, sequence number) in a [`payload`], checking it arrived intact.
fn parse(delivery: &Delivery) -> (Uuid, u32) {
    let text = String::from_utf8_lossy(&delivery.payload);
    let mut parts = text.split('/');
    let order_id: Uuid = parts
        .next()
        .and_then(|id| id.parse().ok())
        .expect("an order id");
    let n: u32 = parts.next().and_then(|n| n.parse().ok()).expect("a number");
    assert_eq!(delivery.payload, payload(order_id, n), "payload changed");
    (order_id, n)
}

async fn next(stream: &dyn EventStream) -> Delivery {
    bounded("waiting for a delivery", stream.next())
        .await
        .expect("delivery")
}

async fn close(opened: Opened) {
    bounded("closing the stream", opened.stream.close()).await;
}

conformance!(EventLogs { embedded, kafka }:
    publish_delivers_each_orders_events_in_order,
    marked_messages_are_not_delivered_again_after_a_restart,
    dead_letters_are_accepted_and_kept_out_of_the_stream,
    pause_holds_deliveries_back_until_resume,
);

async fn publish_delivers_each_orders_events_in_order(logs: &EventLogs) {
    let opened = logs.open().await;
    bounded("ping", opened.log.ping()).await.expect("ping");
    let orders: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    const EVENTS: u32 = 10;
    for n in 0..EVENTS {
        for &order_id in &orders {
            bounded(
                "publishing",
                opened.log.publish(order_id, &payload(order_id, n)),
            )
            .await
            .expect("publish");
        }
    }
    // order id → (next number expected, its partition, last offset seen)
    let mut seen: HashMap<Uuid, (u32, i32, i64)> = HashMap::new();
    for _ in 0..orders.len() as u32 * EVENTS {
        let delivery = next(opened.stream.as_ref()).await;
        let (order_id, n) = parse(&delivery);
        assert!(orders.contains(&order_id), "a message of another test");
        let (expected, partition, offset) =
            seen.entry(order_id)
                .or_insert((0, delivery.partition, delivery.offset - 1));
        assert_eq!(n, *expected, "order {order_id}'s events out of order");
        assert_eq!(delivery.partition, *partition, "one order, one partition");
        assert!(delivery.offset > *offset, "offsets grow within a partition");
        *expected += 1;
        *offset = delivery.offset;
    }
    assert!(seen.values().all(|(next, _, _)| *next == EVENTS));
    close(opened).await;
}

async fn marked_messages_are_not_delivered_again_after_a_restart(logs: &EventLogs) {
    let order_id = Uuid::new_v4();
    let opened = logs.open().await;
    for n in 0..6 {
        bounded(
            "publishing",
            opened.log.publish(order_id, &payload(order_id, n)),
        )
        .await
        .expect("publish");
    }
    for n in 0..4 {
        let delivery = next(opened.stream.as_ref()).await;
        assert_eq!(parse(&delivery), (order_id, n));
        // The fourth message was delivered but not handled: it must come again.
        if n < 3 {
            opened.stream.mark_done(&delivery).expect("mark done");
        }
    }
    close(opened).await;

    let opened = logs.open().await;
    for n in 3..6 {
        let delivery = next(opened.stream.as_ref()).await;
        assert_eq!(
            parse(&delivery),
            (order_id, n),
            "resumed at the wrong message"
        );
        opened.stream.mark_done(&delivery).expect("mark done");
    }
    close(opened).await;
}

async fn dead_letters_are_accepted_and_kept_out_of_the_stream(logs: &EventLogs) {
    let order_id = Uuid::new_v4();
    let opened = logs.open().await;
    bounded(
        "publishing a dead letter",
        opened
            .log
            .publish_dead_letter(Some(order_id), b"{\"reason\":\"test\"}"),
    )
    .await
    .expect("dead letter with an order id");
    bounded(
        "publishing a dead letter",
        opened.log.publish_dead_letter(None, &[0xff, 0x00]),
    )
    .await
    .expect("dead letter without an order id");
    bounded(
        "publishing",
        opened.log.publish(order_id, &payload(order_id, 0)),
    )
    .await
    .expect("publish");
    assert_eq!(parse(&next(opened.stream.as_ref()).await), (order_id, 0));
    let more = tokio::time::timeout(Duration::from_secs(2), opened.stream.next()).await;
    assert!(more.is_err(), "a dead letter reached the stream: {more:?}");
    close(opened).await;
}

async fn pause_holds_deliveries_back_until_resume(logs: &EventLogs) {
    let order_id = Uuid::new_v4();
    let opened = logs.open().await;
    bounded(
        "publishing",
        opened.log.publish(order_id, &payload(order_id, 0)),
    )
    .await
    .expect("publish");
    // The first delivery also means the member has its partitions (Kafka pauses those).
    assert_eq!(parse(&next(opened.stream.as_ref()).await), (order_id, 0));

    opened.stream.pause().expect("pause");
    bounded(
        "publishing",
        opened.log.publish(order_id, &payload(order_id, 1)),
    )
    .await
    .expect("publish");
    let held = tokio::time::timeout(Duration::from_secs(3), opened.stream.next()).await;
    assert!(held.is_err(), "a paused stream delivered: {held:?}");

    opened.stream.resume().expect("resume");
    assert_eq!(parse(&next(opened.stream.as_ref()).await), (order_id, 1));
    close(opened).await;
}
