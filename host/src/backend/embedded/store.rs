//! The embedded order store: orders, their history, the `order_status` projection and the
//! plugins' rows in one redb file (`<dir>/store.redb`).
//!
//! Guarantees, matching the Cassandra store:
//! - Every write is one ACID transaction, fsynced before the call returns.
//! - [`OrderStore::record_event`] reads the order and writes the new state, the history entry
//!   and the event id (into `recorded_events`) in one write transaction, only if the order is
//!   still at the expected version: the conditional batch of Cassandra, without a race
//!   (redb runs one write transaction at a time).
//! - [`OrderStore::create_order`] is insert-if-absent, in one transaction.
//! - The worker's [`OrderStore::record_next_event_with`] is one transaction too: the order
//!   stored first when it never was, the version check, the new state, the history entry, the
//!   projection and the deciding plugin's store writes. A plugin's writes take effect with its
//!   recorded decision or not at all, so a redelivered event never sees them twice.
//! - `order_status` keeps the original service's projection; a projection never replaces a
//!   newer version's.
//!
//! The plugin registry keeps its tables in the same file (see [`super::registry`]).
//!
//! Values are JSON, keyed by the order id (history by order id and sequence number, so it
//! reads oldest first). Each call runs on the blocking pool, never on the async runtime.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{check_format, encode, open_database, storage_error};
use crate::backend::{
    Advance, Applied, BackendError, BackendResult, IdempotencyClaim, OrderStore, PluginStore,
    PluginWrite, RecordKey, StoredOrder,
};
use crate::order::{DEFAULT_PIPELINE, HistoryEntry, Order, OrderRequest, now_ms};

const BACKEND: &str = "embedded store";

/// The file inside the data directory.
const FILE_NAME: &str = "store.redb";
/// redb's page cache: recently touched orders stay in memory.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The format this code writes; a file of another format is refused rather than misread.
const FORMAT_VERSION: u64 = 1;
/// How long an `Idempotency-Key` stays reserved (Cassandra: the table's default TTL).
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3600 * 1000;
/// How many expired reservations one claim deletes, so expiry keeps up without long writes.
const EXPIRED_KEYS_PER_CLAIM: usize = 16;

/// order id → [`OrderRecord`] (JSON).
const ORDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("orders");
/// (order id, seq) → [`HistoryEntry`] (JSON).
const HISTORY: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("history");
/// order id → [`StatusRow`] (JSON): the original service's `order_status`.
const ORDER_STATUS: TableDefinition<u128, &[u8]> = TableDefinition::new("order_status");
/// (plugin, table, key) → value.
const PLUGIN_DATA: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("plugin_data");
/// client key → [`IdempotencyRow`] (JSON): `Idempotency-Key` reservations.
const IDEMPOTENCY_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency_keys");
/// (created at ms, client key) → (): the reservations in age order, to expire them.
const IDEMPOTENCY_BY_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_keys_by_age");
/// (pipeline, customer, created at ms, order id) → (): each customer's records, for
/// `customer_records` (newest first is a reverse range).
const CUSTOMER_RECORDS: TableDefinition<(&str, &str, i64, u128), ()> =
    TableDefinition::new("customer_records");
/// "format" → value.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn unavailable(error: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, error)
}

fn storage(error: impl Into<redb::Error>) -> BackendError {
    storage_error(BACKEND, error)
}

fn corrupt(what: &str, id: Uuid, error: serde_json::Error) -> BackendError {
    BackendError::Invalid(format!("stored {what} of order {id} is corrupt: {error}"))
}

fn default_pipeline() -> String {
    DEFAULT_PIPELINE.to_owned()
}

/// An order's state as stored: the order and the ids of the events recorded for it.
#[derive(Debug, Serialize, Deserialize)]
struct OrderRecord {
    /// Absent in records written before pipelines existed: those are orders.
    #[serde(default = "default_pipeline")]
    pipeline: String,
    status: String,
    version: u64,
    request: OrderRequest,
    attributes: Map<String, Value>,
    created_at_ms: i64,
    updated_at_ms: i64,
    recorded_events: Vec<Uuid>,
}

