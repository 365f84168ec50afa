//! Cassandra: the durable order store (`order_journal`, `order_status`) and the plugins' rows
//! (`plugin_data`). Applies the numbered CQL files in `schema/` at start-up, idempotently.
//!
//! The worker records an event with one unconditional single-partition write whose cells carry
//! write times chained from the state's own, and which adds the event id to
//! `recorded_events`: recording it twice writes the same cells, an older state never replaces
//! a newer one (ARCHITECTURE.md, "Recording an event"). Writes and state reads of concurrent
//! events share requests ([`batcher`], [`reads`]); [`errors`] tells a refusal from an outage.
//! The plugin registry shares the keyspace and session ([`registry`]).

mod batcher;
mod errors;
mod reads;
pub mod registry;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;

use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlTimestamp, CqlValue, Row};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Advance, Applied, BackendError, BackendResult, IdempotencyClaim, OrderStore, PluginStore,
    PluginWrite, RecordKey, StoredOrder,
};
use crate::config::CassandraConfig;
use crate::order::{DEFAULT_PIPELINE, HistoryEntry, Order, OrderRequest, Outcome};
use batcher::{BatchBounds, Statement as BatchStatement, Write, WriteBatcher, row as batch_row};
pub(crate) use errors::refusal_or_outage;
use errors::unavailable;
use reads::{Fetch, ReadBatcher};

/// The CQL migrations, in the order they apply. `{keyspace}` is replaced at run time.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_order_status",
        include_str!("../../../../schema/001_order_status.cql"),
    ),
    (
        "002_order_journal",
        include_str!("../../../../schema/002_order_journal.cql"),
    ),
    (
        "003_plugin_data",
        include_str!("../../../../schema/003_plugin_data.cql"),
    ),
    (
        "004_idempotency_keys",
        include_str!("../../../../schema/004_idempotency_keys.cql"),
    ),
    (
        "005_plugin_registry",
        include_str!("../../../../schema/005_plugin_registry.cql"),
    ),
    (
        "006_plugin_limits",
        include_str!("../../../../schema/006_plugin_limits.cql"),
    ),
    (
        "007_pipelines",
        include_str!("../../../../schema/007_pipelines.cql"),
    ),
    (
        "008_plugin_limit_map",
        include_str!("../../../../schema/008_plugin_limit_map.cql"),
    ),
    (
        "009_customer_records",
        include_str!("../../../../schema/009_customer_records.cql"),
    ),
    (
        "010_plugin_component_chunks",
        include_str!("../../../../schema/010_plugin_component_chunks.cql"),
    ),
];

/// A connected Cassandra session with every statement prepared.
pub struct CassandraStore {
    session: Arc<Session>,
    statements: Statements,
    /// Every unconditional write goes through it, so concurrent events share requests.
    writes: WriteBatcher,
    /// `load_order` goes through it, so concurrent events' reads share queries.
    order_reads: ReadBatcher<OrderRow>,
    /// The batches' byte bound: a plugin's writes join their event's batch only within it.
    batch_max_bytes: usize,
}

struct Statements {
    create_order: PreparedStatement,
    store_accepted_order: PreparedStatement,
    file_customer_record: PreparedStatement,
    customer_records_first: PreparedStatement,
    customer_records_before: PreparedStatement,
    load_orders: PreparedStatement,
    advance_order: PreparedStatement,
    insert_history: PreparedStatement,
    write_next_state: PreparedStatement,
    insert_history_at: PreparedStatement,
    history: PreparedStatement,
    project_status: PreparedStatement,
    claim_idempotency_key: PreparedStatement,
    ping: PreparedStatement,
    plugin_get: PreparedStatement,
    plugin_put: PreparedStatement,
    plugin_delete: PreparedStatement,
}

