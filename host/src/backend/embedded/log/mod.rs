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

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use super::{check_format, open_database, storage_error};
#[cfg(doc)]
use crate::backend::EventStream;
use crate::backend::{BackendError, BackendResult, EventLog};

mod stream;
mod writer;

pub use stream::EmbeddedEventStream;
use writer::Writer;

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
        let writer = Writer::new(core.clone(), ends, next_dead_letter);
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
        Ok(EmbeddedEventStream::new(
            self.shared.clone(),
            group,
            positions,
        ))
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

#[cfg(test)]
mod tests;
