//! The embedded event log: a partitioned, durable log in one redb file (`<dir>/events.redb`),
//! consumed by one worker in the same process.
//!
//! Guarantees, matching what the pipeline relies on from Kafka:
//! - **Durable publish.** [`EventLog::publish`] returns only after the transaction holding the
//!   record committed with fsync, so an acknowledged order survives SIGKILL. Publishes are
//!   group-committed by one writer thread: concurrent publishers share an fsync.
//! - **Ordered per order id.** A record goes to the partition chosen by a stable hash of its
//!   order id (FNV-1a of the id's text, the key Kafka is given); each partition has offsets
//!   0, 1, 2, … in publish order and is delivered in that order.
//! - **At-least-once consumption.** A stream belongs to a consumer group whose committed
//!   offsets (next offset to deliver, per partition) are stored in the same file.
//!   [`EventStream::mark_done`] records progress in memory; the writer commits it at least
//!   every [`COMMIT_INTERVAL`], on [`EventStream::close`] and when the log is dropped. After a
//!   crash, records after the last committed offset are delivered again.
//! - **Bounded history.** Records below every group's committed offset are deleted when
//!   offsets are committed; a group that has not committed yet therefore holds nothing back,
//!   and a brand-new group starts at the oldest record still kept. Dead letters go to their
//!   own table, of which the newest [`DEAD_LETTER_RETENTION`] are kept.
//!
//! **Topics.** Each topic is its own log in its own file: `events.redb` for the `orders`
//! topic (the file of logs created before topics existed), `events-<topic>.redb` for any
//! other. Each has its own partitions, consumer offsets, dead letters and writer thread.
//!
//! One process per file (the file is locked), one open stream per group and topic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use super::{check_format, open_database, storage_error};
use crate::backend::{BackendError, BackendResult, Delivery, EventLog, EventStream};

const BACKEND: &str = "embedded event log";

/// The topic [`EmbeddedEventLog::open`] opens, kept in [`FILE_NAME`].
pub const TOPIC: &str = "orders";
/// Partitions of a new log unless configured otherwise.
pub const DEFAULT_PARTITIONS: u32 = 6;
/// The most partitions a log may have (each gets its own worker task).
const MAX_PARTITIONS: u32 = 1024;
/// How often progress marked done is committed while the worker runs.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How many dead letters are kept (the oldest are deleted beyond this).
pub const DEAD_LETTER_RETENTION: u64 = 100_000;
/// The file of the [`TOPIC`] log inside the data directory.
const FILE_NAME: &str = "events.redb";
/// redb's page cache for the log; records are read once, soon after they are written.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// The most commands one group commit takes, so a flood of publishes still gets answers.
const MAX_GROUP_COMMIT: usize = 1024;
/// The most records one fetch reads from one partition.
const FETCH_PER_PARTITION: usize = 64;
/// The format this code writes; a file of another format is refused rather than misread.
const FORMAT_VERSION: u64 = 1;

/// (partition, offset) → payload.
const RECORDS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("records");
/// partition → the offset the next record gets.
const PARTITION_ENDS: TableDefinition<u32, u64> = TableDefinition::new("partition_ends");
/// (group, partition) → the next offset the group has to process.
const COMMITTED: TableDefinition<(&str, u32), u64> = TableDefinition::new("committed_offsets");
/// sequence → (order id, payload).
const DEAD_LETTERS: TableDefinition<u64, (Option<u128>, &[u8])> =
    TableDefinition::new("dead_letters");
/// "partitions", "format" → value.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn unavailable(error: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, error)
}