impl OrderRecord {
    fn new(order: &Order, recorded_events: Vec<Uuid>) -> Self {
        Self {
            pipeline: order.pipeline.clone(),
            status: order.status.clone(),
            version: order.version,
            request: order.request.clone(),
            attributes: order.attributes.clone(),
            created_at_ms: order.created_at_ms,
            updated_at_ms: order.updated_at_ms,
            recorded_events,
        }
    }

    fn decode(id: Uuid, bytes: &[u8]) -> BackendResult<Self> {
        serde_json::from_slice(bytes).map_err(|e| corrupt("state", id, e))
    }

    fn into_stored(self, id: Uuid) -> StoredOrder {
        StoredOrder {
            order: Order {
                id,
                pipeline: self.pipeline,
                status: self.status,
                version: self.version,
                request: self.request,
                attributes: self.attributes,
                created_at_ms: self.created_at_ms,
                updated_at_ms: self.updated_at_ms,
            },
            recorded_events: self.recorded_events,
            revision: Some(0),
        }
    }
}

/// One `order_status` row.
#[derive(Debug, Serialize, Deserialize)]
struct StatusRow {
    status: String,
    version: u64,
    updated_at_ms: i64,
}

/// Files order `id` under its customer (when it names one), in `write`.
fn file_under_customer(
    write: &redb::WriteTransaction,
    pipeline: &str,
    customer: Option<&str>,
    created_at_ms: i64,
    id: u128,
) -> BackendResult<()> {
    let Some(customer) = customer else {
        return Ok(());
    };
    let mut index = write.open_table(CUSTOMER_RECORDS).map_err(storage)?;
    index
        .insert((pipeline, customer, created_at_ms, id), ())
        .map_err(storage)?;
    Ok(())
}

