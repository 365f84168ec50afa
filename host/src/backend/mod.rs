//! The three backend roles, as traits: the event log, the order store and the status cache,
//! plus the two stores a plugin may touch (its own rows and its own cache keys).
//!
//! Three more roles live beside them: the plugin registry ([`registry`]), plugin
//! announcements ([`announcements`]) and the change feed of recorded entries ([`feed`]).
//!
//! Everything outside this module talks to these traits only; which implementation runs
//! (`kafka`, `cassandra`, `redis`, later `embedded`) is decided once, at start-up, from the
//! configuration. Implementations must be safe to call concurrently.

pub mod announcements;
pub mod cassandra;
pub mod embedded;
pub mod feed;
pub mod kafka;
pub mod memory;
pub mod redis;
pub mod registry;
pub mod wiring;

use async_trait::async_trait;
use uuid::Uuid;

use crate::order::{HistoryEntry, Order, OrderView};

/// A backend call that failed. `Unavailable` means "try again later" (the API answers 503,
/// the worker retries); `Invalid` means the request itself can never succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{backend} unavailable: {detail}")]
    Unavailable {
        backend: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl BackendError {
    pub fn unavailable(backend: &'static str, detail: impl std::fmt::Display) -> Self {
        BackendError::Unavailable {
            backend,
            detail: detail.to_string(),
        }
    }

    /// The backend's name when this is an outage, for `/readyz` and 503 answers.
    pub fn backend(&self) -> Option<&'static str> {
        match self {
            BackendError::Unavailable { backend, .. } => Some(backend),
            BackendError::Invalid(_) => None,
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Where events are published; the worker consumes them in order per order id.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Publishes one message keyed by the order id; returns once the log acknowledged it
    /// durably, or fails within the configured timeout.
    async fn publish(&self, order_id: Uuid, payload: &[u8]) -> BackendResult<()>;
    /// Publishes a message that could not be processed, with the reason, to the dead-letter log.
    async fn publish_dead_letter(
        &self,
        order_id: Option<Uuid>,
        payload: &[u8],
    ) -> BackendResult<()>;
    async fn ping(&self) -> BackendResult<()>;
}

/// One message delivered from the event log to a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    /// No consumer was handed this message before: it has never been processed (see
    /// [`kafka::first_deliveries`]). `false` when the log cannot tell.
    pub first_delivery: bool,
}

/// The consuming side of the event log: a member of a consumer group. Messages of one
/// partition arrive in order; a message marked done is not delivered to the group again
/// once the mark is committed.
#[async_trait]
pub trait EventStream: Send + Sync {
    /// The next message. An error is a log outage; the caller backs off and asks again.
    async fn next(&self) -> BackendResult<Delivery>;
    /// Records that `delivery` is fully handled (committed in the background and on close).
    fn mark_done(&self, delivery: &Delivery) -> BackendResult<()>;
    /// Stops fetching from every assigned partition (membership is kept).
    fn pause(&self) -> BackendResult<()>;
    fn resume(&self) -> BackendResult<()>;
    /// Stops fetching from one partition while its messages wait in the worker, so a long
    /// backlog on one partition neither blocks the others nor piles up in memory; messages
    /// already delivered stay delivered and fetching resumes after the last one. `Ok(false)`:
    /// this log cannot pause a single partition (the worker then waits for room instead).
    fn pause_partition(&self, _topic: &str, _partition: i32) -> BackendResult<bool> {
        Ok(false)
    }
    /// Undoes [`EventStream::pause_partition`].
    fn resume_partition(&self, _topic: &str, _partition: i32) -> BackendResult<()> {
        Ok(())
    }
    /// Commits what was marked done and leaves the group.
    async fn close(&self);
}

/// The result of trying to record an event against an expected order version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry was recorded and the order moved to the new version.
    Yes,
    /// The order's version was not the expected one: someone else recorded an event first.
    VersionConflict,
}

/// A plugin's store write, held back while it decides an event and recorded with the
/// event's outcome ([`OrderStore::record_next_event_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginWrite {
    pub plugin: String,
    pub table: String,
    pub key: String,
    /// The new value; `None` deletes the row.
    pub value: Option<String>,
}

