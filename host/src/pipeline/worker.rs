//! The consumer loop of one pipeline (each pipeline runs its own, on its own topic). One
//! task per partition takes that partition's messages in order and handles up to
//! `events_in_flight` of them at once, one at a time per sequence key (the order id: each
//! order's events stay in order), while partitions proceed concurrently. A message is
//! marked done only once it and every message before it on its partition are fully handled:
//! at-least-once, with redeliveries made harmless by the processor. While a backend is down
//! the loop pauses the stream.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::WorkerHealth;
use super::processor::{EventProcessor, Handled, Interrupted, MessageOrigin};
use crate::backend::{Delivery, EventStream};
use crate::config::WorkerConfig;
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
    /// Called for each message in its partition's order, before it is handled: messages
    /// with the same key are handled one after another, in order; messages with different
    /// keys may be handled at once. `None` (the default) shares one key with every other
    /// `None`: a handler that answers only `None` sees its partition's messages one by one.
    fn sequence_key(&self, _payload: &[u8], _origin: &MessageOrigin) -> Option<u128> {
        None
    }
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

    fn sequence_key(&self, payload: &[u8], origin: &MessageOrigin) -> Option<u128> {
        EventProcessor::sequence_key(self, payload, origin)
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

/// How much the consumer loop holds for one partition ahead of its task before it pauses
/// that partition at the stream: whichever bound is reached first.
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    /// Messages (`worker.partition_queue`).
    pub messages: usize,
    /// Payload bytes (`worker.partition_queue_bytes`).
    pub bytes: usize,
}

impl QueueBounds {
    pub fn of(config: &WorkerConfig) -> Self {
        Self {
            messages: config.partition_queue,
            bytes: config.partition_queue_bytes,
        }
    }
}

/// One partition as the consumer loop sees it: the channel to its task, the messages that
/// did not fit in it yet (in order) and their payload bytes, and whether the stream is
/// paused for it.
struct PartitionQueue {
    sender: mpsc::Sender<Delivery>,
    backlog: VecDeque<Delivery>,
    backlog_bytes: usize,
    flow_paused: bool,
}

impl PartitionQueue {
    fn push(&mut self, delivery: Delivery) {
        self.backlog_bytes += delivery.payload.len();
        self.backlog.push_back(delivery);
    }

    /// Moves backlog into the channel while it has room. `false`: the task is gone (shutdown).
    fn flush(&mut self) -> bool {
        while let Some(delivery) = self.backlog.pop_front() {
            let bytes = delivery.payload.len();
            match self.sender.try_send(delivery) {
                Ok(()) => self.backlog_bytes -= bytes,
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    self.backlog.push_front(delivery);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    self.backlog_bytes = 0;
                    return false;
                }
            }
        }
        true
    }

    fn is_full(&self, bounds: QueueBounds) -> bool {
        self.backlog.len() >= bounds.messages || self.backlog_bytes >= bounds.bytes
    }
}