impl CassandraStore {
    /// Connects, creates the keyspace and applies the migrations, then prepares statements.
    pub async fn connect(config: &CassandraConfig) -> anyhow::Result<Self> {
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
            .consistency(Consistency::LocalQuorum)
            .serial_consistency(Some(SerialConsistency::LocalSerial))
            .build()
            .into_handle();
        let mut builder = SessionBuilder::new()
            .known_nodes(
                config
                    .nodes
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty()),
            )
            .connection_timeout(Duration::from_secs(5))
            .default_execution_profile_handle(profile);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.user(user, password);
        }
        let session = builder
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Cassandra at {}: {e}", config.nodes))?;
        migrate(&session, &config.keyspace, config.replication_factor).await?;
        let statements = Statements::prepare(&session, &config.keyspace).await?;
        let session = Arc::new(session);
        let writes = WriteBatcher::new(
            session.clone(),
            BatchBounds {
                statements: config.batch_statements,
                bytes: config.batch_max_bytes,
            },
            config.batches_in_flight,
        );
        let order_reads = ReadBatcher::new(
            fetch_orders(session.clone(), statements.load_orders.clone()),
            config.read_batch_keys,
            config.batches_in_flight,
        );
        Ok(Self {
            session,
            statements,
            writes,
            order_reads,
            batch_max_bytes: config.batch_max_bytes,
        })
    }

    /// The connected session, for other roles kept in the same keyspace (the registry).
    pub fn session(&self) -> Arc<Session> {
        self.session.clone()
    }
}

/// Reads the states of several orders in one query, for the [`ReadBatcher`].
fn fetch_orders(session: Arc<Session>, load_orders: PreparedStatement) -> Fetch<OrderRow> {
    Arc::new(move |ids: Vec<Uuid>| {
        let (session, load_orders) = (session.clone(), load_orders.clone());
        Box::pin(async move {
            let result = session
                .execute_unpaged(&load_orders, (ids,))
                .await
                .map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            let mut found = HashMap::new();
            for row in rows.rows::<OrderRow>().map_err(unavailable)? {
                let row = row.map_err(unavailable)?;
                found.insert(row.0, row);
            }
            Ok(found)
        })
    })
}

/// Creates the keyspace and applies every migration not yet recorded in `schema_migrations`.
async fn migrate(session: &Session, keyspace: &str, replication_factor: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        !keyspace.is_empty()
            && keyspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "keyspace {keyspace:?} must be letters, digits and '_'"
    );
    let create_keyspace = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    );
    session.query_unpaged(create_keyspace, ()).await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
                 (name text PRIMARY KEY, applied_at timestamp)"
            ),
            (),
        )
        .await?;
    let applied: HashSet<String> = session
        .query_unpaged(format!("SELECT name FROM {keyspace}.schema_migrations"), ())
        .await?
        .into_rows_result()?
        .rows::<(String,)>()?
        .map(|row| row.map(|(name,)| name))
        .collect::<Result<_, _>>()?;
    for (name, text) in MIGRATIONS {
        if applied.contains(*name) {
            continue;
        }
        for statement in split_statements(&text.replace("{keyspace}", keyspace)) {
            session
                .query_unpaged(statement.clone(), ())
                .await
                .map_err(|e| anyhow::anyhow!("migration {name} failed on `{statement}`: {e}"))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (name, applied_at) VALUES (?, ?)"
                ),
                (name, CqlTimestamp(crate::order::now_ms())),
            )
            .await?;
        tracing::info!(migration = name, keyspace, "applied schema migration");
    }
    session.await_schema_agreement().await?;
    Ok(())
}

