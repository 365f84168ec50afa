//! Kafka: the event log. The API produces here (idempotent producer, `acks=all`, keyed by
//! order id so one order's events stay in order on one partition); the worker consumes with
//! a consumer group. Topics are created at start-up when missing. Each pipeline has its own
//! topic; every pipeline's dead letters go to the one dead-letter topic (the
//! [`DeadLetter`](crate::pipeline::message::DeadLetter) names the pipeline and topic).
//! Which deliveries no member has been handed before is [`first_deliveries`]' question.

pub mod first_deliveries;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use uuid::Uuid;

use super::{BackendError, BackendResult, Delivery, EventLog, EventStream};
use crate::config::KafkaConfig;
use first_deliveries::FirstDeliveries;

const BACKEND: &str = "kafka";

fn unavailable(err: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, err)
}

/// How often librdkafka reports the producer's statistics, from which readiness learns
/// whether the idempotent producer holds a producer id.
const PRODUCER_STATISTICS_INTERVAL: Duration = Duration::from_secs(1);
/// The idempotent producer's state in which it can send (librdkafka's `eos.idemp_state`).
const PRODUCER_ID_ASSIGNED: &str = "Assigned";

/// The producer's client context: keeps the idempotent producer's state from librdkafka's
/// statistics. After a broker restart (or messages that timed out) the producer must get a
/// producer id again before it sends anything, and a restarted broker may answer "coordinator
/// load in progress" for many seconds: metadata alone would call the log ready meanwhile,
/// and a POST would wait for its timeout and answer 503.
/// Cloned into the producer; the event log keeps a clone to read it (librdkafka's wrapper
/// around a future producer's context does not give the context back).
#[derive(Clone, Default)]
pub struct ProducerState {
    idempotence: Arc<Mutex<Option<String>>>,
}

#[derive(serde::Deserialize)]
struct ProducerStatistics {
    eos: Option<IdempotenceStatistics>,
}

#[derive(serde::Deserialize)]
struct IdempotenceStatistics {
    idemp_state: String,
}

impl ProducerState {
    /// The idempotent producer's last reported state; `None` before the first report.
    fn idempotence(&self) -> Option<String> {
        self.idempotence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientContext for ProducerState {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(ProducerStatistics { eos: Some(eos) }) = serde_json::from_slice(statistics) else {
            return;
        };
        let mut state = self.idempotence.lock().unwrap_or_else(|e| e.into_inner());
        if state.as_deref() != Some(eos.idemp_state.as_str()) {
            tracing::info!(state = %eos.idemp_state, "kafka producer: idempotent producer state");
            *state = Some(eos.idemp_state);
        }
    }
}

/// The producing side of the event log, for one pipeline's topic.
#[derive(Clone)]
pub struct KafkaEventLog {
    producer: FutureProducer<ProducerState>,
    producer_state: ProducerState,
    topic: String,
    dead_letter_topic: String,
    timeout: Duration,
}

impl KafkaEventLog {
    /// A producer publishing to `topic` (and dead letters to `kafka.dead_letter_topic`).
    pub fn new(config: &KafkaConfig, topic: &str) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.produce_timeout_ms.max(1));
        let producer_state = ProducerState::default();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            // A POST waits at most this long for the acknowledgement, then answers 503.
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("socket.connection.setup.timeout.ms", "3000")
            .set("reconnect.backoff.max.ms", "1000")
            .set(
                "statistics.interval.ms",
                PRODUCER_STATISTICS_INTERVAL.as_millis().to_string(),
            )
            .create_with_context(producer_state.clone())?;
        Ok(Self {
            producer,
            producer_state,
            topic: topic.to_owned(),
            dead_letter_topic: config.dead_letter_topic.clone(),
            timeout,
        })
    }

    /// The same producer (one connection pool) publishing to another pipeline's `topic`.
    pub fn for_topic(&self, topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            ..self.clone()
        }
    }

    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> BackendResult<()> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let delivery = self.producer.send(record, Timeout::After(self.timeout));
        // message.timeout.ms bounds delivery, but librdkafka scans for timed-out messages
        // about once a second; this outer bound (the same timeout) keeps the promise exactly
        // and also covers a full queue. A message it gives up on may still be delivered: the
        // API's 503 says the outcome is unknown.
        match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _message))) => Err(refusal_or_outage(error)),
            Err(_) => Err(unavailable(format!(
                "no acknowledgement within {:?}",
                self.timeout
            ))),
        }
    }
}

