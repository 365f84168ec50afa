//! The plugin registry in Cassandra (`plugin_versions`, `plugin_component_chunks`,
//! `plugin_active`, `plugin_limits`), in the same keyspace and session as the order store.
//! Versions are written with `IF NOT EXISTS`, so an upload can never replace the bytes of a
//! version some host may be running. A component's bytes are stored in chunks keyed by their
//! sha256 (Cassandra refuses one value over 16 MiB; a Python component is about 18 MiB).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use crate::backend::registry::{
    ActiveVersion, LimitOverrides, PluginRegistry, PluginVersion, Stored,
};
use crate::backend::{BackendError, BackendResult};
use crate::order::now_ms;

const BACKEND: &str = "cassandra";

/// The size of one stored chunk of a component: far below the 16 MiB Cassandra takes in one
/// mutation, and read a few at a time ([`CHUNKS_PER_PAGE`]) so no answer nears its frame limit.
pub const COMPONENT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks per page when a component is read back.
const CHUNKS_PER_PAGE: i32 = 4;

fn unavailable(err: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, err)
}

pub struct CassandraRegistry {
    session: Arc<Session>,
    scope: String,
    insert_version: PreparedStatement,
    versions: PreparedStatement,
    component: PreparedStatement,
    insert_chunk: PreparedStatement,
    chunks: PreparedStatement,
    all_versions: PreparedStatement,
    all_active: PreparedStatement,
    active: PreparedStatement,
    set_active: PreparedStatement,
    limits: PreparedStatement,
    set_limits: PreparedStatement,
}