/// Consumes until `shutdown` fires, then finishes in-flight events, commits and leaves.
///
/// The loop never waits for one partition's task: a message that does not fit in its
/// partition's channel (room for `events_in_flight` messages) waits in that partition's
/// backlog, and a partition whose backlog reaches either of `bounds` is paused at the stream
/// until its backlog has all moved to the channel. (Waiting for room instead let the first
/// partition of a prefetched batch hold every other one back: the partitions then ran one
/// after another, not concurrently.) The backlog is deep on purpose: a partition resumed at
/// the stream delivers again only after a new fetch (measured: about half a second with
/// librdkafka), and its task must not run dry meanwhile.
pub async fn run<H: EventHandler>(
    stream: Arc<dyn EventStream>,
    processor: Arc<H>,
    bounds: QueueBounds,
    events_in_flight: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bounds = QueueBounds {
        messages: bounds.messages.max(1),
        bytes: bounds.bytes.max(1),
    };
    let events_in_flight = events_in_flight.max(1);
    let mut partitions: HashMap<(String, i32), PartitionQueue> = HashMap::new();
    // Signalled by a partition task each time it takes a message (its channel has room).
    let room = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let mut last_error_logged: Option<Instant> = None;
    let mut paused = false;
    tracing::info!(pipeline = %processor.pipeline(), "worker started");
    'consume: loop {
        let was_paused = paused;
        paused = update_pause(stream.as_ref(), processor.as_ref(), paused);
        if was_paused && !paused {
            // Resuming the stream resumed every partition; backlogs pause theirs again below.
            for queue in partitions.values_mut() {
                queue.flow_paused = false;
            }
        }
        let mut any_backlog = false;
        for (key, queue) in partitions.iter_mut() {
            if !queue.flush() {
                continue;
            }
            if !queue.backlog.is_empty() {
                any_backlog = true;
            } else if queue.flow_paused && !paused {
                if let Err(error) = stream.resume_partition(&key.0, key.1) {
                    tracing::warn!(%error, partition = key.1, "could not resume a partition");
                }
                queue.flow_paused = false;
            }
        }
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = room.notified(), if any_backlog => continue,
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
        let queue = partitions.entry(key.clone()).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(events_in_flight);
            tasks.spawn(process_partition(
                stream.clone(),
                processor.clone(),
                receiver,
                room.clone(),
                events_in_flight,
                shutdown.clone(),
            ));
            tracing::debug!(topic = %key.0, partition = key.1, "started partition task");
            PartitionQueue {
                sender,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                flow_paused: false,
            }
        });
        queue.push(delivery);
        if !queue.flush() {
            // The task stopped (shutdown); the message is redelivered later.
            partitions.remove(&key);
            continue;
        }
        if !queue.is_full(bounds) {
            continue;
        }
        // Paused again even if paused before: a message arriving means the partition is
        // fetching after all (e.g. it was revoked and assigned again meanwhile).
        match stream.pause_partition(&key.0, key.1) {
            Ok(true) => queue.flow_paused = true,
            other => {
                if let Err(error) = other {
                    tracing::warn!(%error, partition = key.1, "could not pause a partition");
                }
                // This log cannot pause one partition: wait for room, as a bounded queue does.
                while queue.is_full(bounds) {
                    let reserved = tokio::select! {
                        permit = queue.sender.reserve() => permit,
                        _ = shutdown.cancelled() => break 'consume,
                    };
                    match reserved {
                        Ok(permit) => {
                            if let Some(delivery) = queue.backlog.pop_front() {
                                queue.backlog_bytes -= delivery.payload.len();
                                permit.send(delivery);
                            }
                        }
                        Err(_) => {
                            // The task stopped (shutdown); redelivered later.
                            queue.backlog.clear();
                            queue.backlog_bytes = 0;
                            break;
                        }
                    }
                }
            }
        }
    }

    tracing::info!(pipeline = %processor.pipeline(), "worker draining in-flight events");
    // Backlogs are dropped unprocessed: their offsets were never stored, so they are
    // delivered again later.
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

/// One message being handled: its sequence key, its offset and how it ended.
type Handling =
    Pin<Box<dyn Future<Output = (Option<u128>, i64, Result<Handled, Interrupted>)> + Send>>;

/// The messages a partition task has taken and not yet marked done, in offset order, with
/// whether each is handled; the done prefix is marked done as one (its last offset).
#[derive(Default)]
struct Unfinished {
    messages: VecDeque<(Delivery, bool)>,
}

impl Unfinished {
    fn push(&mut self, delivery: Delivery) {
        self.messages.push_back((delivery, false));
    }

    /// Records that the message at `offset` is handled; returns the last message of the
    /// handled prefix, if the prefix grew (every message up to it is handled).
    fn handled(&mut self, offset: i64) -> Option<Delivery> {
        if let Ok(at) = self
            .messages
            .binary_search_by_key(&offset, |(delivery, _)| delivery.offset)
        {
            self.messages[at].1 = true;
        }
        let mut last = None;
        while self.messages.front().is_some_and(|(_, handled)| *handled) {
            last = self.messages.pop_front().map(|(delivery, _)| delivery);
        }
        last
    }

    fn len(&self) -> usize {
        self.messages.len()
    }
}

