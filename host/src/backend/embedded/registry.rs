//! The plugin registry role ([`PluginRegistry`]) in the embedded store's file: every uploaded
//! component version with its bytes, and the version each plugin runs now.
//!
//! Like the Cassandra registry, a version is written only if absent, in one transaction, so
//! an upload never replaces the bytes of a version a host may be running. There is one
//! registry per data directory (the Cassandra registry's `scope` separates hosts sharing a
//! keyspace; a data directory belongs to one process anyway).

use std::collections::BTreeMap;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::store::{EmbeddedStore, encode, storage};
use crate::backend::registry::{ActiveVersion, PluginRegistry, PluginVersion, Stored};
use crate::backend::{BackendError, BackendResult};

/// (plugin, version) → [`VersionRow`] (JSON).
const VERSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_versions");
/// (plugin, version) → the component's bytes.
const COMPONENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_components");
/// plugin → [`ActiveRow`] (JSON).
const ACTIVE: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_active");

/// Creates the registry's tables (called when the store opens).
pub(super) fn create_tables(write: &WriteTransaction) -> Result<(), redb::TableError> {
    write.open_table(VERSIONS)?;
    write.open_table(COMPONENTS)?;
    write.open_table(ACTIVE)?;
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct VersionRow {
    sha256: String,
    size: u64,
    uploaded_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ActiveRow {
    version: String,
    sha256: String,
    activated_at_ms: i64,
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> BackendResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| BackendError::Invalid(format!("stored {what} is corrupt: {e}")))
}

fn active_version(name: &str, row: ActiveRow) -> ActiveVersion {
    ActiveVersion {
        name: name.to_owned(),
        version: row.version,
        sha256: row.sha256,
        activated_at_ms: row.activated_at_ms,
    }
}

#[async_trait]
impl PluginRegistry for EmbeddedStore {
    async fn store_version(
        &self,
        version: &PluginVersion,
        component: &[u8],
    ) -> BackendResult<Stored> {
        let (name, number) = (version.name.clone(), version.version.clone());
        let row = encode(&VersionRow {
            sha256: version.sha256.clone(),
            size: version.size,
            uploaded_at_ms: version.uploaded_at_ms,
        })?;
        let sha256 = version.sha256.clone();
        let component = component.to_vec();
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            {
                let mut versions = write.open_table(VERSIONS).map_err(storage)?;
                let key = (name.as_str(), number.as_str());
                if let Some(existing) = versions.get(key).map_err(storage)? {
                    let existing: VersionRow = decode("plugin version", existing.value())?;
                    return Ok(if existing.sha256 == sha256 {
                        Stored::AlreadyPresent
                    } else {
                        Stored::Conflict(existing.sha256)
                    });
                }
                versions.insert(key, row.as_slice()).map_err(storage)?;
                let mut components = write.open_table(COMPONENTS).map_err(storage)?;
                components
                    .insert(key, component.as_slice())
                    .map_err(storage)?;
            }
            write.commit().map_err(storage)?;
            Ok(Stored::Created)
        })
        .await
    }

    async fn versions(&self, name: &str) -> BackendResult<Vec<PluginVersion>> {
        let name = name.to_owned();
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(VERSIONS).map_err(storage)?;
            let mut versions = Vec::new();
            // Versions of `name` are the keys (name, "") up to the next name.
            for entry in table.range((name.as_str(), "")..).map_err(storage)? {
                let (key, value) = entry.map_err(storage)?;
                let (plugin, version) = key.value();
                if plugin != name {
                    break;
                }
                let row: VersionRow = decode("plugin version", value.value())?;
                versions.push(PluginVersion {
                    name: plugin.to_owned(),
                    version: version.to_owned(),
                    sha256: row.sha256,
                    size: row.size,
                    uploaded_at_ms: row.uploaded_at_ms,
                });
            }
            versions.sort_by_key(|v| v.uploaded_at_ms);
            Ok(versions)
        })
        .await
    }

    async fn component(&self, name: &str, version: &str) -> BackendResult<Option<Vec<u8>>> {
        let (name, version) = (name.to_owned(), version.to_owned());
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(COMPONENTS).map_err(storage)?;
            Ok(table
                .get((name.as_str(), version.as_str()))
                .map_err(storage)?
                .map(|bytes| bytes.value().to_vec()))
        })
        .await
    }

    async fn plugins(&self) -> BackendResult<Vec<(String, Option<ActiveVersion>)>> {
        self.run(|db| {
            let read = db.begin_read().map_err(storage)?;
            let mut plugins: BTreeMap<String, Option<ActiveVersion>> = BTreeMap::new();
            let versions = read.open_table(VERSIONS).map_err(storage)?;
            for entry in versions.iter().map_err(storage)? {
                let (key, _) = entry.map_err(storage)?;
                plugins.entry(key.value().0.to_owned()).or_default();
            }
            let active = read.open_table(ACTIVE).map_err(storage)?;
            for entry in active.iter().map_err(storage)? {
                let (name, row) = entry.map_err(storage)?;
                let row: ActiveRow = decode("active plugin version", row.value())?;
                plugins.insert(
                    name.value().to_owned(),
                    Some(active_version(name.value(), row)),
                );
            }
            Ok(plugins.into_iter().collect())
        })
        .await
    }

    async fn active(&self, name: &str) -> BackendResult<Option<ActiveVersion>> {
        let name = name.to_owned();
        self.run(move |db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(ACTIVE).map_err(storage)?;
            let Some(row) = table.get(name.as_str()).map_err(storage)? else {
                return Ok(None);
            };
            let row: ActiveRow = decode("active plugin version", row.value())?;
            Ok(Some(active_version(&name, row)))
        })
        .await
    }

    async fn set_active(&self, active: &ActiveVersion) -> BackendResult<()> {
        let name = active.name.clone();
        let row = encode(&ActiveRow {
            version: active.version.clone(),
            sha256: active.sha256.clone(),
            activated_at_ms: active.activated_at_ms,
        })?;
        self.run(move |db| {
            let write = db.begin_write().map_err(storage)?;
            {
                let mut table = write.open_table(ACTIVE).map_err(storage)?;
                table
                    .insert(name.as_str(), row.as_slice())
                    .map_err(storage)?;
            }
            write.commit().map_err(storage)
        })
        .await
    }
}