/// Writes `order`'s `order_status` row in `write` unless a newer version's is there (like
/// Cassandra's version-derived cell timestamps: older never wins).
fn project_status_in(write: &redb::WriteTransaction, order: &Order) -> BackendResult<()> {
    let id = order.id;
    let row = encode(&StatusRow {
        status: order.status.clone(),
        version: order.version,
        updated_at_ms: order.updated_at_ms,
    })?;
    let mut table = write.open_table(ORDER_STATUS).map_err(storage)?;
    let stored_version = match table.get(id.as_u128()).map_err(storage)? {
        Some(bytes) => serde_json::from_slice::<StatusRow>(bytes.value())
            .map(|row| row.version)
            .ok(),
        None => None,
    };
    if stored_version.is_some_and(|stored| stored > order.version) {
        return Ok(());
    }
    table
        .insert(id.as_u128(), row.as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Applies a plugin's store writes in `write`.
fn apply_plugin_writes(
    write: &redb::WriteTransaction,
    plugin_writes: &[PluginWrite],
) -> BackendResult<()> {
    if plugin_writes.is_empty() {
        return Ok(());
    }
    let mut rows = write.open_table(PLUGIN_DATA).map_err(storage)?;
    for plugin_write in plugin_writes {
        let address = (
            plugin_write.plugin.as_str(),
            plugin_write.table.as_str(),
            plugin_write.key.as_str(),
        );
        match &plugin_write.value {
            Some(value) => {
                rows.insert(address, value.as_str()).map_err(storage)?;
            }
            None => {
                rows.remove(address).map_err(storage)?;
            }
        }
    }
    Ok(())
}

/// Moves the stored order to `updated` and adds its history entry (`entry`, encoded, at
/// `seq`) in `write`, only if the order is at `expected_version`; `false`, with nothing
/// written, when it is not (the caller drops the transaction). An order not stored yet is
/// stored first from `never_stored` (filed under its customer) when given, else it conflicts.
fn advance_in(
    write: &redb::WriteTransaction,
    updated: &Order,
    expected_version: u64,
    seq: u64,
    event_id: Uuid,
    entry: &[u8],
    never_stored: Option<&Order>,
) -> BackendResult<bool> {
    let id = updated.id.as_u128();
    let mut orders = write.open_table(ORDERS).map_err(storage)?;
    let current = match orders.get(id).map_err(storage)? {
        Some(bytes) => OrderRecord::decode(updated.id, bytes.value())?,
        None => match never_stored {
            Some(order) => {
                file_under_customer(
                    write,
                    &order.pipeline,
                    order.request.customer.as_deref(),
                    order.created_at_ms,
                    id,
                )?;
                OrderRecord::new(order, Vec::new())
            }
            None => return Ok(false),
        },
    };
    if current.version != expected_version {
        return Ok(false);
    }
    let mut recorded_events = current.recorded_events;
    if !recorded_events.contains(&event_id) {
        recorded_events.push(event_id);
    }
    let record = encode(&OrderRecord::new(updated, recorded_events))?;
    orders.insert(id, record.as_slice()).map_err(storage)?;
    let mut history = write.open_table(HISTORY).map_err(storage)?;
    history.insert((id, seq), entry).map_err(storage)?;
    Ok(true)
}

/// One `Idempotency-Key` reservation.
#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyRow {
    order_id: Uuid,
    request_hash: String,
    created_at_ms: i64,
}

/// The embedded order store. Cheap to clone; the file stays open while any clone lives.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens the store in `dir` (creating both when missing). Fails if another handle has
    /// the directory's store open. Blocks briefly on disk: call it at start-up.
    pub fn open(dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = dir.as_ref().join(FILE_NAME);
        let db = open_database(&path, CACHE_BYTES)?;
        prepare(&db).map_err(|e| anyhow::anyhow!("opening the store {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "opened the embedded store");
        Ok(Self { db: Arc::new(db) })
    }

    /// The file's database, for the roles that keep their tables beside the store's.
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `work` on the blocking pool with the database.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> BackendResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(unavailable)?
    }

    /// The `order_status` projection of an order: (status, version).
    #[cfg(test)]
    async fn projected_status(&self, id: Uuid) -> BackendResult<Option<(String, u64)>> {
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(ORDER_STATUS).map_err(storage)?;
            let Some(bytes) = table.get(id.as_u128()).map_err(storage)? else {
                return Ok(None);
            };
            let row: StatusRow =
                serde_json::from_slice(bytes.value()).map_err(|e| corrupt("status", id, e))?;
            Ok(Some((row.status, row.version)))
        })
        .await
    }
}

/// Creates the tables of a new store and checks the format of an existing one.
fn prepare(db: &Database) -> anyhow::Result<()> {
    let write = db.begin_write()?;
    {
        let mut meta = write.open_table(META)?;
        check_format(&mut meta, FORMAT_VERSION)?;
        write.open_table(ORDERS)?;
        write.open_table(HISTORY)?;
        write.open_table(ORDER_STATUS)?;
        write.open_table(PLUGIN_DATA)?;
        write.open_table(IDEMPOTENCY_KEYS)?;
        write.open_table(IDEMPOTENCY_BY_AGE)?;
        write.open_table(CUSTOMER_RECORDS)?;
    }
    write.commit()?;
    Ok(())
}