/// A failed publish as the caller must treat it: a message the broker (or the client) refuses
/// as such (too large, an invalid record) would be refused again, so it is
/// [`BackendError::Invalid`]; anything else (no broker, a timeout, a full queue) is an outage.
fn refusal_or_outage(error: KafkaError) -> BackendError {
    let code = match &error {
        KafkaError::MessageProduction(code) => Some(*code),
        _ => error.rdkafka_error_code(),
    };
    match code {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord,
        ) => BackendError::Invalid(format!("kafka refused the message: {error}")),
        _ => unavailable(error),
    }
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn publish(&self, order_id: Uuid, payload: &[u8]) -> BackendResult<()> {
        self.send(&self.topic, &order_id.to_string(), payload).await
    }

    async fn publish_dead_letter(
        &self,
        order_id: Option<Uuid>,
        payload: &[u8],
    ) -> BackendResult<()> {
        let key = order_id.map(|id| id.to_string()).unwrap_or_default();
        self.send(&self.dead_letter_topic, &key, payload).await
    }

    /// Ready means a message could be delivered now: the idempotent producer holds a producer
    /// id, the broker answers and every partition of the topic has a leader. A broker that has
    /// just restarted answers metadata requests before it leads its partitions again, and
    /// before it can hand out producer ids; a message sent then times out.
    async fn ping(&self) -> BackendResult<()> {
        // Unknown until the first statistics (a second after start): metadata decides alone.
        if let Some(state) = self.producer_state.idempotence()
            && state != PRODUCER_ID_ASSIGNED
        {
            return Err(unavailable(format!(
                "the idempotent producer has no producer id yet (state {state})"
            )));
        }
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map_err(unavailable)?;
            let (found, brokers) = TopicLeaders::of(&metadata, &topic);
            leaderless_partition(&topic, found.as_ref(), &brokers)
                .map_or(Ok(()), |problem| Err(unavailable(problem)))
        })
        .await
        .map_err(unavailable)?
    }
}

/// What readiness needs of one topic from the broker's metadata.
#[derive(Debug, Clone)]
struct TopicLeaders {
    /// The topic's own error, if any.
    error: Option<RDKafkaErrorCode>,
    partitions: Vec<PartitionLeader>,
}

#[derive(Debug, Clone)]
struct PartitionLeader {
    id: i32,
    /// The leading broker's id (-1: none).
    leader: i32,
    error: Option<RDKafkaErrorCode>,
}

impl TopicLeaders {
    /// `topic` as `metadata` describes it (`None`: not in it), and the brokers it lists.
    fn of(metadata: &Metadata, topic: &str) -> (Option<TopicLeaders>, Vec<i32>) {
        let found = metadata
            .topics()
            .iter()
            .find(|found| found.name() == topic)
            .map(|found| TopicLeaders {
                error: found.error().map(RDKafkaErrorCode::from),
                partitions: found
                    .partitions()
                    .iter()
                    .map(|partition| PartitionLeader {
                        id: partition.id(),
                        leader: partition.leader(),
                        error: partition.error().map(RDKafkaErrorCode::from),
                    })
                    .collect(),
            });
        let brokers = metadata
            .brokers()
            .iter()
            .map(|broker| broker.id())
            .collect();
        (found, brokers)
    }
}

/// Why `topic` cannot take a message now: it is missing from the metadata or in error, has
/// no partitions yet, or one of its partitions has no leader among `brokers`.
fn leaderless_partition(
    topic: &str,
    found: Option<&TopicLeaders>,
    brokers: &[i32],
) -> Option<String> {
    let Some(found) = found else {
        return Some(format!("topic {topic} is not in the broker's metadata"));
    };
    if let Some(error) = found.error {
        return Some(format!("topic {topic}: {error:?}"));
    }
    if found.partitions.is_empty() {
        return Some(format!("topic {topic} has no partitions yet"));
    }
    found
        .partitions
        .iter()
        .find(|partition| partition.error.is_some() || !brokers.contains(&partition.leader))
        .map(|partition| {
            format!(
                "topic {topic} partition {} has no leader (leader {}, error {:?})",
                partition.id, partition.leader, partition.error
            )
        })
}