impl CassandraRegistry {
    /// Prepares the registry's statements on a session whose keyspace has the schema applied
    /// (see [`super::CassandraStore::connect`]).
    pub async fn new(session: Arc<Session>, keyspace: &str, scope: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                session
                    .prepare(cql.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("preparing `{cql}`: {e}"))
            }
        };
        Ok(Self {
            insert_version: prepare(format!(
                "INSERT INTO {ks}.plugin_versions (scope, name, version, sha256, size, component, uploaded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            versions: prepare(format!(
                "SELECT name, version, sha256, size, uploaded_at FROM {ks}.plugin_versions WHERE scope = ? AND name = ?"
            ))
            .await?,
            component: prepare(format!(
                "SELECT sha256, size, component FROM {ks}.plugin_versions WHERE scope = ? AND name = ? AND version = ?"
            ))
            .await?,
            insert_chunk: prepare(format!(
                "INSERT INTO {ks}.plugin_component_chunks (scope, name, version, sha256, chunk, bytes) \
                 VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            chunks: {
                let mut chunks = prepare(format!(
                    "SELECT bytes FROM {ks}.plugin_component_chunks \
                     WHERE scope = ? AND name = ? AND version = ? AND sha256 = ?"
                ))
                .await?;
                chunks.set_page_size(CHUNKS_PER_PAGE);
                chunks
            },
            all_versions: prepare(format!("SELECT DISTINCT scope, name FROM {ks}.plugin_versions")).await?,
            all_active: prepare(format!(
                "SELECT scope, name, version, sha256, activated_at FROM {ks}.plugin_active"
            ))
            .await?,
            active: prepare(format!(
                "SELECT name, version, sha256, activated_at FROM {ks}.plugin_active WHERE scope = ? AND name = ?"
            ))
            .await?,
            set_active: prepare(format!(
                "INSERT INTO {ks}.plugin_active (scope, name, version, sha256, activated_at) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            limits: prepare(format!(
                "SELECT fuel, memory_mib, timeout_ms, host_calls, limits FROM {ks}.plugin_limits WHERE scope = ? AND name = ?"
            ))
            .await?,
            set_limits: prepare(format!(
                "INSERT INTO {ks}.plugin_limits (scope, name, fuel, memory_mib, timeout_ms, host_calls, limits, changed_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            session,
            scope: scope.to_owned(),
        })
    }
}

type VersionRow = (
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<CqlTimestamp>,
);
type ActiveRow = (String, Option<String>, Option<String>, Option<CqlTimestamp>);

fn active_from(row: ActiveRow) -> Option<ActiveVersion> {
    let (name, version, sha256, at) = row;
    Some(ActiveVersion {
        name,
        version: version?,
        sha256: sha256.unwrap_or_default(),
        activated_at_ms: at.map(|t| t.0).unwrap_or(0),
    })
}

#[async_trait]
impl PluginRegistry for CassandraRegistry {
    async fn store_version(
        &self,
        version: &PluginVersion,
        component: &[u8],
    ) -> BackendResult<Stored> {
        // The bytes first, under their own sha256: the version row below names them only once
        // they are all there, and a losing upload's chunks sit under another sha256.
        for (index, chunk) in component.chunks(COMPONENT_CHUNK_BYTES).enumerate() {
            let index = i32::try_from(index).map_err(|_| {
                BackendError::Invalid(format!("a component of {} bytes", component.len()))
            })?;
            self.session
                .execute_unpaged(
                    &self.insert_chunk,
                    (
                        &self.scope,
                        &version.name,
                        &version.version,
                        &version.sha256,
                        index,
                        chunk,
                    ),
                )
                .await
                .map_err(super::refusal_or_outage)?;
        }
        let result = self
            .session
            .execute_unpaged(
                &self.insert_version,
                (
                    &self.scope,
                    &version.name,
                    &version.version,
                    &version.sha256,
                    version.size as i64,
                    None::<&[u8]>,
                    CqlTimestamp(version.uploaded_at_ms),
                ),
            )
            .await
            .map_err(super::refusal_or_outage)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let row: Row = rows.first_row().map_err(unavailable)?;
        if let Some(Some(CqlValue::Boolean(true))) = row.columns.first() {
            return Ok(Stored::Created);
        }
        // Not applied: the existing row comes back; compare its sha256.
        let existing = rows
            .column_specs()
            .iter()
            .position(|spec| spec.name() == "sha256")
            .and_then(|i| row.columns.get(i).cloned().flatten());
        match existing {
            Some(CqlValue::Text(sha)) if sha == version.sha256 => Ok(Stored::AlreadyPresent),
            Some(CqlValue::Text(sha)) => Ok(Stored::Conflict(sha)),
            _ => Ok(Stored::Conflict("unknown".into())),
        }
    }

    async fn versions(&self, name: &str) -> BackendResult<Vec<PluginVersion>> {
        let result = self
            .session
            .execute_unpaged(&self.versions, (&self.scope, name))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let mut versions = Vec::new();
        for row in rows.rows::<VersionRow>().map_err(unavailable)? {
            let (name, version, sha256, size, at) = row.map_err(unavailable)?;
            versions.push(PluginVersion {
                name,
                version,
                sha256: sha256.unwrap_or_default(),
                size: size.unwrap_or(0).max(0) as u64,
                uploaded_at_ms: at.map(|t| t.0).unwrap_or(0),
            });
        }
        versions.sort_by_key(|v| v.uploaded_at_ms);
        Ok(versions)
    }

    async fn component(&self, name: &str, version: &str) -> BackendResult<Option<Vec<u8>>> {
        let result = self
            .session
            .execute_unpaged(&self.component, (&self.scope, name, version))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let Some((sha256, size, inline)) = rows
            .maybe_first_row::<(Option<String>, Option<i64>, Option<Vec<u8>>)>()
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        // Stored before migration 010: the bytes are in the version row.
        if let Some(bytes) = inline {
            return Ok(Some(bytes));
        }
        let sha256 = sha256.unwrap_or_default();
        let mut pages = self
            .session
            .execute_iter(self.chunks.clone(), (&self.scope, name, version, &sha256))
            .await
            .map_err(unavailable)?
            .rows_stream::<(Vec<u8>,)>()
            .map_err(unavailable)?;
        let mut bytes = Vec::with_capacity(size.unwrap_or(0).clamp(0, 64 << 20) as usize);
        while let Some((chunk,)) = pages.try_next().await.map_err(unavailable)? {
            bytes.extend_from_slice(&chunk);
        }
        let expected = size.unwrap_or(0).max(0) as u64;
        if bytes.len() as u64 != expected {
            return Err(unavailable(format!(
                "plugin {name} {version}: {} of its {expected} bytes are stored",
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    async fn plugins(&self) -> BackendResult<Vec<(String, Option<ActiveVersion>)>> {
        // The registry tables are small; scanning them and keeping this scope is fine.
        let names = self
            .session
            .execute_unpaged(&self.all_versions, ())
            .await
            .map_err(unavailable)?;
        let mut plugins: BTreeMap<String, Option<ActiveVersion>> = BTreeMap::new();
        let rows = names.into_rows_result().map_err(unavailable)?;
        for row in rows.rows::<(String, String)>().map_err(unavailable)? {
            let (scope, name) = row.map_err(unavailable)?;
            if scope == self.scope {
                plugins.insert(name, None);
            }
        }
        let active = self
            .session
            .execute_unpaged(&self.all_active, ())
            .await
            .map_err(unavailable)?;
        let rows = active.into_rows_result().map_err(unavailable)?;
        for row in rows
            .rows::<(
                String,
                String,
                Option<String>,
                Option<String>,
                Option<CqlTimestamp>,
            )>()
            .map_err(unavailable)?
        {
            let (scope, name, version, sha256, at) = row.map_err(unavailable)?;
            if scope != self.scope {
                continue;
            }
            if let Some(active) = active_from((name, version, sha256, at)) {
                plugins.insert(active.name.clone(), Some(active));
            }
        }
        Ok(plugins.into_iter().collect())
    }

    async fn active(&self, name: &str) -> BackendResult<Option<ActiveVersion>> {
        let result = self
            .session
            .execute_unpaged(&self.active, (&self.scope, name))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        Ok(rows
            .maybe_first_row::<ActiveRow>()
            .map_err(unavailable)?
            .and_then(active_from))
    }

    async fn set_active(&self, active: &ActiveVersion) -> BackendResult<()> {
        self.session
            .execute_unpaged(
                &self.set_active,
                (
                    &self.scope,
                    &active.name,
                    &active.version,
                    &active.sha256,
                    CqlTimestamp(active.activated_at_ms),
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn limit_overrides(&self, name: &str) -> BackendResult<LimitOverrides> {
        let result = self
            .session
            .execute_unpaged(&self.limits, (&self.scope, name))
            .await
            .map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        type LimitsRow = (
            Option<i64>,
            Option<i32>,
            Option<i64>,
            Option<i32>,
            Option<BTreeMap<String, i64>>,
        );
        let row = rows.maybe_first_row::<LimitsRow>().map_err(unavailable)?;
        let Some((fuel, memory_mib, timeout_ms, host_calls, by_name)) = row else {
            return Ok(LimitOverrides::default());
        };
        // Written from validated values only; a negative cell is read as "no override".
        if let Some(by_name) = by_name {
            let by_name = by_name
                .into_iter()
                .filter_map(|(name, value)| u64::try_from(value).ok().map(|value| (name, value)))
                .collect();
            return Ok(LimitOverrides::from_map(&by_name));
        }
        // A row written before migration 008: only the four columns.
        Ok(LimitOverrides {
            fuel: fuel.and_then(|v| u64::try_from(v).ok()),
            memory_mib: memory_mib.and_then(|v| u32::try_from(v).ok()),
            timeout_ms: timeout_ms.and_then(|v| u64::try_from(v).ok()),
            host_calls: host_calls.and_then(|v| u32::try_from(v).ok()),
            ..LimitOverrides::default()
        })
    }

    async fn set_limit_overrides(
        &self,
        name: &str,
        overrides: &LimitOverrides,
    ) -> BackendResult<()> {
        let too_large = |what: &str| BackendError::Invalid(format!("{what} is too large to store"));
        let fuel = overrides
            .fuel
            .map(i64::try_from)
            .transpose()
            .map_err(|_| too_large("fuel"))?;
        let memory_mib = overrides
            .memory_mib
            .map(i32::try_from)
            .transpose()
            .map_err(|_| too_large("memory_mib"))?;
        let timeout_ms = overrides
            .timeout_ms
            .map(i64::try_from)
            .transpose()
            .map_err(|_| too_large("timeout_ms"))?;
        let host_calls = overrides
            .host_calls
            .map(i32::try_from)
            .transpose()
            .map_err(|_| too_large("host_calls"))?;
        let by_name: BTreeMap<String, i64> = overrides
            .to_map()
            .into_iter()
            .map(|(name, value)| {
                i64::try_from(value)
                    .map(|value| (name.clone(), value))
                    .map_err(|_| too_large(&name))
            })
            .collect::<Result<_, _>>()?;
        self.session
            .execute_unpaged(
                &self.set_limits,
                (
                    &self.scope,
                    name,
                    fuel,
                    memory_mib,
                    timeout_ms,
                    host_calls,
                    by_name,
                    CqlTimestamp(now_ms()),
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