/// Splits a CQL file into statements, dropping `--` comments.
fn split_statements(text: &str) -> Vec<String> {
    let without_comments: String = text
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl CassandraStore {
    /// Files a record under its customer (when it names one), for `customer_records`. The
    /// same row however often it is written.
    async fn file_under_customer(&self, order: &Order) -> BackendResult<()> {
        let Some(filing) = self.customer_filing(order) else {
            return Ok(());
        };
        self.writes
            .write(Write::new(vec![filing.0], vec![filing.1], filing.2))
            .await
    }

    /// A plugin's write as a batch statement, with its row and estimated bytes.
    fn plugin_write(&self, write: &PluginWrite) -> (BatchStatement, u64, usize) {
        let row = batch_row(("plugin", &write.plugin, &write.table, &write.key));
        let keys = (write.plugin.clone(), write.table.clone(), write.key.clone());
        let bytes = write.plugin.len() + write.table.len() + write.key.len() + 8;
        let statement = match &write.value {
            Some(value) => BatchStatement {
                prepared: self.statements.plugin_put.clone(),
                values: Box::new((
                    keys.0,
                    keys.1,
                    keys.2,
                    value.clone(),
                    CqlTimestamp(crate::order::now_ms()),
                )),
            },
            None => BatchStatement {
                prepared: self.statements.plugin_delete.clone(),
                values: Box::new(keys),
            },
        };
        let value_bytes = write.value.as_ref().map_or(0, String::len);
        (statement, row, bytes + value_bytes)
    }

    /// Applies one plugin write on its own, through the batcher.
    async fn write_plugin_row(&self, write: &PluginWrite) -> BackendResult<()> {
        let (statement, row, bytes) = self.plugin_write(write);
        self.writes
            .write(Write::new(vec![statement], vec![row], bytes))
            .await
    }

    /// The statement filing `order` under its customer, its row and its size; `None` when
    /// the order names no customer.
    fn customer_filing(&self, order: &Order) -> Option<(BatchStatement, u64, usize)> {
        let customer = order.request.customer.clone()?;
        let row = batch_row(("customer", &order.pipeline, &customer, order.id));
        let bytes = order.pipeline.len() + customer.len() + 24;
        let values = (
            order.pipeline.clone(),
            customer,
            CqlTimestamp(order.created_at_ms),
            order.id,
        );
        Some((
            BatchStatement {
                prepared: self.statements.file_customer_record.clone(),
                values: Box::new(values),
            },
            row,
            bytes,
        ))
    }
}

impl Statements {
    async fn prepare(session: &Session, ks: &str) -> anyhow::Result<Self> {
        let p = |cql: String| async move {
            session
                .prepare(cql.clone())
                .await
                .map_err(|e| anyhow::anyhow!("preparing `{cql}`: {e}"))
        };
        Ok(Self {
            create_order: p(format!(
                "INSERT INTO {ks}.order_journal (order_id, pipeline, status, version, request, \
                 attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            // Timestamp 1: older than any write the worker makes, so this insert can never
            // replace a newer state, whichever arrives first (no Paxos round needed).
            store_accepted_order: p(format!(
                "INSERT INTO {ks}.order_journal (order_id, pipeline, status, version, request, \
                 attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 USING TIMESTAMP 1"
            ))
            .await?,
            file_customer_record: p(format!(
                "INSERT INTO {ks}.customer_records (pipeline, customer, created_at, order_id) \
                 VALUES (?, ?, ?, ?)"
            ))
            .await?,
            customer_records_first: p(format!(
                "SELECT created_at, order_id FROM {ks}.customer_records \
                 WHERE pipeline = ? AND customer = ? LIMIT ?"
            ))
            .await?,
            customer_records_before: p(format!(
                "SELECT created_at, order_id FROM {ks}.customer_records \
                 WHERE pipeline = ? AND customer = ? AND (created_at, order_id) < (?, ?) LIMIT ?"
            ))
            .await?,
            // Several orders at once (`ReadBatcher`); the state is in static columns, so one
            // row per partition carries it.
            load_orders: p(format!(
                "SELECT order_id, pipeline, status, version, request, attributes, created_at, \
                 updated_at, recorded_events, writetime(version) FROM {ks}.order_journal \
                 WHERE order_id IN ? PER PARTITION LIMIT 1"
            ))
            .await?,
            advance_order: p(format!(
                "UPDATE {ks}.order_journal SET status = ?, version = ?, attributes = ?, updated_at = ?, \
                 recorded_events = recorded_events + ? WHERE order_id = ? IF version = ?"
            ))
            .await?,
            // The worker's unconditional writes (`record_next_event`): explicit write times,
            // so a replayed older state can never replace a newer one.
            write_next_state: p(format!(
                "UPDATE {ks}.order_journal USING TIMESTAMP ? SET pipeline = ?, status = ?, \
                 version = ?, request = ?, attributes = ?, created_at = ?, updated_at = ?, \
                 recorded_events = recorded_events + ? WHERE order_id = ?"
            ))
            .await?,
            insert_history_at: p(format!(
                "INSERT INTO {ks}.order_journal (order_id, seq, event_id, event_type, outcome, \
                 from_status, to_status, reason, plugin, plugin_version, at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            insert_history: p(format!(
                "INSERT INTO {ks}.order_journal (order_id, seq, event_id, event_type, outcome, \
                 from_status, to_status, reason, plugin, plugin_version, at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            history: p(format!(
                "SELECT seq, event_id, event_type, outcome, from_status, to_status, reason, plugin, \
                 plugin_version, at FROM {ks}.order_journal WHERE order_id = ? AND seq > ? LIMIT ?"
            ))
            .await?,
            project_status: p(format!(
                "UPDATE {ks}.order_status USING TIMESTAMP ? SET status = ?, version = ?, updated_at = ? \
                 WHERE order_id = ?"
            ))
            .await?,
            claim_idempotency_key: p(format!(
                "INSERT INTO {ks}.idempotency_keys (key, order_id, request_hash, created_at) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            ping: p("SELECT release_version FROM system.local".to_owned()).await?,
            plugin_get: p(format!(
                "SELECT value FROM {ks}.plugin_data WHERE plugin = ? AND tbl = ? AND key = ?"
            ))
            .await?,
            plugin_put: p(format!(
                "INSERT INTO {ks}.plugin_data (plugin, tbl, key, value, updated_at) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            plugin_delete: p(format!(
                "DELETE FROM {ks}.plugin_data WHERE plugin = ? AND tbl = ? AND key = ?"
            ))
            .await?,
        })
    }
}

/// Reads the `[applied]` column of a conditional statement's answer.
fn was_applied(result: scylla::response::query_result::QueryResult) -> BackendResult<bool> {
    let rows = result.into_rows_result().map_err(unavailable)?;
    let row: Row = rows.first_row().map_err(unavailable)?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(unavailable(format!(
            "unexpected answer to a conditional write: {other:?}"
        ))),
    }
}

/// The write time of an order the API stored on acceptance (`USING TIMESTAMP 1`): older than
/// anything the worker writes.
const ACCEPTED_ORDER_WRITE_TIME: i64 = 1;

/// How far each recorded event moves an order's write time, at least: the low bits below it
/// are taken from the decision itself.
const WRITE_TIME_STEP: i64 = 1 << 10;

/// The write time of the state after `entry`, given the write time of the state it was
/// decided on. Always later, so a replayed older state never replaces a newer one; the same
/// for the same decision, so recording one event twice writes the same cells at the same
/// time. Two *different* decisions on one state (possible only if a plugin version changed
/// between a zombie worker's decision and its successor's) get different times, so one of
/// them wins whole, never a mix of cells from both.
fn next_write_time(previous: i64, entry: &HistoryEntry) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(entry.event_id.as_bytes())
        .chain_update(entry.outcome.as_str())
        .chain_update([0])
        .chain_update(&entry.to)
        .chain_update([0])
        .chain_update(&entry.reason)
        .chain_update([0])
        .chain_update(&entry.plugin_version)
        .finalize();
    let low = i64::from(u16::from_le_bytes([digest[0], digest[1]])) % WRITE_TIME_STEP;
    previous.saturating_add(WRITE_TIME_STEP + low)
}

/// The `order_status` projection's cell timestamps, ordered by version: an older projection
/// can never overwrite a newer one.
fn projection_write_time(order: &Order) -> i64 {
    order
        .created_at_ms
        .saturating_mul(1000)
        .saturating_add(order.version as i64)
}

/// A new order's columns in the order `create_order` and `store_accepted_order` bind them
/// (id, pipeline, status, version, request, attributes, created at, updated at).
type OrderValues = (
    Uuid,
    String,
    String,
    i64,
    String,
    String,
    CqlTimestamp,
    CqlTimestamp,
);

/// `order`'s [`OrderValues`] and their estimated size in bytes.
fn order_values(order: &Order) -> BackendResult<(OrderValues, usize)> {
    let request =
        serde_json::to_string(&order.request).map_err(|e| BackendError::Invalid(e.to_string()))?;
    let attributes = attributes_text(&order.attributes);
    let bytes = request.len() + attributes.len() + order.pipeline.len() + order.status.len() + 48;
    let values = (
        order.id,
        order.pipeline.clone(),
        order.status.clone(),
        order.version as i64,
        request,
        attributes,
        CqlTimestamp(order.created_at_ms),
        CqlTimestamp(order.updated_at_ms),
    );
    Ok((values, bytes))
}

fn attributes_text(attributes: &Map<String, Value>) -> String {
    Value::Object(attributes.clone()).to_string()
}

/// An order's state as `load_orders` reads it, its id in front.
type OrderRow = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<Vec<Uuid>>,
    Option<i64>,
);

type HistoryRow = (
    Option<i64>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
);

#[async_trait]
impl OrderStore for CassandraStore {
    async fn create_order(&self, order: &Order) -> BackendResult<bool> {
        let (values, _) = order_values(order)?;
        let result = self
            .session
            .execute_unpaged(&self.statements.create_order, values)
            .await
            .map_err(refusal_or_outage)?;
        self.file_under_customer(order).await?;
        was_applied(result)
    }

    async fn store_accepted_order(&self, order: &Order) -> BackendResult<()> {
        let (values, mut bytes) = order_values(order)?;
        let mut statements = vec![BatchStatement {
            prepared: self.statements.store_accepted_order.clone(),
            values: Box::new(values),
        }];
        let mut rows = vec![batch_row(("order", order.id))];
        if let Some((filing, row, filing_bytes)) = self.customer_filing(order) {
            statements.push(filing);
            rows.push(row);
            bytes += filing_bytes;
        }
        self.writes.write(Write::new(statements, rows, bytes)).await
    }

    async fn customer_records(
        &self,
        pipeline: &str,
        customer: &str,
        before: Option<RecordKey>,
        limit: usize,
    ) -> BackendResult<Vec<RecordKey>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let result = match before {
            None => {
                self.session
                    .execute_unpaged(
                        &self.statements.customer_records_first,
                        (pipeline, customer, limit),
                    )
                    .await
            }
            Some(key) => {
                self.session
                    .execute_unpaged(
                        &self.statements.customer_records_before,
                        (
                            pipeline,
                            customer,
                            CqlTimestamp(key.created_at_ms),
                            key.id,
                            limit,
                        ),
                    )
                    .await
            }
        }
        .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let mut keys = Vec::new();
        for row in rows.rows::<(CqlTimestamp, Uuid)>().map_err(unavailable)? {
            let (created_at, id) = row.map_err(unavailable)?;
            keys.push(RecordKey {
                created_at_ms: created_at.0,
                id,
            });
        }
        Ok(keys)
    }

    async fn load_order(&self, id: Uuid) -> BackendResult<Option<StoredOrder>> {
        let Some(row) = self.order_reads.read(id).await? else {
            return Ok(None);
        };
        let (
            _id,
            pipeline,
            status,
            version,
            request,
            attributes,
            created_at,
            updated_at,
            recorded,
            written_at,
        ) = row;
        let Some(status) = status else {
            return Ok(None);
        };
        let request: OrderRequest = request
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| BackendError::Invalid(format!("stored order {id} is corrupt: {e}")))?
            .unwrap_or_default();
        let attributes = match attributes.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        };
        Ok(Some(StoredOrder {
            order: Order {
                id,
                pipeline: pipeline.unwrap_or_else(|| DEFAULT_PIPELINE.to_owned()),
                status,
                version: version.unwrap_or(0).max(0) as u64,
                request,
                attributes,
                created_at_ms: created_at.map(|t| t.0).unwrap_or(0),
                updated_at_ms: updated_at.map(|t| t.0).unwrap_or(0),
            },
            recorded_events: recorded.unwrap_or_default(),
            revision: Some(written_at.unwrap_or(ACCEPTED_ORDER_WRITE_TIME)),
        }))
    }

    async fn record_event(
        &self,
        updated: &Order,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> BackendResult<Applied> {
        debug_assert_eq!(updated.version, expected_version + 1);
        let mut batch = Batch::new(BatchType::Logged);
        batch.append_statement(self.statements.advance_order.clone());
        batch.append_statement(self.statements.insert_history.clone());
        let values = (
            (
                &updated.status,
                updated.version as i64,
                attributes_text(&updated.attributes),
                CqlTimestamp(updated.updated_at_ms),
                vec![entry.event_id],
                updated.id,
                expected_version as i64,
            ),
            (
                updated.id,
                entry.seq as i64,
                entry.event_id,
                &entry.event_type,
                entry.outcome.as_str(),
                &entry.from,
                &entry.to,
                &entry.reason,
                &entry.plugin,
                &entry.plugin_version,
                CqlTimestamp(entry.at_ms),
            ),
        );
        let result = self
            .session
            .batch(&batch, values)
            .await
            .map_err(refusal_or_outage)?;
        Ok(if was_applied(result)? {
            Applied::Yes
        } else {
            Applied::VersionConflict
        })
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

    /// The plugin's writes join the event's batch while the whole fits
    /// `cassandra.batch_max_bytes`; larger ones are applied first, each on its own (as a
    /// plugin's write always was), so a large write never makes the event's batch too large.
    async fn record_next_event_with(
        &self,
        basis: &StoredOrder,
        updated: &Order,
        entry: &HistoryEntry,
        plugin_writes: &[PluginWrite],
    ) -> BackendResult<Advance> {
        let written_at =
            next_write_time(basis.revision.unwrap_or(ACCEPTED_ORDER_WRITE_TIME), entry);
        let request = serde_json::to_string(&updated.request)
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        let attributes = attributes_text(&updated.attributes);
        let mut bytes = request.len()
            + attributes.len()
            + updated.pipeline.len()
            + 2 * updated.status.len()
            + entry.event_type.len()
            + entry.from.len()
            + entry.to.len()
            + entry.reason.len()
            + entry.plugin.len()
            + entry.plugin_version.len()
            + 160;
        // One partition key in these three: one mutation, applied atomically, no batch log.
        let mut statements = vec![
            BatchStatement {
                prepared: self.statements.write_next_state.clone(),
                values: Box::new((
                    written_at,
                    updated.pipeline.clone(),
                    updated.status.clone(),
                    updated.version as i64,
                    request,
                    attributes,
                    CqlTimestamp(updated.created_at_ms),
                    CqlTimestamp(updated.updated_at_ms),
                    vec![entry.event_id],
                    updated.id,
                )),
            },
            BatchStatement {
                prepared: self.statements.insert_history_at.clone(),
                values: Box::new((
                    updated.id,
                    entry.seq as i64,
                    entry.event_id,
                    entry.event_type.clone(),
                    entry.outcome.as_str(),
                    entry.from.clone(),
                    entry.to.clone(),
                    entry.reason.clone(),
                    entry.plugin.clone(),
                    entry.plugin_version.clone(),
                    CqlTimestamp(entry.at_ms),
                    written_at,
                )),
            },
            BatchStatement {
                prepared: self.statements.project_status.clone(),
                values: Box::new((
                    projection_write_time(updated),
                    updated.status.clone(),
                    updated.version as i64,
                    CqlTimestamp(updated.updated_at_ms),
                    updated.id,
                )),
            },
        ];
        let mut rows = vec![batch_row(("order", updated.id))];
        // An order never stored before (the API's write has not landed, or failed) is filed
        // under its customer here, as the API would have.
        if basis.revision.is_none()
            && let Some((filing, row, filing_bytes)) = self.customer_filing(updated)
        {
            statements.push(filing);
            rows.push(row);
            bytes += filing_bytes;
        }
        let plugin_statements: Vec<_> = plugin_writes
            .iter()
            .map(|write| self.plugin_write(write))
            .collect();
        let plugin_bytes: usize = plugin_statements.iter().map(|(_, _, bytes)| bytes).sum();
        if bytes + plugin_bytes <= self.batch_max_bytes {
            for (statement, row, write_bytes) in plugin_statements {
                statements.push(statement);
                rows.push(row);
                bytes += write_bytes;
            }
        } else {
            for write in plugin_writes {
                self.write_plugin_row(write).await?;
            }
        }
        self.writes
            .write(Write::new(statements, rows, bytes))
            .await?;
        Ok(Advance::Recorded {
            revision: written_at,
        })
    }

    async fn history_page(
        &self,
        id: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> BackendResult<Vec<HistoryEntry>> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let result = self
            .session
            .execute_unpaged(&self.statements.history, (id, after, limit))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let mut entries = Vec::new();
        for row in rows.rows::<HistoryRow>().map_err(unavailable)? {
            let (seq, event_id, event_type, outcome, from, to, reason, plugin, plugin_version, at) =
                row.map_err(unavailable)?;
            // The partition's static-only row has no clustering key: it is the state, not history.
            let (Some(seq), Some(event_id)) = (seq, event_id) else {
                continue;
            };
            entries.push(HistoryEntry {
                seq: seq.max(0) as u64,
                event_id,
                event_type: event_type.unwrap_or_default(),
                outcome: outcome
                    .as_deref()
                    .and_then(Outcome::parse)
                    .unwrap_or(Outcome::Failed),
                from: from.unwrap_or_default(),
                to: to.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
                plugin: plugin.unwrap_or_default(),
                plugin_version: plugin_version.unwrap_or_default(),
                at_ms: at.map(|t| t.0).unwrap_or(0),
            });
        }
        Ok(entries)
    }

    async fn project_status(&self, order: &Order) -> BackendResult<()> {
        let write_time_us = projection_write_time(order);
        self.session
            .execute_unpaged(
                &self.statements.project_status,
                (
                    write_time_us,
                    &order.status,
                    order.version as i64,
                    CqlTimestamp(order.updated_at_ms),
                    order.id,
                ),
            )
            .await
            .map_err(refusal_or_outage)?;
        Ok(())
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        order_id: Uuid,
        request_hash: &str,
    ) -> BackendResult<IdempotencyClaim> {
        let result = self
            .session
            .execute_unpaged(
                &self.statements.claim_idempotency_key,
                (
                    key,
                    order_id,
                    request_hash,
                    CqlTimestamp(crate::order::now_ms()),
                ),
            )
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let specs = rows.column_specs();
        let (applied, existing_id, existing_hash) = (
            specs.get_by_name("[applied]").map(|(i, _)| i),
            specs.get_by_name("order_id").map(|(i, _)| i),
            specs.get_by_name("request_hash").map(|(i, _)| i),
        );
        let row: Row = rows.first_row().map_err(unavailable)?;
        let column = |index: Option<usize>| index.and_then(|i| row.columns.get(i)).cloned();
        match column(applied) {
            Some(Some(CqlValue::Boolean(true))) => return Ok(IdempotencyClaim::Claimed),
            Some(Some(CqlValue::Boolean(false))) => {}
            other => {
                return Err(unavailable(format!(
                    "unexpected answer to an idempotency key claim: {other:?}"
                )));
            }
        }
        // Not applied: a conditional insert answers with the row that was there.
        match (column(existing_id), column(existing_hash)) {
            (Some(Some(CqlValue::Uuid(order_id))), Some(hash)) => Ok(IdempotencyClaim::Existing {
                order_id,
                request_hash: match hash {
                    Some(CqlValue::Text(hash) | CqlValue::Ascii(hash)) => hash,
                    _ => String::new(),
                },
            }),
            other => Err(BackendError::Invalid(format!(
                "idempotency key {key:?} is reserved without an order: {other:?}"
            ))),
        }
    }

    async fn ping(&self) -> BackendResult<()> {
        self.session
            .execute_unpaged(&self.statements.ping, ())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl PluginStore for CassandraStore {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>> {
        let result = self
            .session
            .execute_unpaged(&self.statements.plugin_get, (plugin, table, key))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        Ok(rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(unavailable)?
            .and_then(|(value,)| value))
    }

    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()> {
        self.write_plugin_row(&PluginWrite {
            plugin: plugin.to_owned(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: Some(value.to_owned()),
        })
        .await
    }

    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()> {
        self.write_plugin_row(&PluginWrite {
            plugin: plugin.to_owned(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_migration_files_into_statements() {
        for (name, text) in MIGRATIONS {
            let statements = split_statements(&text.replace("{keyspace}", "ks"));
            assert!(!statements.is_empty(), "{name} has no statement");
            for statement in statements {
                assert!(
                    statement.starts_with("CREATE") || statement.starts_with("ALTER TABLE"),
                    "{name}: {statement}"
                );
                assert!(
                    statement.contains("IF NOT EXISTS"),
                    "{name} is not idempotent: {statement}"
                );
                assert!(
                    statement.contains("ks."),
                    "{name} ignores the keyspace: {statement}"
                );
            }
        }
    }
}