impl PluginWrite {
    /// Applies the write through `store` on its own.
    pub async fn apply(&self, store: &dyn PluginStore) -> BackendResult<()> {
        match &self.value {
            Some(value) => store.put(&self.plugin, &self.table, &self.key, value).await,
            None => store.delete(&self.plugin, &self.table, &self.key).await,
        }
    }
}

/// The result of [`OrderStore::record_next_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Recorded; `revision` is the new state's revision (the basis of the next event).
    Recorded { revision: i64 },
    /// The basis was not the stored state any more; nothing was written.
    Stale,
}

/// The durable order state and history.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Stores a new order unless one with this id exists; returns whether it was created.
    async fn create_order(&self, order: &Order) -> BackendResult<bool>;
    /// Stores an accepted order (its `created` event is published) unless anything is stored
    /// for it: the API right after publishing, so a GET finds it before the worker does, and
    /// the worker for a `created` event of an order it does not find. It never replaces what
    /// is stored (the worker may have advanced the order already) and needs no consensus
    /// round: Cassandra writes it with the oldest possible timestamp, so every other write wins.
    async fn store_accepted_order(&self, order: &Order) -> BackendResult<()> {
        self.create_order(order).await.map(|_| ())
    }
    /// The order and the ids of every event already recorded for it.
    async fn load_order(&self, id: Uuid) -> BackendResult<Option<StoredOrder>>;
    /// Records `entry` and moves the order to `updated` in one step, only if the order is
    /// still at `expected_version`. `updated.version` must be `expected_version + 1`.
    async fn record_event(
        &self,
        updated: &Order,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> BackendResult<Applied>;
    /// Records the next event of an order, decided on `basis` (the state as loaded, or as
    /// this method left it last time), moving it to `updated`, and writes the `order_status`
    /// projection with it. Built for the pipeline's worker, which decides each order's events
    /// one at a time in the order of its partition, and whose deciding is deterministic (the
    /// same state and event give the same decision): a store may then skip any consensus
    /// round and make the write idempotent instead, so recording one event twice (a
    /// redelivery, a zombie worker after a rebalance deciding alike) leaves one history entry
    /// and an older state never replaces a newer one.
    ///
    /// `Advance::Stale`: the store saw the basis was not current (the caller reloads).
    /// Cassandra never says so: it writes unconditionally, ordered by write time. The default
    /// is the version compare-and-set of [`OrderStore::record_event`], storing the order
    /// first when the basis was never stored.
    async fn record_next_event(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
    ) -> BackendResult<Advance> {
        if basis.revision.is_none() {
            self.store_accepted_order(&basis.order).await?;
        }
        match self
            .record_event(updated, basis.order.version, entry)
            .await?
        {
            Applied::Yes => {
                self.project_status(updated).await?;
                Ok(Advance::Recorded {
                    revision: basis.revision.unwrap_or(0).saturating_add(1),
                })
            }
            Applied::VersionConflict => Ok(Advance::Stale),
        }
    }
    /// Whether [`OrderStore::record_next_event_with`] records the deciding plugin's store
    /// writes in the same request as the event; if not, the worker applies them itself,
    /// just before recording the event.
    fn records_plugin_writes(&self) -> bool {
        false
    }
    /// [`OrderStore::record_next_event`], with the store writes the plugin made while
    /// deciding the event (held back until now) applied in the same request: one round
    /// trip, and a plugin's writes take effect with its recorded decision, not before. Only
    /// called when [`OrderStore::records_plugin_writes`] says so; by default a store refuses
    /// writes it was handed.
    async fn record_next_event_with(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
        plugin_writes: &[PluginWrite],
    ) -> BackendResult<Advance> {
        if !plugin_writes.is_empty() {
            return Err(BackendError::Invalid(
                "this order store does not record plugin writes with an event".into(),
            ));
        }
        self.record_next_event(basis, updated, entry).await
    }
    /// One page of the order's history, oldest first: the entries after sequence number
    /// `after_seq` (0: from the start), at most `limit` of them.
    async fn history_page(
        &self,
        id: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> BackendResult<Vec<HistoryEntry>>;
    /// The order's whole history, oldest first, read page by page.
    async fn history(&self, id: Uuid) -> BackendResult<Vec<HistoryEntry>> {
        /// Entries read per page when the whole history is wanted.
        const PAGE: usize = 1_000;
        let mut entries: Vec<HistoryEntry> = Vec::new();
        loop {
            let after = entries.last().map_or(0, |entry| entry.seq);
            let page = self.history_page(id, after, PAGE).await?;
            let full = page.len() == PAGE;
            entries.extend(page);
            if !full {
                return Ok(entries);
            }
        }
    }
    /// Writes the original service's `order_status` row (a projection of the order).
    async fn project_status(&self, order: &Order) -> BackendResult<()>;
    /// Reserves a client's `Idempotency-Key` for `order_id` unless the key is already
    /// reserved, atomically (concurrent claims of one key: exactly one gets `Claimed`).
    /// A reservation lasts 24 hours. An outage is an error: no key, no order.
    ///
    /// Every store used by the API must implement this; the default refuses every key (the
    /// API then answers 500 to a request with an `Idempotency-Key`, never creating an order).
    async fn claim_idempotency_key(
        &self,
        key: &str,
        order_id: Uuid,
        request_hash: &str,
    ) -> BackendResult<IdempotencyClaim> {
        let _ = (key, order_id, request_hash);
        Err(BackendError::Invalid(
            "this order store does not support Idempotency-Key".into(),
        ))
    }
    /// One page of the records `customer` owns in `pipeline`, newest first: those created
    /// before `before` (exclusive; `None`: from the newest), at most `limit`. A record is
    /// filed under its customer when it is created (`create_order`, `store_accepted_order`);
    /// records stored before this index existed are not listed.
    async fn customer_records(
        &self,
        pipeline: &str,
        customer: &str,
        before: Option<RecordKey>,
        limit: usize,
    ) -> BackendResult<Vec<RecordKey>>;
    async fn ping(&self) -> BackendResult<()>;
}

/// Where a record sits in its customer's list: newest first by creation time, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordKey {
    pub created_at_ms: i64,
    pub id: Uuid,
}

