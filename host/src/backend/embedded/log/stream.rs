//! The consuming side of an embedded log: one member of a consumer group, handed each
//! partition's records in offset order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::ReadableDatabase;

use super::{Command, FETCH_PER_PARTITION, RECORDS, Shared, lock, storage, unavailable};
use crate::backend::{BackendError, BackendResult, Delivery, EventStream};

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
    /// The stream of `group`, handing out each partition's records from `positions` on.
    pub(super) fn new(shared: Arc<Shared>, group: &str, positions: Vec<u64>) -> Self {
        Self {
            shared,
            group: group.to_owned(),
            paused: AtomicBool::new(false),
            state: Mutex::new(StreamState {
                positions,
                buffer: VecDeque::new(),
                closed: false,
            }),
        }
    }

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