fn storage(error: impl Into<redb::Error>) -> BackendError {
    storage_error(BACKEND, error)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked: every update is one insert.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The partition of an order: FNV-1a of the order id's text (the Kafka message key), so it
/// never changes between runs or builds.
pub fn partition_for(order_id: Uuid, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in order_id.hyphenated().to_string().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// What the writer thread and the handles share.
struct Core {
    db: Database,
    /// The topic name deliveries carry (the worker keys its partition tasks by it).
    topic: String,
    partitions: u32,
    /// Woken after a commit that added records, and when a stream resumes or closes.
    wake: Notify,
    /// group → partition → next offset to process, as marked done (not yet committed).
    marks: Mutex<HashMap<String, HashMap<u32, u64>>>,
    /// Groups with an open stream.
    open_groups: Mutex<HashSet<String>>,
}

enum Command {
    Publish {
        partition: u32,
        payload: Vec<u8>,
        done: oneshot::Sender<BackendResult<()>>,
    },
    DeadLetter {
        order_id: Option<Uuid>,
        payload: Vec<u8>,
        done: oneshot::Sender<BackendResult<()>>,
    },
    /// Commit what was marked done now.
    Commit {
        done: oneshot::Sender<BackendResult<()>>,
    },
}

impl Command {
    fn answer(self, result: BackendResult<()>) {
        let (Command::Publish { done, .. }
        | Command::DeadLetter { done, .. }
        | Command::Commit { done }) = self;
        // The caller may have given up waiting; the record is written all the same.
        let _ = done.send(result);
    }
}

/// Owns the writer thread: dropping the last handle commits marked progress, stops the
/// thread and closes the file, so the directory can be opened again right away.
struct Shared {
    core: Arc<Core>,
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel makes the writer commit the marks and return.
        self.commands.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the embedded event log's writer thread panicked");
        }
    }
}

impl Shared {
    async fn submit(
        &self,
        command: impl FnOnce(oneshot::Sender<BackendResult<()>>) -> Command,
    ) -> BackendResult<()> {
        let (done, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or_else(|| unavailable("the log is closed"))?
            .send(command(done))
            .map_err(|_| unavailable("the log's writer stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the log's writer stopped"))?
    }
}

/// The producing side of the embedded event log, and the factory of its stream. Cheap to
/// clone; the file stays open while any clone or stream lives.
#[derive(Clone)]
pub struct EmbeddedEventLog {
    shared: Arc<Shared>,
}

impl EmbeddedEventLog {
    /// Opens the log in `dir` (creating both when missing) with `partitions` partitions.
    /// Fails if another handle has the directory open, or if the log was created with a
    /// different number of partitions (changing it would reorder orders' events).
    /// Blocks briefly on disk: call it at start-up.
    pub fn open(dir: impl AsRef<Path>, partitions: u32) -> anyhow::Result<Self> {
        Self::open_topic(dir, TOPIC, partitions)
    }