/// The result of [`OrderStore::claim_idempotency_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// This call reserved the key for the order id it passed.
    Claimed,
    /// The key was reserved earlier, for this order and a request with this hash.
    Existing {
        order_id: Uuid,
        request_hash: String,
    },
}

/// An order together with the events already recorded for it.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    pub recorded_events: Vec<Uuid>,
    /// The store's revision of this state, `None` for an order not stored yet (built from its
    /// `created` event). Cassandra: the write time of the state, which the next event's write
    /// exceeds; the embedded store counts nothing here.
    pub revision: Option<i64>,
}

impl StoredOrder {
    /// An accepted order that is not stored yet, as its `created` event describes it.
    pub fn not_stored(order: Order) -> Self {
        StoredOrder {
            order,
            recorded_events: Vec::new(),
            revision: None,
        }
    }

    /// The state after `entry` moved it to `updated` at `revision`.
    pub fn advanced(&self, updated: Order, entry: &HistoryEntry, revision: i64) -> Self {
        let mut recorded_events = self.recorded_events.clone();
        recorded_events.push(entry.event_id);
        StoredOrder {
            order: updated,
            recorded_events,
            revision: Some(revision),
        }
    }
}

/// The fast status cache in front of the order store.
#[async_trait]
pub trait StatusCache: Send + Sync {
    async fn get(&self, id: Uuid) -> BackendResult<Option<OrderView>>;
    /// Stores the view unless the cache already holds the same or a newer version of the
    /// order; returns whether it was written. A cached status is never replaced by an older one.
    async fn put(&self, view: &OrderView) -> BackendResult<bool>;
    async fn ping(&self) -> BackendResult<()>;
}

/// Rows a plugin keeps, addressed by (plugin, table, key). The plugin name is supplied by
/// the host, never by the plugin, so a plugin cannot address another plugin's rows.
#[async_trait]
pub trait PluginStore: Send + Sync {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>>;
    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()>;
    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()>;
}

/// Cache keys a plugin keeps, under a prefix of the plugin's name chosen by the host.
#[async_trait]
pub trait PluginCache: Send + Sync {
    async fn get(&self, plugin: &str, key: &str) -> BackendResult<Option<String>>;
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl_seconds: Option<u32>,
    ) -> BackendResult<()>;
    async fn incr(&self, plugin: &str, key: &str, delta: i64) -> BackendResult<i64>;
    async fn delete(&self, plugin: &str, key: &str) -> BackendResult<()>;
}