/// Creates the pipelines' event topics and the dead-letter topic unless they exist.
pub async fn ensure_topics(config: &KafkaConfig, event_topics: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("socket.connection.setup.timeout.ms", "3000")
        .create()?;
    let topics: Vec<NewTopic> = event_topics
        .iter()
        .chain([&config.dead_letter_topic])
        .map(|topic| {
            NewTopic::new(
                topic,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.create_topics(&topics, &options),
    )
    .await
    .map_err(|_| anyhow::anyhow!("Kafka at {} did not answer within 30 s", config.brokers))??;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions = config.partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// A consumer in the configured group, subscribed to one pipeline's topic. Offsets are stored
/// only when the worker marks an event done, and committed from there.
pub struct KafkaEventStream {
    consumer: StreamConsumer<AssignmentContext>,
}

impl KafkaEventStream {
    pub fn subscribe(config: &KafkaConfig, topic: &str) -> anyhow::Result<Self> {
        Ok(Self {
            consumer: consumer(config, topic)?,
        })
    }
}

/// How long a rebalance may spend reading the log ends of the partitions it assigned (a
/// `ListOffsets` round each, on the consumer's thread, asked again while the broker has no
/// leader for a new topic); a partition whose log end is not read in time hands out no first
/// deliveries in this assignment (its new orders are read first).
const LOG_END_READ_BUDGET: Duration = Duration::from_secs(2);
/// The pause before asking again for a log end the broker could not answer.
const LOG_END_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The consumer's context: follows its assignments to tell first deliveries
/// ([`FirstDeliveries`]).
#[derive(Default)]
struct AssignmentContext {
    first_deliveries: FirstDeliveries,
}

impl ClientContext for AssignmentContext {}

impl ConsumerContext for AssignmentContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let deadline = std::time::Instant::now() + LOG_END_READ_BUDGET;
                for element in partitions.elements() {
                    let partition = element.partition();
                    let number = self.first_deliveries.assigned(partition);
                    match read_log_end(consumer, element.topic(), partition, deadline) {
                        Ok(log_end) => self
                            .first_deliveries
                            .log_end_read(partition, number, log_end),
                        Err(error) => tracing::warn!(
                            partition,
                            error = ?error,
                            "could not read the log end in time; new orders on this partition are read first until it is assigned again"
                        ),
                    }
                }
            }
            Rebalance::Revoke(partitions) => {
                for element in partitions.elements() {
                    self.first_deliveries.revoked(element.partition());
                }
            }
            Rebalance::Error(_) => self.first_deliveries.forget_all(),
        }
    }
}

/// The log end of `topic`'s `partition`, asked again until `deadline` while the broker
/// cannot answer (a topic just created has no leader for a moment: "not leader for
/// partition"); the last error (`None` if there was no time to ask) otherwise.
fn read_log_end(
    consumer: &BaseConsumer<AssignmentContext>,
    topic: &str,
    partition: i32,
    deadline: std::time::Instant,
) -> Result<i64, Option<KafkaError>> {
    let mut last_error = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(last_error);
        }
        match consumer.fetch_watermarks(topic, partition, left) {
            Ok((_, log_end)) => return Ok(log_end),
            Err(error) => {
                last_error = Some(error);
                std::thread::sleep(LOG_END_RETRY_PAUSE.min(left));
            }
        }
    }
}

#[async_trait]
impl EventStream for KafkaEventStream {
    async fn next(&self) -> BackendResult<Delivery> {
        let message = self.consumer.recv().await.map_err(unavailable)?;
        Ok(Delivery {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().unwrap_or_default().to_vec(),
            first_delivery: self
                .consumer
                .context()
                .first_deliveries
                .first_delivery(message.partition(), message.offset()),
        })
    }

    fn mark_done(&self, delivery: &Delivery) -> BackendResult<()> {
        // librdkafka stores offset + 1: the next message to read.
        self.consumer
            .store_offset(&delivery.topic, delivery.partition, delivery.offset)
            .map_err(unavailable)
    }

    fn pause(&self) -> BackendResult<()> {
        let assignment = self.consumer.assignment().map_err(unavailable)?;
        self.consumer.pause(&assignment).map_err(unavailable)
    }

