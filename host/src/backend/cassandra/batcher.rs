//! Several requests' writes sent to Cassandra as one unlogged batch.
//!
//! On a node this size the CPU of a small write goes mostly to the request around it (the
//! native protocol, the query's bookkeeping), not to the mutation: one request carrying the
//! writes of many events costs Cassandra far less than one request each. The batcher keeps
//! up to [`WriteBatcher::new`]'s `in_flight` batches in flight; a write that arrives while
//! they are all busy waits and joins the next batch with the others that arrived meanwhile.
//! So under load batches grow by themselves, and at light load a write goes alone at once
//! (no timer, no added latency).
//!
//! What a batch keeps of each write's meaning:
//! - A caller's writes always travel together in one batch, and writes to one partition are
//!   applied by Cassandra as one mutation, atomically, as when the caller sent them alone.
//! - Two writes of one row never share a batch: statements of a batch without `USING
//!   TIMESTAMP` get the same write time, so the later write could lose to the earlier one
//!   (equal times are decided by value). A write naming a row already in the batch waits
//!   for the next one.
//! - A refusal (a request Cassandra will refuse again, e.g. one too large) of a batch of
//!   several callers is tried again caller by caller, so only the caller at fault sees it. An
//!   outage is every caller's: each retries as it would have alone.

use std::collections::HashSet;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::errors::refusal_or_outage;
use crate::backend::{BackendError, BackendResult};

/// One statement of a write, with its values.
pub struct Statement {
    pub prepared: PreparedStatement,
    pub values: Box<dyn SerializeRow + Send + Sync>,
}

/// A caller's writes: applied together, in one batch.
pub struct Write {
    statements: Vec<Statement>,
    /// The rows written, as hashes: no two writes of one row share a batch.
    rows: Vec<u64>,
    /// An estimate of the values' size in bytes.
    bytes: usize,
}

impl Write {
    pub fn new(statements: Vec<Statement>, rows: Vec<u64>, bytes: usize) -> Self {
        Self {
            statements,
            rows,
            bytes,
        }
    }
}

struct Pending {
    write: Write,
    done: oneshot::Sender<BackendResult<()>>,
}

/// How much one batch carries at most.
#[derive(Debug, Clone, Copy)]
pub struct BatchBounds {
    pub statements: usize,
    /// Cassandra warns about a batch past `batch_size_warn_threshold` (5 KiB by default) and
    /// refuses one past `batch_size_fail_threshold` (50 KiB); see the README.
    pub bytes: usize,
}

/// Sends writes in batches; see the module's documentation.
#[derive(Clone)]
pub struct WriteBatcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl WriteBatcher {
    /// Batches of at most `bounds.statements` statements and `bounds.bytes` bytes of values
    /// (by the callers' estimates; a larger write goes alone), `in_flight` batches at once.
    /// With one statement per batch every write goes alone, as without a batcher.
    pub fn new(session: Arc<Session>, bounds: BatchBounds, in_flight: usize) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        let bounds = BatchBounds {
            statements: bounds.statements.max(1),
            bytes: bounds.bytes,
        };
        tokio::spawn(send_batches(session, pending, bounds, in_flight.max(1)));
        Self { queue }
    }

    /// Applies `write`, with other callers' writes in the same request when they wait at
    /// the same time.
    pub async fn write(&self, write: Write) -> BackendResult<()> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Pending { write, done })
            .map_err(|_| BackendError::unavailable("cassandra", "the write batcher stopped"))?;
        answer
            .await
            .map_err(|_| BackendError::unavailable("cassandra", "the write batcher stopped"))?
    }
}

/// Takes waiting writes into batches while a batch may be sent; ends when every
/// [`WriteBatcher`] is dropped.
async fn send_batches(
    session: Arc<Session>,
    pending: mpsc::UnboundedReceiver<Pending>,
    bounds: BatchBounds,
    in_flight: usize,
) {
    let mut waiting = Waiting::new(pending, in_flight);
    while let Some((first, permit)) = waiting.next().await {
        // Whatever arrived while waiting for a slot joins `first`, as far as it fits.
        let mut group = Group::default();
        group.add(first);
        while let Some(next) = waiting.another() {
            if group.fits(&next.write, bounds) {
                group.add(next);
            } else {
                waiting.hold_back(next);
                break;
            }
        }
        let session = session.clone();
        tokio::spawn(async move {
            group.send(session.as_ref()).await;
            drop(permit);
        });
    }
}

/// A batcher's waiting callers and its request slots (shared with
/// [`super::reads`]): hands out the next caller once a slot is free, then whatever
/// else waits by then.
pub(super) struct Waiting<T> {
    pending: mpsc::UnboundedReceiver<T>,
    held_back: Option<T>,
    slots: Arc<Semaphore>,
}

impl<T> Waiting<T> {
    pub(super) fn new(pending: mpsc::UnboundedReceiver<T>, in_flight: usize) -> Self {
        Self {
            pending,
            held_back: None,
            slots: Arc::new(Semaphore::new(in_flight.max(1))),
        }
    }

    /// The next caller and a request slot for it; `None` once every sender is gone.
    pub(super) async fn next(&mut self) -> Option<(T, OwnedSemaphorePermit)> {
        let first = match self.held_back.take() {
            Some(first) => first,
            None => self.pending.recv().await?,
        };
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some((first, slot))
    }

