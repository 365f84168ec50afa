//! The embedded log's writer thread: the one thread that writes a log's file, group-committing
//! every command waiting (publishes, offset commits, dead letters) in one transaction.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use redb::ReadableTable;

use super::{
    COMMIT_INTERVAL, COMMITTED, Command, Core, DEAD_LETTER_RETENTION, DEAD_LETTERS,
    MAX_GROUP_COMMIT, PARTITION_ENDS, RECORDS, lock, storage,
};
use crate::backend::BackendResult;

/// The one thread that writes the file: it takes every command waiting, writes them in one
/// transaction, commits (fsync) and only then answers, so each answer means "on disk".
pub(super) struct Writer {
    core: Arc<Core>,
    /// partition → offset of the next record, as committed.
    ends: Vec<u64>,
    next_dead_letter: u64,
    /// group → partition → offset, as committed.
    committed: HashMap<String, HashMap<u32, u64>>,
    last_offset_commit: Instant,
}

impl Writer {
    /// A writer for `core`'s file, whose partitions end at `ends` and whose next dead letter
    /// is numbered `next_dead_letter`.
    pub(super) fn new(core: Arc<Core>, ends: Vec<u64>, next_dead_letter: u64) -> Self {
        Self {
            core,
            ends,
            next_dead_letter,
            committed: HashMap::new(),
            last_offset_commit: Instant::now(),
        }
    }

    pub(super) fn run(mut self, commands: mpsc::Receiver<Command>) {
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
