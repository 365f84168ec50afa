//! The consumer loop of one pipeline (each pipeline runs its own, on its own topic). One
//! task per partition processes that partition's events in order
//! (so each order's events stay in order) while partitions proceed concurrently. A message
//! is marked done only after its event is fully handled: at-least-once, with redeliveries
//! made harmless by the processor. While a backend is down the loop pauses the stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::WorkerHealth;
use super::processor::{EventProcessor, Handled, Interrupted, MessageOrigin};
use crate::backend::{Delivery, EventStream};
use crate::telemetry::Metrics;

/// How long a graceful shutdown waits for in-flight events before giving up on them (they
/// are then redelivered to another worker, which is safe).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the loop re-checks whether to pause or resume while no message arrives.
const PAUSE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How long to wait after an event-log error before asking again. Short: librdkafka reports
/// every failed reconnect as an error, and a long pause per error would drain that backlog
/// slowly after the log is back (the next call blocks until there is news anyway).
const STREAM_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How often a persisting event-log error is logged.
const STREAM_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the worker hands each message to. [`EventProcessor`] (the plugin pipeline) is the
/// one the host runs; the benchmarks plug a hand-written native handler into the same loop.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one message to the end; `Err` only when `shutdown` fired first.
    async fn handle(
        &self,
        payload: &[u8],
        origin: &MessageOrigin,
        shutdown: &CancellationToken,
    ) -> Result<Handled, Interrupted>;
    /// The pipeline whose events it handles (for logs).
    fn pipeline(&self) -> &str;
    /// Says whether an event is waiting on a backend (the loop then pauses the stream).
    fn health(&self) -> &WorkerHealth;
    fn metrics(&self) -> &Metrics;
}

#[async_trait::async_trait]
impl EventHandler for EventProcessor {
    async fn handle(
        &self,
        payload: &[u8],
        origin: &MessageOrigin,
        shutdown: &CancellationToken,
    ) -> Result<Handled, Interrupted> {
        EventProcessor::handle(self, payload, origin, shutdown).await
    }

    fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn health(&self) -> &WorkerHealth {
        &self.health
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Consumes until `shutdown` fires, then finishes in-flight events, commits and leaves.
pub async fn run<H: EventHandler>(
    stream: Arc<dyn EventStream>,
    processor: Arc<H>,
    queue_per_partition: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut partitions: HashMap<(String, i32), mpsc::Sender<Delivery>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut last_error_logged: Option<Instant> = None;
    let mut paused = false;
    tracing::info!(pipeline = %processor.pipeline(), "worker started");
    loop {
        paused = update_pause(stream.as_ref(), processor.as_ref(), paused);
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(PAUSE_CHECK_INTERVAL) => continue,
            received = stream.next() => received,
        };
        let delivery = match received {
            Ok(delivery) => delivery,
            Err(error) => {
                // The event log reconnects by itself; say so once in a while, not on every poll.
                if last_error_logged.is_none_or(|at| at.elapsed() >= STREAM_ERROR_LOG_INTERVAL) {
                    tracing::warn!(pipeline = %processor.pipeline(), %error, "event log error; retrying");
                    last_error_logged = Some(Instant::now());
                }
                tokio::select! {
                    _ = tokio::time::sleep(STREAM_ERROR_BACKOFF) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let key = (delivery.topic.clone(), delivery.partition);
        let sender = partitions.entry(key.clone()).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(queue_per_partition.max(1));
            tasks.spawn(process_partition(
                stream.clone(),
                processor.clone(),
                receiver,
                shutdown.clone(),
            ));
            tracing::debug!(topic = %key.0, partition = key.1, "started partition task");
            sender
        });
        tokio::select! {
            sent = sender.send(delivery) => {
                if sent.is_err() {
                    // The task stopped (shutdown); the message is redelivered later.
                    partitions.remove(&key);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }

    tracing::info!(pipeline = %processor.pipeline(), "worker draining in-flight events");
    drop(partitions);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight events did not finish in time; they will be redelivered");
        tasks.abort_all();
    }
    stream.close().await;
    tracing::info!(pipeline = %processor.pipeline(), "worker stopped");
    Ok(())
}

/// Pauses the stream while an event waits on a backend (so the worker stops fetching
/// instead of piling messages up), and resumes once nothing waits any more.
fn update_pause<H: EventHandler>(stream: &dyn EventStream, processor: &H, paused: bool) -> bool {
    let reason = processor.health().paused_because();
    match (&reason, paused) {
        (Some(reason), false) => {
            if let Err(error) = stream.pause() {
                tracing::warn!(%error, "could not pause consumption");
            }
            processor.metrics().worker_paused.set(1);
            tracing::warn!(%reason, "backend outage: consumption paused until it is back");
            true
        }
        (None, true) => {
            if let Err(error) = stream.resume() {
                tracing::warn!(%error, "could not resume consumption");
            }
            processor.metrics().worker_paused.set(0);
            tracing::info!("backends are back: consumption resumed");
            false
        }
        _ => paused,
    }
}

async fn process_partition<H: EventHandler>(
    stream: Arc<dyn EventStream>,
    processor: Arc<H>,
    mut deliveries: mpsc::Receiver<Delivery>,
    shutdown: CancellationToken,
) {
    while let Some(delivery) = deliveries.recv().await {
        if shutdown.is_cancelled() {
            break;
        }
        let origin = MessageOrigin {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
        };
        processor.metrics().worker_in_flight.inc();
        let result = processor
            .handle(&delivery.payload, &origin, &shutdown)
            .await;
        processor.metrics().worker_in_flight.dec();
        match result {
            Ok(_) => {
                if let Err(error) = stream.mark_done(&delivery) {
                    // The partition was revoked meanwhile; its new owner will see the event
                    // again and recognise it as recorded.
                    tracing::debug!(%error, partition = origin.partition, "could not mark done");
                }
            }
            Err(_interrupted) => break,
        }
    }
}