    /// Another caller waiting now, if any.
    pub(super) fn another(&mut self) -> Option<T> {
        self.pending.try_recv().ok()
    }

    /// Keeps `caller` to go first in the next request.
    pub(super) fn hold_back(&mut self, caller: T) {
        self.held_back = Some(caller);
    }
}

/// The callers of one batch.
#[derive(Default)]
struct Group {
    callers: Vec<Pending>,
    rows: HashSet<u64>,
    statements: usize,
    bytes: usize,
}

impl Group {
    fn fits(&self, write: &Write, bounds: BatchBounds) -> bool {
        self.statements + write.statements.len() <= bounds.statements
            && self.bytes + write.bytes <= bounds.bytes
            && !write.rows.iter().any(|row| self.rows.contains(row))
    }

    fn add(&mut self, pending: Pending) {
        self.statements += pending.write.statements.len();
        self.bytes += pending.write.bytes;
        self.rows.extend(pending.write.rows.iter().copied());
        self.callers.push(pending);
    }

    /// Sends the group's writes through `server`; answers every caller.
    async fn send(self, server: &impl ExecuteWrites) {
        let writes: Vec<&Write> = self.callers.iter().map(|p| &p.write).collect();
        let result = server.execute(&writes).await;
        match result {
            Err(BackendError::Invalid(_)) if self.callers.len() > 1 => {
                // Someone's write is refused: find whose, caller by caller.
                for caller in self.callers {
                    let alone = server.execute(&[&caller.write]).await;
                    let _ = caller.done.send(alone);
                }
            }
            result => {
                for caller in self.callers {
                    let _ = caller.done.send(result.clone());
                }
            }
        }
    }
}

/// Where a group's writes go: Cassandra, or a test's stand-in.
trait ExecuteWrites {
    /// Applies `writes` as one request.
    fn execute(&self, writes: &[&Write]) -> impl Future<Output = BackendResult<()>> + Send;
}

impl ExecuteWrites for Session {
    async fn execute(&self, writes: &[&Write]) -> BackendResult<()> {
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<&(dyn SerializeRow + Send + Sync)> = Vec::new();
        for statement in writes.iter().flat_map(|write| &write.statements) {
            batch.append_statement(statement.prepared.clone());
            values.push(statement.values.as_ref());
        }
        self.batch(&batch, values)
            .await
            .map(|_| ())
            .map_err(refusal_or_outage)
    }
}

/// A row's identity for [`Write::new`]: a hash of what names it.
pub fn row(parts: impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write of `rows` with an estimated size of `bytes`, and where its answer arrives.
    fn pending(rows: &[u64], bytes: usize) -> (Pending, oneshot::Receiver<BackendResult<()>>) {
        let (done, answer) = oneshot::channel();
        let write = Write {
            statements: Vec::new(),
            rows: rows.to_vec(),
            bytes,
        };
        (Pending { write, done }, answer)
    }

    #[test]
    fn a_group_takes_writes_while_they_fit() {
        let bounds = BatchBounds {
            statements: 10,
            bytes: 1_000,
        };
        let mut group = Group::default();
        group.add(pending(&[1], 100).0);
        assert!(group.fits(&pending(&[2], 900).0.write, bounds));
        assert!(
            !group.fits(&pending(&[1], 100).0.write, bounds),
            "a second write of row 1 waits for the next batch"
        );
        assert!(
            !group.fits(&pending(&[3], 901).0.write, bounds),
            "over the byte bound"
        );
    }

    /// Fails any request carrying a write of row 2 with its error.
    struct RefusesRowTwo(BackendError);

    impl ExecuteWrites for RefusesRowTwo {
        async fn execute(&self, writes: &[&Write]) -> BackendResult<()> {
            if writes.iter().any(|write| write.rows.contains(&2)) {
                Err(self.0.clone())
            } else {
                Ok(())
            }
        }
    }

    /// A group of three whose middle write (row 2) the server refuses.
    async fn send_three(answer: BackendError) -> Vec<BackendResult<()>> {
        let mut group = Group::default();
        let mut answers = Vec::new();
        for row in [1, 2, 3] {
            let (write, answered) = pending(&[row], 10);
            group.add(write);
            answers.push(answered);
        }
        group.send(&RefusesRowTwo(answer)).await;
        let mut results = Vec::new();
        for answered in answers {
            results.push(answered.await.expect("every caller is answered"));
        }
        results
    }

    #[tokio::test]
    async fn a_refused_write_in_a_batch_fails_only_its_caller() {
        let results = send_three(BackendError::Invalid("too large".into())).await;
        assert!(results[0].is_ok(), "{results:?}");
        assert!(
            matches!(results[1], Err(BackendError::Invalid(_))),
            "{results:?}"
        );
        assert!(results[2].is_ok(), "{results:?}");
    }

    #[tokio::test]
    async fn an_outage_reaches_every_caller_of_the_batch() {
        let results = send_three(BackendError::unavailable("cassandra", "timeout")).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(BackendError::Unavailable { .. }))),
            "{results:?}"
        );
    }
}