#[async_trait]
impl OrderStore for EmbeddedStore {
    async fn create_order(&self, order: &Order) -> BackendResult<bool> {
        let id = order.id.as_u128();
        let bytes = encode(&OrderRecord::new(order, Vec::new()))?;
        let pipeline = order.pipeline.clone();
        let customer = order.request.customer.clone();
        let created_at_ms = order.created_at_ms;
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            {
                let mut orders = write.open_table(ORDERS).map_err(storage)?;
                if orders.get(id).map_err(storage)?.is_some() {
                    return Ok(false);
                }
                orders.insert(id, bytes.as_slice()).map_err(storage)?;
            }
            file_under_customer(&write, &pipeline, customer.as_deref(), created_at_ms, id)?;
            write.commit().map_err(storage)?;
            Ok(true)
        })
        .await
    }

    async fn load_order(&self, id: Uuid) -> BackendResult<Option<StoredOrder>> {
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let orders = read.open_table(ORDERS).map_err(storage)?;
            let Some(bytes) = orders.get(id.as_u128()).map_err(storage)? else {
                return Ok(None);
            };
            Ok(Some(
                OrderRecord::decode(id, bytes.value())?.into_stored(id),
            ))
        })
        .await
    }

    async fn record_event(
        &self,
        updated: &Order,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> BackendResult<Applied> {
        debug_assert_eq!(updated.version, expected_version + 1);
        let updated = updated.clone();
        let seq = entry.seq;
        let event_id = entry.event_id;
        let entry = encode(entry)?;
        self.run(move |db| {
            // Dropping an uncommitted transaction aborts it: a conflict changes nothing.
            let write = db.begin_write().map_err(storage)?;
            if !advance_in(
                &write,
                &updated,
                expected_version,
                seq,
                event_id,
                &entry,
                None,
            )? {
                return Ok(Applied::VersionConflict);
            }
            write.commit().map_err(storage)?;
            Ok(Applied::Yes)
        })
        .await
    }

    async fn history_page(
        &self,
        id: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> BackendResult<Vec<HistoryEntry>> {
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let history = read.open_table(HISTORY).map_err(storage)?;
            let key = id.as_u128();
            let mut entries = Vec::new();
            if after_seq == u64::MAX {
                return Ok(entries);
            }
            let rows = history
                .range((key, after_seq + 1)..=(key, u64::MAX))
                .map_err(storage)?;
            for row in rows.take(limit) {
                let (_, bytes) = row.map_err(storage)?;
                entries.push(
                    serde_json::from_slice(bytes.value()).map_err(|e| corrupt("history", id, e))?,
                );
            }
            Ok(entries)
        })
        .await
    }

    async fn customer_records(
        &self,
        pipeline: &str,
        customer: &str,
        before: Option<RecordKey>,
        limit: usize,
    ) -> BackendResult<Vec<RecordKey>> {
        let (pipeline, customer) = (pipeline.to_owned(), customer.to_owned());
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let index = read.open_table(CUSTOMER_RECORDS).map_err(storage)?;
            let start = (pipeline.as_str(), customer.as_str(), i64::MIN, 0u128);
            let end = match before {
                Some(key) => (
                    pipeline.as_str(),
                    customer.as_str(),
                    key.created_at_ms,
                    key.id.as_u128(),
                ),
                None => (pipeline.as_str(), customer.as_str(), i64::MAX, u128::MAX),
            };
            let mut keys = Vec::new();
            let rows = index.range(start..end).map_err(storage)?;
            for row in rows.rev().take(limit) {
                let (key, _) = row.map_err(storage)?;
                let (_, _, created_at_ms, id) = key.value();
                keys.push(RecordKey {
                    created_at_ms,
                    id: Uuid::from_u128(id),
                });
            }
            Ok(keys)
        })
        .await
    }

    async fn project_status(&self, order: &Order) -> BackendResult<()> {
        let order = order.clone();
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            project_status_in(&write, &order)?;
            write.commit().map_err(storage)
        })
        .await
    }

    async fn record_next_event(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
    ) -> BackendResult<Advance> {
        self.record_next_event_with(basis, updated, entry, &[])
            .await
    }

    fn records_plugin_writes(&self) -> bool {
        true
    }

    /// One transaction (see the module's documentation); `Stale`, with nothing written, when
    /// the stored order is not at the basis's version.
    async fn record_next_event_with(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
        plugin_writes: &[PluginWrite],
    ) -> BackendResult<Advance> {
        debug_assert_eq!(updated.version, basis.order.version + 1);
        let never_stored = basis.revision.is_none().then(|| basis.order.clone());
        let expected_version = basis.order.version;
        let revision = basis.revision.unwrap_or(0).saturating_add(1);
        let updated = updated.clone();
        let (seq, event_id) = (entry.seq, entry.event_id);
        let entry = encode(entry)?;
        let plugin_writes = plugin_writes.to_vec();
        self.run(move |db| {
            // Dropping an uncommitted transaction aborts it: a stale basis changes nothing.
            let write = db.begin_write().map_err(storage)?;
            if !advance_in(
                &write,
                &updated,
                expected_version,
                seq,
                event_id,
                &entry,
                never_stored.as_ref(),
            )? {
                return Ok(Advance::Stale);
            }
            project_status_in(&write, &updated)?;
            apply_plugin_writes(&write, &plugin_writes)?;
            write.commit().map_err(storage)?;
            Ok(Advance::Recorded { revision })
        })
        .await
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        order_id: Uuid,
        request_hash: &str,
    ) -> BackendResult<IdempotencyClaim> {
        let key = key.to_owned();
        let now = now_ms();
        let row = encode(&IdempotencyRow {
            order_id,
            request_hash: request_hash.to_owned(),
            created_at_ms: now,
        })?;
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            {
                let mut keys = write.open_table(IDEMPOTENCY_KEYS).map_err(storage)?;
                let mut by_age = write.open_table(IDEMPOTENCY_BY_AGE).map_err(storage)?;
                expire_idempotency_keys(&mut keys, &mut by_age, now)?;
                let existing = match keys.get(key.as_str()).map_err(storage)? {
                    Some(bytes) => Some(
                        serde_json::from_slice::<IdempotencyRow>(bytes.value()).map_err(|e| {
                            BackendError::Invalid(format!(
                                "stored idempotency key {key:?} is corrupt: {e}"
                            ))
                        })?,
                    ),
                    None => None,
                };
                if let Some(existing) = existing {
                    if existing.created_at_ms + IDEMPOTENCY_KEY_TTL_MS > now {
                        return Ok(IdempotencyClaim::Existing {
                            order_id: existing.order_id,
                            request_hash: existing.request_hash,
                        });
                    }
                    by_age
                        .remove((existing.created_at_ms, key.as_str()))
                        .map_err(storage)?;
                }
                keys.insert(key.as_str(), row.as_slice()).map_err(storage)?;
                by_age.insert((now, key.as_str()), ()).map_err(storage)?;
            }
            write.commit().map_err(storage)?;
            Ok(IdempotencyClaim::Claimed)
        })
        .await
    }

    async fn ping(&self) -> BackendResult<()> {
        self.run(|db| {
            db.begin_read().map_err(storage)?;
            Ok(())
        })
        .await
    }
}