    fn resume(&self) -> BackendResult<()> {
        let assignment = self.consumer.assignment().map_err(unavailable)?;
        self.consumer.resume(&assignment).map_err(unavailable)
    }

    fn pause_partition(&self, topic: &str, partition: i32) -> BackendResult<bool> {
        // librdkafka drops what it prefetched for the partition and, on resume, fetches from
        // the message after the last one it handed out: nothing is skipped or repeated.
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        self.consumer.pause(&list).map_err(unavailable)?;
        Ok(true)
    }

    fn resume_partition(&self, topic: &str, partition: i32) -> BackendResult<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        self.consumer.resume(&list).map_err(unavailable)
    }

    async fn close(&self) {
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // "Nothing to commit" is reported as an error too; harmless.
            tracing::debug!(%error, "final offset commit");
        }
        self.consumer.unsubscribe();
    }
}

fn consumer(
    config: &KafkaConfig,
    topic: &str,
) -> anyhow::Result<StreamConsumer<AssignmentContext>> {
    let mut client_config = ClientConfig::new();
    if let Some(instance_id) = &config.instance_id {
        // Each pipeline's consumer is its own group member and static ids must be unique in
        // a group: the legacy topic keeps the configured id, other topics get it suffixed.
        let member = if topic == config.topic {
            instance_id.clone()
        } else {
            format!("{instance_id}-{topic}")
        };
        client_config.set("group.instance.id", member);
    }
    let consumer: StreamConsumer<AssignmentContext> = client_config
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        // A new group starts at the beginning: orders produced before any worker ran are processed.
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("reconnect.backoff.max.ms", "1000")
        .create_with_context(AssignmentContext::default())?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(id: i32, leader: i32) -> PartitionLeader {
        PartitionLeader {
            id,
            leader,
            error: None,
        }
    }

    fn topic(partitions: Vec<PartitionLeader>) -> TopicLeaders {
        TopicLeaders {
            error: None,
            partitions,
        }
    }

    #[test]
    fn a_topic_whose_partitions_all_have_a_listed_leader_is_ready() {
        let found = topic(vec![partition(0, 1), partition(1, 2)]);
        assert_eq!(leaderless_partition("orders", Some(&found), &[1, 2]), None);
    }

    #[test]
    fn a_partition_without_a_leader_names_itself() {
        // A restarted broker answers metadata before it leads its partitions again.
        let found = topic(vec![partition(0, 1), partition(1, -1)]);
        let problem = leaderless_partition("orders", Some(&found), &[1]).expect("not ready");
        assert!(
            problem.contains("topic orders partition 1 has no leader (leader -1"),
            "{problem}"
        );
    }

    #[test]
    fn a_leader_missing_from_the_broker_list_is_no_leader() {
        let found = topic(vec![partition(0, 3)]);
        let problem = leaderless_partition("orders", Some(&found), &[1]).expect("not ready");
        assert!(
            problem.contains("partition 0 has no leader (leader 3"),
            "{problem}"
        );
    }

    #[test]
    fn a_partition_in_error_is_not_ready_even_with_a_leader() {
        let mut broken = partition(2, 1);
        broken.error = Some(RDKafkaErrorCode::LeaderNotAvailable);
        let found = topic(vec![partition(0, 1), broken]);
        let problem = leaderless_partition("orders", Some(&found), &[1]).expect("not ready");
        assert!(problem.contains("partition 2"), "{problem}");
        assert!(problem.contains("LeaderNotAvailable"), "{problem}");
    }

    #[test]
    fn a_missing_topic_in_error_or_without_partitions_is_not_ready() {
        assert_eq!(
            leaderless_partition("orders", None, &[1]).as_deref(),
            Some("topic orders is not in the broker's metadata")
        );
        let mut in_error = topic(vec![partition(0, 1)]);
        in_error.error = Some(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(
            leaderless_partition("orders", Some(&in_error), &[1]).as_deref(),
            Some("topic orders: UnknownTopicOrPartition")
        );
        assert_eq!(
            leaderless_partition("orders", Some(&topic(Vec::new())), &[1]).as_deref(),
            Some("topic orders has no partitions yet")
        );
    }
}
