//! The consumer loop. One task per partition processes that partition's events in order
//! (so each order's events stay in order) while partitions proceed concurrently. An
//! offset is stored only after its event is fully handled, and committed from there:
//! at-least-once, with redeliveries made harmless by the processor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::processor::{EventProcessor, MessageOrigin};

/// How long a graceful shutdown waits for in-flight events before giving up on them (they
/// are then redelivered to another worker, which is safe).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the loop re-checks whether to pause or resume while no message arrives.
const PAUSE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How often a persisting consumer error is logged.
const CONSUMER_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Consumes until `shutdown` fires, then finishes in-flight events, commits and leaves.
pub async fn run(
    consumer: Arc<StreamConsumer>,
    processor: Arc<EventProcessor>,
    queue_per_partition: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut partitions: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut last_error_logged: Option<std::time::Instant> = None;
    let mut paused = false;
    tracing::info!("worker started");
    loop {
        paused = update_pause(&consumer, &processor, paused);
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(PAUSE_CHECK_INTERVAL) => continue,
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(message) => message.detach(),
            Err(error) => {
                // librdkafka reconnects by itself; say so once in a while, not on every poll.
                if last_error_logged.is_none_or(|at| at.elapsed() >= CONSUMER_ERROR_LOG_INTERVAL) {
                    tracing::warn!(%error, "consumer error; librdkafka keeps reconnecting");
                    last_error_logged = Some(std::time::Instant::now());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let key = (message.topic().to_owned(), message.partition());
        let sender = partitions.entry(key.clone()).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(queue_per_partition.max(1));
            tasks.spawn(process_partition(
                consumer.clone(),
                processor.clone(),
                receiver,
                shutdown.clone(),
            ));
            tracing::debug!(topic = %key.0, partition = key.1, "started partition task");
            sender
        });
        tokio::select! {
            sent = sender.send(message) => {
                if sent.is_err() {
                    // The task stopped (shutdown); the message is redelivered later.
                    partitions.remove(&key);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }

    tracing::info!("worker draining in-flight events");
    drop(partitions);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight events did not finish in time; they will be redelivered");
        tasks.abort_all();
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is also reported as an error; harmless.
        tracing::debug!(%error, "final offset commit");
    }
    consumer.unsubscribe();
    tracing::info!("worker stopped");
    Ok(())
}

/// Pauses every assigned partition while an event waits on a backend (so the worker stops
/// fetching instead of piling messages up), and resumes once nothing waits any more.
fn update_pause(consumer: &StreamConsumer, processor: &EventProcessor, paused: bool) -> bool {
    let reason = processor.health.paused_because();
    match (&reason, paused) {
        (Some(reason), false) => {
            if let Ok(assignment) = consumer.assignment()
                && let Err(error) = consumer.pause(&assignment)
            {
                tracing::warn!(%error, "could not pause consumption");
            }
            processor.metrics.worker_paused.set(1);
            tracing::warn!(%reason, "backend outage: consumption paused until it is back");
            true
        }
        (None, true) => {
            if let Ok(assignment) = consumer.assignment()
                && let Err(error) = consumer.resume(&assignment)
            {
                tracing::warn!(%error, "could not resume consumption");
            }
            processor.metrics.worker_paused.set(0);
            tracing::info!("backends are back: consumption resumed");
            false
        }
        _ => paused,
    }
}

async fn process_partition(
    consumer: Arc<StreamConsumer>,
    processor: Arc<EventProcessor>,
    mut messages: mpsc::Receiver<OwnedMessage>,
    shutdown: CancellationToken,
) {
    while let Some(message) = messages.recv().await {
        if shutdown.is_cancelled() {
            break;
        }
        let origin = MessageOrigin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        processor.metrics.worker_in_flight.inc();
        let result = processor
            .handle(message.payload().unwrap_or_default(), &origin, &shutdown)
            .await;
        processor.metrics.worker_in_flight.dec();
        match result {
            Ok(_) => {
                if let Err(error) =
                    consumer.store_offset(&origin.topic, origin.partition, origin.offset)
                {
                    // The partition was revoked meanwhile; its new owner will see the event
                    // again and recognise it as recorded.
                    tracing::debug!(%error, partition = origin.partition, "could not store offset");
                }
            }
            Err(_interrupted) => break,
        }
    }
}