/// Deletes up to [`EXPIRED_KEYS_PER_CLAIM`] of the oldest expired reservations.
fn expire_idempotency_keys(
    keys: &mut redb::Table<&str, &[u8]>,
    by_age: &mut redb::Table<(i64, &str), ()>,
    now: i64,
) -> BackendResult<()> {
    let expired: Vec<(i64, String)> = by_age
        .range(..(now - IDEMPOTENCY_KEY_TTL_MS + 1, ""))
        .map_err(storage)?
        .take(EXPIRED_KEYS_PER_CLAIM)
        .map(|row| {
            row.map(|(age, _)| {
                let (created_at_ms, key) = age.value();
                (created_at_ms, key.to_owned())
            })
        })
        .collect::<Result<_, _>>()
        .map_err(storage)?;
    for (created_at_ms, key) in expired {
        by_age
            .remove((created_at_ms, key.as_str()))
            .map_err(storage)?;
        keys.remove(key.as_str()).map_err(storage)?;
    }
    Ok(())
}

#[async_trait]
impl PluginStore for EmbeddedStore {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>> {
        let address = (plugin.to_owned(), table.to_owned(), key.to_owned());
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let rows = read.open_table(PLUGIN_DATA).map_err(storage)?;
            let (plugin, table, key) = &address;
            Ok(rows
                .get((plugin.as_str(), table.as_str(), key.as_str()))
                .map_err(storage)?
                .map(|value| value.value().to_owned()))
        })
        .await
    }

    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()> {
        self.write_plugin_row(PluginWrite {
            plugin: plugin.to_owned(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: Some(value.to_owned()),
        })
        .await
    }

    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()> {
        self.write_plugin_row(PluginWrite {
            plugin: plugin.to_owned(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: None,
        })
        .await
    }
}

impl EmbeddedStore {
    /// Applies one plugin write on its own, in a transaction of its own.
    async fn write_plugin_row(&self, plugin_write: PluginWrite) -> BackendResult<()> {
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            apply_plugin_writes(&write, std::slice::from_ref(&plugin_write))?;
            write.commit().map_err(storage)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Outcome;

    fn entry(seq: u64, event_id: Uuid, to: &str) -> HistoryEntry {
        HistoryEntry {
            seq,
            event_id,
            event_type: "created".into(),
            outcome: Outcome::Transitioned,
            from: "created".into(),
            to: to.into(),
            reason: "test".into(),
            plugin: "order".into(),
            plugin_version: "0.1.0".into(),
            at_ms: 1_700_000_000_000 + seq as i64,
        }
    }

    fn advanced(order: &Order, to: &str) -> Order {
        let mut next = order.clone();
        next.version += 1;
        next.status = to.into();
        next
    }

    #[test]
    fn a_record_written_before_pipelines_is_an_order() {
        let id = Uuid::new_v4();
        let legacy = br#"{"status":"paid","version":2,"request":{},"attributes":{},
            "created_at_ms":1,"updated_at_ms":2,"recorded_events":[]}"#;
        let stored = OrderRecord::decode(id, legacy).unwrap().into_stored(id);
        assert_eq!(stored.order.pipeline, DEFAULT_PIPELINE);
        assert_eq!(stored.order.status, "paid");
    }

    #[tokio::test]
    async fn orders_history_and_plugin_rows_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 1_700_000_000_000);
        let event = Uuid::new_v4();
        let updated = advanced(&order, "processed");
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            assert!(store.create_order(&order).await.unwrap());
            let applied = store
                .record_event(&updated, 0, &entry(1, event, "processed"))
                .await
                .unwrap();
            assert_eq!(applied, Applied::Yes);
            store.project_status(&updated).await.unwrap();
            PluginStore::put(&store, "order", "payments", "p-1", "used")
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let stored = store.load_order(order.id).await.unwrap().unwrap();
        assert_eq!(stored.order, updated);
        assert_eq!(stored.recorded_events, vec![event]);
        assert_eq!(
            store.history(order.id).await.unwrap(),
            vec![entry(1, event, "processed")]
        );
        assert_eq!(
            store.projected_status(order.id).await.unwrap(),
            Some(("processed".into(), 1))
        );
        assert_eq!(
            PluginStore::get(&store, "order", "payments", "p-1")
                .await
                .unwrap()
                .as_deref(),
            Some("used")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_one_of_concurrent_writers_at_the_same_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
        store.create_order(&order).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..16 {
            let store = store.clone();
            let updated = advanced(&order, &format!("status-{n}"));
            tasks.spawn(async move {
                let event = Uuid::new_v4();
                let applied = store
                    .record_event(&updated, 0, &entry(1, event, &updated.status))
                    .await
                    .unwrap();
                (applied, event, updated.status)
            });
        }
        let mut winners = Vec::new();
        while let Some(result) = tasks.join_next().await {
            let (applied, event, status) = result.unwrap();
            if applied == Applied::Yes {
                winners.push((event, status));
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let stored = store.load_order(order.id).await.unwrap().unwrap();
        assert_eq!(stored.order.status, winners[0].1);
        assert_eq!(stored.recorded_events, vec![winners[0].0]);
        assert_eq!(store.history(order.id).await.unwrap().len(), 1);
    }

    /// A stale basis (another decision was recorded first) writes nothing: neither the state
    /// nor the plugin's writes, which the worker makes again when it decides again.
    #[tokio::test]
    async fn a_stale_basis_records_neither_the_event_nor_the_plugin_s_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
        store.create_order(&order).await.unwrap();
        let basis = store.load_order(order.id).await.unwrap().unwrap();
        let write = |key: &str| PluginWrite {
            plugin: "order".into(),
            table: "t".into(),
            key: key.into(),
            value: Some("v".into()),
        };
        let first = advanced(&order, "processed");
        let recorded = store
            .record_next_event_with(
                &basis,
                &first,
                &entry(1, Uuid::new_v4(), "processed"),
                &[write("first")],
            )
            .await
            .unwrap();
        assert!(matches!(recorded, Advance::Recorded { .. }), "{recorded:?}");

        let rival = advanced(&order, "rejected");
        let stale = store
            .record_next_event_with(
                &basis,
                &rival,
                &entry(1, Uuid::new_v4(), "rejected"),
                &[write("rival")],
            )
            .await
            .unwrap();
        assert_eq!(stale, Advance::Stale);
        assert_eq!(
            store.load_order(order.id).await.unwrap().unwrap().order,
            first
        );
        assert_eq!(store.history(order.id).await.unwrap().len(), 1);
        assert_eq!(
            store.projected_status(order.id).await.unwrap(),
            Some(("processed".into(), 1))
        );
        let row = |key: &'static str| PluginStore::get(&store, "order", "t", key);
        assert_eq!(row("first").await.unwrap().as_deref(), Some("v"));
        assert_eq!(row("rival").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_older_projection_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
        let newer = advanced(&advanced(&order, "paid"), "shipped");
        store.project_status(&newer).await.unwrap();
        store.project_status(&order).await.unwrap();
        assert_eq!(
            store.projected_status(order.id).await.unwrap(),
            Some(("shipped".into(), 2))
        );
    }

    #[tokio::test]
    async fn a_second_open_of_the_directory_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _store = EmbeddedStore::open(dir.path()).unwrap();
        let error = EmbeddedStore::open(dir.path())
            .err()
            .expect("second open fails");
        assert!(error.to_string().contains("already open"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_of_concurrent_claims_of_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..8 {
            let store = store.clone();
            tasks.spawn(async move {
                let order_id = Uuid::new_v4();
                let claim = store
                    .claim_idempotency_key("client-key", order_id, &format!("hash-{n}"))
                    .await
                    .unwrap();
                (claim, order_id, format!("hash-{n}"))
            });
        }
        let mut claims = Vec::new();
        while let Some(result) = tasks.join_next().await {
            claims.push(result.unwrap());
        }
        let winners: Vec<_> = claims
            .iter()
            .filter(|(claim, _, _)| *claim == IdempotencyClaim::Claimed)
            .collect();
        assert_eq!(winners.len(), 1, "{claims:?}");
        let (_, order_id, request_hash) = winners[0].clone();
        for (claim, _, _) in &claims {
            if *claim != IdempotencyClaim::Claimed {
                assert_eq!(
                    *claim,
                    IdempotencyClaim::Existing {
                        order_id,
                        request_hash: request_hash.clone()
                    }
                );
            }
        }
    }

    #[tokio::test]
    async fn an_expired_idempotency_key_can_be_claimed_again_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let old = now_ms() - IDEMPOTENCY_KEY_TTL_MS - 1;
        let row = encode(&IdempotencyRow {
            order_id: Uuid::new_v4(),
            request_hash: "old".into(),
            created_at_ms: old,
        })
        .unwrap();
        let write = store.db.begin_write().unwrap();
        {
            let mut keys = write.open_table(IDEMPOTENCY_KEYS).unwrap();
            let mut by_age = write.open_table(IDEMPOTENCY_BY_AGE).unwrap();
            for key in ["stale", "reused"] {
                keys.insert(key, row.as_slice()).unwrap();
                by_age.insert((old, key), ()).unwrap();
            }
        }
        write.commit().unwrap();

        let claim = store
            .claim_idempotency_key("reused", Uuid::new_v4(), "new")
            .await
            .unwrap();
        assert_eq!(claim, IdempotencyClaim::Claimed);
        let read = store.db.begin_read().unwrap();
        let keys = read.open_table(IDEMPOTENCY_KEYS).unwrap();
        assert!(keys.get("stale").unwrap().is_none(), "expired key kept");
        assert!(keys.get("reused").unwrap().is_some());
        let by_age = read.open_table(IDEMPOTENCY_BY_AGE).unwrap();
        let ages: Vec<i64> = by_age
            .iter()
            .unwrap()
            .map(|row| row.unwrap().0.value().0)
            .collect();
        assert_eq!(ages.len(), 1);
        assert!(ages[0] > old);
    }
}