    /// Opens the log of `topic` in `dir`, like [`EmbeddedEventLog::open`]. `topic` must be
    /// a valid Kafka topic name (letters, digits, `.`, `-`, `_`), which is also file-safe.
    pub fn open_topic(dir: impl AsRef<Path>, topic: &str, partitions: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=MAX_PARTITIONS).contains(&partitions),
            "the event log needs 1 to {MAX_PARTITIONS} partitions, not {partitions}"
        );
        anyhow::ensure!(
            !topic.is_empty()
                && !topic.starts_with('.')
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "topic {topic:?} is not a valid topic name"
        );
        let path = if topic == TOPIC {
            dir.as_ref().join(FILE_NAME)
        } else {
            dir.as_ref().join(format!("events-{topic}.redb"))
        };
        let db = open_database(&path, CACHE_BYTES)?;
        let (ends, next_dead_letter) = prepare(&db, partitions)
            .map_err(|e| anyhow::anyhow!("opening the event log {}: {e}", path.display()))?;
        let core = Arc::new(Core {
            db,
            topic: topic.to_owned(),
            partitions,
            wake: Notify::new(),
            marks: Mutex::new(HashMap::new()),
            open_groups: Mutex::new(HashSet::new()),
        });
        let (commands, receiver) = mpsc::channel();
        let writer = Writer {
            core: core.clone(),
            ends,
            next_dead_letter,
            committed: HashMap::new(),
            last_offset_commit: Instant::now(),
        };
        let writer = std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer.run(receiver))?;
        tracing::info!(path = %path.display(), topic, partitions, "opened the embedded event log");
        Ok(Self {
            shared: Arc::new(Shared {
                core,
                commands: Some(commands),
                writer: Some(writer),
            }),
        })
    }

    /// The topic this log holds.
    pub fn topic(&self) -> &str {
        &self.shared.core.topic
    }

    /// How many partitions the log has.
    pub fn partitions(&self) -> u32 {
        self.shared.core.partitions
    }

    /// A stream for consumer `group`, starting after the group's committed offsets (at the
    /// oldest kept record for a new group). One stream per group may be open at a time.
    pub fn subscribe(&self, group: &str) -> anyhow::Result<EmbeddedEventStream> {
        let core = &self.shared.core;
        anyhow::ensure!(
            lock(&core.open_groups).insert(group.to_owned()),
            "consumer group {group} already has an open stream on this event log"
        );
        let mut positions = committed_offsets(&core.db, group, core.partitions).map_err(|e| {
            lock(&core.open_groups).remove(group);
            anyhow::anyhow!("reading the offsets of group {group}: {e}")
        })?;
        // Progress marked by an earlier stream of this group but not committed yet counts.
        if let Some(marks) = lock(&core.marks).get(group) {
            for (&partition, &next) in marks {
                let slot = &mut positions[partition as usize];
                *slot = (*slot).max(next);
            }
        }
        Ok(EmbeddedEventStream {
            shared: self.shared.clone(),
            group: group.to_owned(),
            paused: AtomicBool::new(false),
            state: Mutex::new(StreamState {
                positions,
                buffer: VecDeque::new(),
                closed: false,
            }),
        })
    }

    /// Every dead letter kept, oldest first: (order id, payload).
    pub async fn dead_letters(&self) -> BackendResult<Vec<(Option<Uuid>, Vec<u8>)>> {
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || {
            let read = core.db.begin_read().map_err(storage)?;
            let table = read.open_table(DEAD_LETTERS).map_err(storage)?;
            let mut letters = Vec::new();
            for row in table.iter().map_err(storage)? {
                let (_, value) = row.map_err(storage)?;
                let (order_id, payload) = value.value();
                letters.push((order_id.map(Uuid::from_u128), payload.to_vec()));
            }
            Ok(letters)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Creates the tables of a new log, checks an existing one, and reads where each partition
/// and the dead-letter table end.
fn prepare(db: &Database, partitions: u32) -> Result<(Vec<u64>, u64), anyhow::Error> {
    let write = db.begin_write()?;
    let mut ends = vec![0; partitions as usize];
    let next_dead_letter;
    {
        let mut meta = write.open_table(META)?;
        check_format(&mut meta, FORMAT_VERSION)?;
        let stored = meta.get("partitions")?.map(|v| v.value());
        match stored {
            None => {
                meta.insert("partitions", u64::from(partitions))?;
            }
            Some(stored) if stored == u64::from(partitions) => {}
            Some(stored) => anyhow::bail!(
                "it was created with {stored} partitions and {partitions} are configured; \
                 the partition count of a log cannot change"
            ),
        }
        let partition_ends = write.open_table(PARTITION_ENDS)?;
        for (partition, end) in ends.iter_mut().enumerate() {
            *end = partition_ends
                .get(partition as u32)?
                .map(|v| v.value())
                .unwrap_or(0);
        }
        write.open_table(RECORDS)?;
        write.open_table(COMMITTED)?;
        let dead = write.open_table(DEAD_LETTERS)?;
        next_dead_letter = dead.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
    }
    write.commit()?;
    Ok((ends, next_dead_letter))
}

fn committed_offsets(db: &Database, group: &str, partitions: u32) -> Result<Vec<u64>, redb::Error> {
    let read = db.begin_read()?;
    let table = read.open_table(COMMITTED)?;
    let mut positions = vec![0; partitions as usize];
    for (partition, position) in positions.iter_mut().enumerate() {
        if let Some(offset) = table.get((group, partition as u32))? {
            *position = offset.value();
        }
    }
    Ok(positions)
}

#[async_trait]
impl EventLog for EmbeddedEventLog {
    async fn publish(&self, order_id: Uuid, payload: &[u8]) -> BackendResult<()> {
        let partition = partition_for(order_id, self.shared.core.partitions);
        let payload = payload.to_vec();
        self.shared
            .submit(|done| Command::Publish {
                partition,
                payload,
                done,
            })
            .await
    }

    async fn publish_dead_letter(
        &self,
        order_id: Option<Uuid>,
        payload: &[u8],
    ) -> BackendResult<()> {
        let payload = payload.to_vec();
        self.shared
            .submit(|done| Command::DeadLetter {
                order_id,
                payload,
                done,
            })
            .await
    }

    async fn ping(&self) -> BackendResult<()> {
        match &self.shared.writer {
            Some(writer) if !writer.is_finished() => Ok(()),
            _ => Err(unavailable("the log's writer stopped")),
        }
    }
}

/// The one thread that writes the file: it takes every command waiting, writes them in one
/// transaction, commits (fsync) and only then answers, so each answer means "on disk".
struct Writer {
    core: Arc<Core>,
    /// partition → offset of the next record, as committed.
    ends: Vec<u64>,
    next_dead_letter: u64,
    /// group → partition → offset, as committed.
    committed: HashMap<String, HashMap<u32, u64>>,
    last_offset_commit: Instant,
}

impl Writer {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            let first = match commands.recv_timeout(COMMIT_INTERVAL) {
                Ok(command) => Some(command),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<Command> = first.into_iter().collect();
            while batch.len() < MAX_GROUP_COMMIT {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let commit_asked = batch.iter().any(|c| matches!(c, Command::Commit { .. }));
            let commit_offsets =
                commit_asked || self.last_offset_commit.elapsed() >= COMMIT_INTERVAL;
            if batch.is_empty() && !commit_offsets {
                continue;
            }
            let result = self.write(&batch, commit_offsets);
            if let Err(error) = &result {
                tracing::warn!(%error, "embedded event log write failed");
            }
            let published =
                result.is_ok() && batch.iter().any(|c| matches!(c, Command::Publish { .. }));
            for command in batch {
                command.answer(result.clone());
            }
            if published {
                self.core.wake.notify_waiters();
            }
        }
        // Every handle is gone: keep the progress marked since the last commit.
        if let Err(error) = self.write(&[], true) {
            tracing::warn!(%error, "final offset commit of the embedded event log failed");
        }
    }

    /// Writes one batch in one transaction; the in-memory state moves only once it committed.
    fn write(&mut self, batch: &[Command], commit_offsets: bool) -> BackendResult<()> {
        let marks = if commit_offsets {
            self.changed_marks()
        } else {
            HashMap::new()
        };
        if batch.is_empty() && marks.is_empty() {
            if commit_offsets {
                self.last_offset_commit = Instant::now();
            }
            return Ok(());
        }
        let mut ends = self.ends.clone();
        let mut next_dead_letter = self.next_dead_letter;
        let write = self.core.db.begin_write().map_err(storage)?;
        {
            let mut records = write.open_table(RECORDS).map_err(storage)?;
            let mut dead_letters = write.open_table(DEAD_LETTERS).map_err(storage)?;
            for command in batch {
                match command {
                    Command::Publish {
                        partition, payload, ..
                    } => {
                        let end = &mut ends[*partition as usize];
                        records
                            .insert((*partition, *end), payload.as_slice())
                            .map_err(storage)?;
                        *end += 1;
                    }
                    Command::DeadLetter {
                        order_id, payload, ..
                    } => {
                        dead_letters
                            .insert(
                                next_dead_letter,
                                (order_id.map(|id| id.as_u128()), payload.as_slice()),
                            )
                            .map_err(storage)?;
                        next_dead_letter += 1;
                    }
                    Command::Commit { .. } => {}
                }
            }
            if next_dead_letter != self.next_dead_letter && next_dead_letter > DEAD_LETTER_RETENTION
            {
                let oldest_kept = next_dead_letter - DEAD_LETTER_RETENTION;
                dead_letters
                    .retain_in(..oldest_kept, |_, _| false)
                    .map_err(storage)?;
            }
            if ends != self.ends {
                let mut partition_ends = write.open_table(PARTITION_ENDS).map_err(storage)?;
                for (partition, (&new, &old)) in ends.iter().zip(&self.ends).enumerate() {
                    if new != old {
                        partition_ends
                            .insert(partition as u32, new)
                            .map_err(storage)?;
                    }
                }
            }
            if !marks.is_empty() {
                let mut committed = write.open_table(COMMITTED).map_err(storage)?;
                for (group, offsets) in &marks {
                    for (&partition, &offset) in offsets {
                        committed
                            .insert((group.as_str(), partition), offset)
                            .map_err(storage)?;
                    }
                }
                // Records every group has processed are no longer needed.
                let mut consumed_by_all = vec![u64::MAX; self.core.partitions as usize];
                for row in committed.iter().map_err(storage)? {
                    let (key, offset) = row.map_err(storage)?;
                    let (_, partition) = key.value();
                    if let Some(low) = consumed_by_all.get_mut(partition as usize) {
                        *low = (*low).min(offset.value());
                    }
                }
                for (partition, &low) in consumed_by_all.iter().enumerate() {
                    if low != u64::MAX && low > 0 {
                        let partition = partition as u32;
                        records
                            .retain_in((partition, 0)..(partition, low), |_, _| false)
                            .map_err(storage)?;
                    }
                }
            }
        }
        write.commit().map_err(storage)?;
        self.ends = ends;
        self.next_dead_letter = next_dead_letter;
        for (group, offsets) in marks {
            self.committed.entry(group).or_default().extend(offsets);
        }
        if commit_offsets {
            self.last_offset_commit = Instant::now();
        }
        Ok(())
    }

    /// The marks that moved since they were last committed.
    fn changed_marks(&self) -> HashMap<String, HashMap<u32, u64>> {
        let marks = lock(&self.core.marks);
        let mut changed: HashMap<String, HashMap<u32, u64>> = HashMap::new();
        for (group, offsets) in marks.iter() {
            let committed = self.committed.get(group);
            for (&partition, &offset) in offsets {
                if committed.and_then(|c| c.get(&partition)) != Some(&offset) {
                    changed
                        .entry(group.clone())
                        .or_default()
                        .insert(partition, offset);
                }
            }
        }
        changed
    }
}

struct StreamState {
    /// partition → next offset to hand out.
    positions: Vec<u64>,
    /// Records read but not handed out yet.
    buffer: VecDeque<Delivery>,
    closed: bool,
}

/// The consuming side: the one member of a consumer group. Deliveries of one partition come
/// in offset order; partitions are interleaved.
pub struct EmbeddedEventStream {
    shared: Arc<Shared>,
    group: String,
    paused: AtomicBool,
    state: Mutex<StreamState>,
}

impl EmbeddedEventStream {
    /// Reads up to [`FETCH_PER_PARTITION`] records of each partition from `positions` on.
    async fn fetch(&self, positions: Vec<u64>) -> BackendResult<Vec<Delivery>> {
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || {
            let read = core.db.begin_read().map_err(storage)?;
            let table = read.open_table(RECORDS).map_err(storage)?;
            let mut per_partition = Vec::with_capacity(positions.len());
            for (partition, &from) in positions.iter().enumerate() {
                let partition = partition as u32;
                let mut records = Vec::new();
                for row in table
                    .range((partition, from)..=(partition, u64::MAX))
                    .map_err(storage)?
                    .take(FETCH_PER_PARTITION)
                {
                    let (key, value) = row.map_err(storage)?;
                    records.push(Delivery {
                        topic: core.topic.clone(),
                        partition: partition as i32,
                        offset: key.value().1 as i64,
                        payload: value.value().to_vec(),
                        // Not tracked: a new order's state is read first (a local read).
                        first_delivery: false,
                    });
                }
                per_partition.push(records.into_iter());
            }
            // Interleave partitions so a busy one does not starve the others.
            let mut deliveries = Vec::new();
            loop {
                let before = deliveries.len();
                deliveries.extend(per_partition.iter_mut().filter_map(Iterator::next));
                if deliveries.len() == before {
                    break;
                }
            }
            Ok(deliveries)
        })
        .await
        .map_err(unavailable)?
    }

    fn release_group(&self) {
        lock(&self.shared.core.open_groups).remove(&self.group);
    }
}

#[async_trait]
impl EventStream for EmbeddedEventStream {
    async fn next(&self) -> BackendResult<Delivery> {
        let core = &self.shared.core;
        loop {
            // Registered before looking, so a commit between the look and the wait wakes us.
            let woken = core.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let paused = self.paused.load(Ordering::SeqCst);
            let positions = {
                let mut state = lock(&self.state);
                if state.closed {
                    return Err(unavailable("the stream is closed"));
                }
                if !paused && let Some(delivery) = state.buffer.pop_front() {
                    return Ok(delivery);
                }
                state.positions.clone()
            };
            if !paused {
                // Nothing changes until the read is back, so dropping this future is harmless.
                let fetched = self.fetch(positions).await?;
                let mut state = lock(&self.state);
                let mut any = false;
                for delivery in fetched {
                    let position = &mut state.positions[delivery.partition as usize];
                    if delivery.offset as u64 >= *position {
                        *position = delivery.offset as u64 + 1;
                        state.buffer.push_back(delivery);
                        any = true;
                    }
                }
                if any {
                    continue;
                }
            }
            woken.await;
        }
    }

    fn mark_done(&self, delivery: &Delivery) -> BackendResult<()> {
        let core = &self.shared.core;
        if delivery.topic != core.topic
            || delivery.partition < 0
            || delivery.partition as u32 >= core.partitions
            || delivery.offset < 0
        {
            return Err(BackendError::Invalid(format!(
                "{}/{}@{} is not a record of this log",
                delivery.topic, delivery.partition, delivery.offset
            )));
        }
        let mut marks = lock(&core.marks);
        let next = marks
            .entry(self.group.clone())
            .or_default()
            .entry(delivery.partition as u32)
            .or_insert(0);
        *next = (*next).max(delivery.offset as u64 + 1);
        Ok(())
    }

    fn pause(&self) -> BackendResult<()> {
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn resume(&self) -> BackendResult<()> {
        self.paused.store(false, Ordering::SeqCst);
        self.shared.core.wake.notify_waiters();
        Ok(())
    }

    async fn close(&self) {
        if let Err(error) = self.shared.submit(|done| Command::Commit { done }).await {
            // What was not committed is delivered again after a restart; harmless.
            tracing::warn!(%error, "final offset commit of the embedded event log failed");
        }
        {
            let mut state = lock(&self.state);
            state.closed = true;
            state.buffer.clear();
        }
        self.release_group();
        self.shared.core.wake.notify_waiters();
    }
}

impl Drop for EmbeddedEventStream {
    fn drop(&mut self) {
        self.release_group();
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    fn order_ids_on_one_partition(count: usize, partitions: u32) -> Vec<Uuid> {
        let first = Uuid::new_v4();
        let target = partition_for(first, partitions);
        let mut ids = vec![first];
        while ids.len() < count {
            let id = Uuid::new_v4();
            if partition_for(id, partitions) == target {
                ids.push(id);
            }
        }
        ids
    }

    async fn next(stream: &EmbeddedEventStream) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a delivery within 5 s")
            .expect("delivery")
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        let id: Uuid = "5f0c2f4e-8d7a-4b1e-9c3a-0e2d4f6a8b1c".parse().unwrap();
        // Pinned: a different answer would send an existing log's orders elsewhere.
        assert_eq!(partition_for(id, 6), 0);
        assert_eq!(partition_for(id, 1000), 708);
        for _ in 0..1000 {
            assert!(partition_for(Uuid::new_v4(), 6) < 6);
        }
    }

    #[tokio::test]
    async fn acknowledged_records_survive_reopen_and_resume_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ids = order_ids_on_one_partition(1, 3);
        {
            let log = EmbeddedEventLog::open(dir.path(), 3).unwrap();
            for n in 0..5u8 {
                log.publish(ids[0], &[n]).await.unwrap();
            }
            let stream = log.subscribe("workers").unwrap();
            for n in 0..3u8 {
                let delivery = next(&stream).await;
                assert_eq!(delivery.payload, vec![n]);
                assert_eq!(delivery.offset, i64::from(n));
                if n < 2 {
                    stream.mark_done(&delivery).unwrap();
                }
            }
            stream.close().await;
        }
        let log = EmbeddedEventLog::open(dir.path(), 3).unwrap();
        let stream = log.subscribe("workers").unwrap();
        // The third record was delivered but not marked done: it comes again.
        for n in 2..5u8 {
            assert_eq!(next(&stream).await.payload, vec![n]);
        }
    }

    #[tokio::test]
    async fn topics_are_separate_logs_in_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let orders = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let invoices = EmbeddedEventLog::open_topic(dir.path(), "invoices", 2).unwrap();
        orders.publish(id, b"order").await.unwrap();
        invoices.publish(id, b"invoice").await.unwrap();
        let order_stream = orders.subscribe("workers").unwrap();
        let invoice_stream = invoices.subscribe("workers").unwrap();
        let order = next(&order_stream).await;
        let invoice = next(&invoice_stream).await;
        assert_eq!(
            (order.topic.as_str(), order.payload.as_slice()),
            (TOPIC, &b"order"[..])
        );
        assert_eq!(
            (invoice.topic.as_str(), invoice.payload.as_slice()),
            ("invoices", &b"invoice"[..])
        );
        // A delivery of one topic is not a record of the other.
        assert!(order_stream.mark_done(&invoice).is_err());
        invoice_stream.mark_done(&invoice).unwrap();
        assert!(dir.path().join("events.redb").exists());
        assert!(dir.path().join("events-invoices.redb").exists());
        assert!(EmbeddedEventLog::open_topic(dir.path(), "../x", 2).is_err());
    }

    #[tokio::test]
    async fn marks_are_committed_when_the_log_is_dropped_without_close() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
            log.publish(id, b"a").await.unwrap();
            log.publish(id, b"b").await.unwrap();
            let stream = log.subscribe("workers").unwrap();
            let first = next(&stream).await;
            stream.mark_done(&first).unwrap();
        }
        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let stream = log.subscribe("workers").unwrap();
        assert_eq!(next(&stream).await.payload, b"b");
    }

    #[tokio::test]
    async fn marks_are_committed_periodically() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        log.publish(id, b"a").await.unwrap();
        let stream = log.subscribe("workers").unwrap();
        let delivery = next(&stream).await;
        stream.mark_done(&delivery).unwrap();
        let partition = delivery.partition as usize;
        let deadline = Instant::now() + COMMIT_INTERVAL * 5;
        loop {
            let offsets = committed_offsets(&log.shared.core.db, "workers", 2).unwrap();
            if offsets[partition] == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "offset not committed: {offsets:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn consumed_records_are_deleted_and_offsets_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let log = EmbeddedEventLog::open(dir.path(), 1).unwrap();
            log.publish(id, b"a").await.unwrap();
            log.publish(id, b"b").await.unwrap();
            let stream = log.subscribe("workers").unwrap();
            stream.mark_done(&next(&stream).await).unwrap();
            stream.mark_done(&next(&stream).await).unwrap();
            stream.close().await;
            let read = log.shared.core.db.begin_read().unwrap();
            assert!(read.open_table(RECORDS).unwrap().is_empty().unwrap());
        }
        let log = EmbeddedEventLog::open(dir.path(), 1).unwrap();
        log.publish(id, b"c").await.unwrap();
        let stream = log.subscribe("workers").unwrap();
        let delivery = next(&stream).await;
        assert_eq!(
            (delivery.offset, delivery.payload.as_slice()),
            (2, &b"c"[..])
        );
    }

    #[tokio::test]
    async fn next_waits_for_a_publish_and_pause_holds_deliveries_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let stream = Arc::new(log.subscribe("workers").unwrap());
        let waiting = tokio::spawn({
            let stream = stream.clone();
            async move { stream.next().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        log.publish(Uuid::new_v4(), b"first").await.unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the publish")
            .unwrap()
            .unwrap();
        assert_eq!(delivery.payload, b"first");

        stream.pause().unwrap();
        log.publish(Uuid::new_v4(), b"second").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), stream.next())
                .await
                .is_err(),
            "a paused stream delivered"
        );
        stream.resume().unwrap();
        assert_eq!(next(&stream).await.payload, b"second");
    }

    #[tokio::test]
    async fn a_second_open_of_the_directory_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let error = EmbeddedEventLog::open(dir.path(), 2)
            .err()
            .expect("second open fails");
        assert!(error.to_string().contains("already open"), "{error}");
    }

    #[tokio::test]
    async fn the_partition_count_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedEventLog::open(dir.path(), 2).unwrap());
        let error = EmbeddedEventLog::open(dir.path(), 3)
            .err()
            .expect("reopen with another count fails");
        assert!(error.to_string().contains("2 partitions"), "{error}");
    }

    #[tokio::test]
    async fn one_open_stream_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let stream = log.subscribe("workers").unwrap();
        assert!(log.subscribe("workers").is_err());
        stream.close().await;
        assert!(
            stream.next().await.is_err(),
            "a closed stream delivers nothing"
        );
        drop(stream);
        log.subscribe("workers").unwrap();
    }

    #[tokio::test]
    async fn dead_letters_are_kept_apart_from_records() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
            log.publish_dead_letter(Some(id), b"bad").await.unwrap();
            log.publish_dead_letter(None, b"worse").await.unwrap();
            log.publish(id, b"good").await.unwrap();
            let stream = log.subscribe("workers").unwrap();
            assert_eq!(next(&stream).await.payload, b"good");
        }
        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        assert_eq!(
            log.dead_letters().await.unwrap(),
            vec![(Some(id), b"bad".to_vec()), (None, b"worse".to_vec())]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publishes_keep_per_order_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedEventLog::open(dir.path(), 4).unwrap();
        let ids: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for &id in &ids {
            let log = log.clone();
            tasks.spawn(async move {
                for n in 0..25u32 {
                    let mut payload = id.as_bytes().to_vec();
                    payload.extend(n.to_be_bytes());
                    log.publish(id, &payload).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let stream = log.subscribe("workers").unwrap();
        let mut seen: HashMap<Uuid, u32> = HashMap::new();
        for _ in 0..ids.len() * 25 {
            let delivery = next(&stream).await;
            let id = Uuid::from_slice(&delivery.payload[..16]).unwrap();
            let n = u32::from_be_bytes(delivery.payload[16..].try_into().unwrap());
            assert_eq!(delivery.partition as u32, partition_for(id, 4));
            assert_eq!(seen.get(&id).map_or(0, |last| last + 1), n, "order {id}");
            seen.insert(id, n);
        }
    }

    /// Set for the child process of `acknowledged_records_survive_sigkill`.
    const CHILD_DIR: &str = "ORDERPIPE_TEST_EVENT_LOG_CHILD_DIR";

    /// Run by `acknowledged_records_survive_sigkill` in a process of its own: publishes
    /// records, printing each acknowledgement, until it is killed.
    #[tokio::test]
    #[ignore = "the child half of acknowledged_records_survive_sigkill"]
    async fn publish_until_killed() {
        use std::io::Write;
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let log = EmbeddedEventLog::open(dir, 2).unwrap();
        let id: Uuid = "5f0c2f4e-8d7a-4b1e-9c3a-0e2d4f6a8b1c".parse().unwrap();
        for n in 0..100_000u32 {
            log.publish(id, &n.to_be_bytes()).await.unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "acknowledged {n}").unwrap();
            out.flush().unwrap();
        }
    }

    #[tokio::test]
    async fn acknowledged_records_survive_sigkill() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "backend::embedded::log::tests::publish_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acknowledged = tokio::task::spawn_blocking(move || {
            let mut last = None;
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(n) = line.strip_prefix("acknowledged ") {
                    last = Some(n.parse::<u32>().unwrap());
                    if last >= Some(200) {
                        break;
                    }
                }
            }
            last
        });
        let last = tokio::time::timeout(Duration::from_secs(60), acknowledged)
            .await
            .expect("the child acknowledges 200 records within 60 s")
            .unwrap()
            .expect("the child acknowledged records");
        child.kill().unwrap(); // SIGKILL: no destructor, no final commit
        child.wait().unwrap();

        let log = EmbeddedEventLog::open(dir.path(), 2).unwrap();
        let stream = log.subscribe("workers").unwrap();
        for n in 0..=last {
            let delivery = next(&stream).await;
            assert_eq!(delivery.offset, i64::from(n));
            assert_eq!(delivery.payload, n.to_be_bytes());
        }
    }
}