fn origin_of(delivery: &Delivery) -> MessageOrigin {
    MessageOrigin {
        topic: delivery.topic.clone(),
        partition: delivery.partition,
        offset: delivery.offset,
        first_delivery: delivery.first_delivery,
    }
}

impl From<MessageOrigin> for Delivery {
    fn from(origin: MessageOrigin) -> Self {
        Delivery {
            topic: origin.topic,
            partition: origin.partition,
            offset: origin.offset,
            payload: Vec::new(),
            first_delivery: origin.first_delivery,
        }
    }
}

async fn process_partition<H: EventHandler>(
    stream: Arc<dyn EventStream>,
    processor: Arc<H>,
    mut deliveries: mpsc::Receiver<Delivery>,
    room: Arc<Notify>,
    events_in_flight: usize,
    shutdown: CancellationToken,
) {
    let mut unfinished = Unfinished::default();
    // Keys with a message being handled, and the messages waiting behind it.
    let mut busy: HashMap<Option<u128>, VecDeque<Delivery>> = HashMap::new();
    let mut handling: FuturesUnordered<Handling> = FuturesUnordered::new();
    let start = |key: Option<u128>, delivery: Delivery| -> Handling {
        let (processor, shutdown) = (processor.clone(), shutdown.clone());
        Box::pin(async move {
            let origin = origin_of(&delivery);
            processor.metrics().worker_in_flight.inc();
            let result = processor
                .handle(&delivery.payload, &origin, &shutdown)
                .await;
            processor.metrics().worker_in_flight.dec();
            (key, delivery.offset, result)
        })
    };
    let mut receiving = true;
    loop {
        let room_for_more = receiving && unfinished.len() < events_in_flight;
        tokio::select! {
            received = deliveries.recv(), if room_for_more => {
                let Some(delivery) = received else {
                    receiving = false;
                    continue;
                };
                room.notify_one();
                if shutdown.is_cancelled() {
                    receiving = false;
                    continue;
                }
                let key = processor.sequence_key(&delivery.payload, &origin_of(&delivery));
                // Kept to be marked done later: everything but the payload.
                unfinished.push(Delivery {
                    payload: Vec::new(),
                    ..origin_of(&delivery).into()
                });
                match busy.get_mut(&key) {
                    Some(waiting) => waiting.push_back(delivery),
                    None => {
                        busy.insert(key, VecDeque::new());
                        handling.push(start(key, delivery));
                    }
                }
            }
            Some((key, offset, result)) = handling.next() => {
                if result.is_err() {
                    // Interrupted by shutdown: nothing after this is marked done.
                    receiving = false;
                    busy.clear();
                    continue;
                }
                if let Some(done) = unfinished.handled(offset)
                    && let Err(error) = stream.mark_done(&done)
                {
                        // The partition was revoked meanwhile; its new owner will see the
                        // events again and recognise them as recorded.
                        tracing::debug!(%error, partition = done.partition, "could not mark done");
                }
                let next = busy.get_mut(&key).and_then(VecDeque::pop_front);
                match next {
                    Some(delivery) if !shutdown.is_cancelled() => handling.push(start(key, delivery)),
                    _ => {
                        busy.remove(&key);
                    }
                }
            }
            else => break,
        }
        if !receiving && handling.is_empty() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::BackendResult;
    use crate::pipeline::processor::{Handled, Interrupted, MessageOrigin};

    /// Hands out its messages in the given order (one partition's batch after another, as
    /// librdkafka does with prefetched batches), skipping paused partitions.
    struct BatchedStream {
        queue: Mutex<VecDeque<Delivery>>,
        paused: Mutex<HashSet<i32>>,
        can_pause: bool,
        pauses: AtomicUsize,
        done: Mutex<Vec<(i32, i64)>>,
    }

    impl BatchedStream {
        fn new(partitions: i32, per_partition: i64, can_pause: bool, payload_bytes: usize) -> Self {
            let queue = (0..partitions)
                .flat_map(|partition| {
                    (0..per_partition).map(move |offset| Delivery {
                        topic: "t".into(),
                        partition,
                        offset,
                        payload: vec![b'x'; payload_bytes],
                        first_delivery: true,
                    })
                })
                .collect();
            Self {
                queue: Mutex::new(queue),
                paused: Mutex::new(HashSet::new()),
                can_pause,
                pauses: AtomicUsize::new(0),
                done: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl EventStream for BatchedStream {
        async fn next(&self) -> BackendResult<Delivery> {
            loop {
                {
                    let paused = self.paused.lock().unwrap();
                    let mut queue = self.queue.lock().unwrap();
                    if let Some(at) = queue.iter().position(|d| !paused.contains(&d.partition)) {
                        return Ok(queue.remove(at).expect("present"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        fn mark_done(&self, delivery: &Delivery) -> BackendResult<()> {
            self.done
                .lock()
                .unwrap()
                .push((delivery.partition, delivery.offset));
            Ok(())
        }

        fn pause(&self) -> BackendResult<()> {
            Ok(())
        }

        fn resume(&self) -> BackendResult<()> {
            Ok(())
        }

        fn pause_partition(&self, _topic: &str, partition: i32) -> BackendResult<bool> {
            if !self.can_pause {
                return Ok(false);
            }
            self.pauses.fetch_add(1, Ordering::SeqCst);
            self.paused.lock().unwrap().insert(partition);
            Ok(true)
        }

        fn resume_partition(&self, _topic: &str, partition: i32) -> BackendResult<()> {
            self.paused.lock().unwrap().remove(&partition);
            Ok(())
        }

        async fn close(&self) {}
    }

    /// Takes a few milliseconds per message and remembers how many ran at once. With
    /// `keys`, a message's sequence key is its offset modulo `keys`, and it checks that no
    /// two messages of one key run at once and that each key's run in offset order.
    struct SlowHandler {
        health: WorkerHealth,
        metrics: Metrics,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        keys: Option<i64>,
        /// Per (partition, key): whether one runs, and the last offset handled.
        running: Mutex<HashMap<(i32, i64), (bool, i64)>>,
        handled: AtomicUsize,
    }

    impl SlowHandler {
        fn new(keys: Option<i64>) -> Self {
            SlowHandler {
                health: WorkerHealth::new(),
                metrics: Metrics::new(),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
                keys,
                running: Mutex::new(HashMap::new()),
                handled: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl EventHandler for SlowHandler {
        async fn handle(
            &self,
            _payload: &[u8],
            origin: &MessageOrigin,
            _shutdown: &CancellationToken,
        ) -> Result<Handled, Interrupted> {
            let key = (
                origin.partition,
                origin.offset % self.keys.unwrap_or(i64::MAX),
            );
            {
                let mut running = self.running.lock().unwrap();
                let (busy, last) = running.entry(key).or_insert((false, -1));
                assert!(!*busy, "two messages of one key at once: {key:?}");
                assert!(
                    *last < origin.offset,
                    "a key's messages out of order: {key:?}"
                );
                *busy = true;
                *last = origin.offset;
            }
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            // Uneven, so later messages often finish before earlier ones.
            tokio::time::sleep(Duration::from_millis(1 + (origin.offset % 5) as u64)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.running.lock().unwrap().entry(key).or_default().0 = false;
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(Handled::AlreadyRecorded)
        }

        fn sequence_key(&self, _payload: &[u8], origin: &MessageOrigin) -> Option<u128> {
            self.keys.map(|keys| (origin.offset % keys) as u128)
        }

        fn pipeline(&self) -> &str {
            "orders"
        }

        fn health(&self) -> &WorkerHealth {
            &self.health
        }

        fn metrics(&self) -> &Metrics {
            &self.metrics
        }
    }

    /// Room for 4 messages of any size per partition.
    const FOUR_MESSAGES: QueueBounds = QueueBounds {
        messages: 4,
        bytes: usize::MAX,
    };

    /// Runs 3 partitions × 40 messages through the loop with room for 4 per partition and
    /// 8 in flight per partition.
    async fn drain(can_pause: bool, keys: Option<i64>) -> (Arc<BatchedStream>, Arc<SlowHandler>) {
        drain_with(BatchedStream::new(3, 40, can_pause, 0), FOUR_MESSAGES, keys).await
    }

    /// Runs `stream`'s messages through the loop with `bounds` and 8 in flight per partition.
    async fn drain_with(
        stream: BatchedStream,
        bounds: QueueBounds,
        keys: Option<i64>,
    ) -> (Arc<BatchedStream>, Arc<SlowHandler>) {
        let stream = Arc::new(stream);
        let handler = Arc::new(SlowHandler::new(keys));
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(
            stream.clone() as Arc<dyn EventStream>,
            handler.clone(),
            bounds,
            8,
            shutdown.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        let all_marked = |stream: &BatchedStream| {
            let done = stream.done.lock().unwrap();
            (0..3).all(|partition| done.contains(&(partition, 39)))
        };
        while !all_marked(&stream) {
            assert!(Instant::now() < deadline, "not every message was handled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        worker.await.expect("worker").expect("worker");
        (stream, handler)
    }

    /// The offsets of `partition` the stream was told are done, in the order it was told.
    fn marked_offsets(stream: &BatchedStream, partition: i32) -> Vec<i64> {
        let done = stream.done.lock().unwrap();
        done.iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .collect()
    }

    fn assert_each_partition_in_order(stream: &BatchedStream) {
        assert_eq!(stream.done.lock().unwrap().len(), 120);
        for partition in 0..3 {
            let offsets = marked_offsets(stream, partition);
            assert_eq!(
                offsets,
                (0..40).collect::<Vec<_>>(),
                "partition {partition}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_partition_neither_blocks_the_others_nor_grows_without_bound() {
        let (stream, handler) = drain(true, None).await;
        assert_each_partition_in_order(&stream);
        assert_eq!(
            handler.most_in_flight.load(Ordering::SeqCst),
            3,
            "the partitions ran one after another"
        );
        assert!(
            stream.pauses.load(Ordering::SeqCst) > 0,
            "a partition with a full backlog was not paused"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partition_is_paused_at_its_byte_bound_before_its_message_bound() {
        let stream = BatchedStream::new(3, 40, true, 1_000);
        let bounds = QueueBounds {
            messages: 1_000,
            bytes: 3_000,
        };
        let (stream, _) = drain_with(stream, bounds, None).await;
        assert_each_partition_in_order(&stream);
        assert!(
            stream.pauses.load(Ordering::SeqCst) > 0,
            "a backlog of 3,000 payload bytes did not pause its partition"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_that_cannot_pause_a_partition_still_delivers_everything_in_order() {
        let (stream, _) = drain(false, None).await;
        assert_each_partition_in_order(&stream);
    }

    #[test]
    fn only_the_handled_prefix_is_marked_done() {
        let mut unfinished = Unfinished::default();
        for offset in 10..14 {
            unfinished.push(Delivery {
                topic: "t".into(),
                partition: 0,
                offset,
                payload: Vec::new(),
                first_delivery: true,
            });
        }
        assert!(
            unfinished.handled(12).is_none(),
            "10 and 11 are not handled"
        );
        assert!(unfinished.handled(11).is_none(), "10 is not handled");
        assert_eq!(unfinished.handled(10).map(|d| d.offset), Some(12));
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished.handled(13).map(|d| d.offset), Some(13));
        assert_eq!(unfinished.len(), 0);
    }

    /// Messages of different keys run at once, each key's in order; a message is marked done
    /// only once every earlier one of its partition is handled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn different_keys_of_one_partition_run_at_once_and_offsets_stay_in_order() {
        let (stream, handler) = drain(true, Some(4)).await;
        assert_eq!(handler.handled.load(Ordering::SeqCst), 120);
        assert!(
            handler.most_in_flight.load(Ordering::SeqCst) > 3,
            "keys of one partition ran one after another"
        );
        for partition in 0..3 {
            let offsets = marked_offsets(&stream, partition);
            assert!(
                offsets.windows(2).all(|pair| pair[0] < pair[1]),
                "partition {partition} marked out of order: {offsets:?}"
            );
            assert_eq!(offsets.last(), Some(&39), "partition {partition}");
        }
    }
}
