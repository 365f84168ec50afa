//! The plugin registry role ([`PluginRegistry`]) in the embedded store's file: every uploaded
//! component version with its bytes, the version each plugin runs now and its limit
//! overrides, per registry scope.
//!
//! Like the Cassandra registry, a version is written only if absent, in one transaction, so
//! an upload never replaces the bytes of a version a host may be running. Every key starts
//! with the scope (`plugins.registry_scope`), so registries sharing a data directory (or a
//! test's) never see each other, exactly as registries sharing a Cassandra keyspace.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::store::EmbeddedStore;
use super::{encode, storage_error};
use crate::backend::registry::{
    ActiveVersion, LimitOverrides, PluginRegistry, PluginVersion, Stored,
};
use crate::backend::{BackendError, BackendResult};

/// (scope, plugin, version) → [`VersionRow`] (JSON).
const VERSIONS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("registry_versions");
/// (scope, plugin, version) → the component's bytes.
const COMPONENTS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("registry_components");
/// (scope, plugin) → [`ActiveRow`] (JSON).
const ACTIVE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("registry_active");
/// (scope, plugin) → [`LimitOverrides`] (JSON).
const LIMITS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("registry_limits");

/// The tables of stores written before the registry had scopes, keyed without one.
const UNSCOPED_VERSIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("plugin_versions");
const UNSCOPED_COMPONENTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("plugin_components");
const UNSCOPED_ACTIVE: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_active");
/// Where the rows of an unscoped registry go: the scope a host has by default.
const SCOPE_OF_UNSCOPED_ROWS: &str = "default";

const BACKEND: &str = "embedded registry";

fn storage(error: impl Into<redb::Error>) -> BackendError {
    storage_error(BACKEND, error)
}

/// Creates the registry's tables (when a registry is first opened on a store), moving the
/// rows of a store written before scopes existed into the `default` scope.
fn create_tables(write: &WriteTransaction) -> anyhow::Result<()> {
    let mut versions = write.open_table(VERSIONS)?;
    let mut components = write.open_table(COMPONENTS)?;
    let mut active = write.open_table(ACTIVE)?;
    write.open_table(LIMITS)?;
    let exists = |name: &str| -> anyhow::Result<bool> {
        Ok(write.list_tables()?.any(|table| table.name() == name))
    };
    let scope = SCOPE_OF_UNSCOPED_ROWS;
    if exists(UNSCOPED_VERSIONS.name())? {
        for entry in write.open_table(UNSCOPED_VERSIONS)?.iter()? {
            let (key, value) = entry?;
            let (name, version) = key.value();
            versions.insert((scope, name, version), value.value())?;
        }
        write.delete_table(UNSCOPED_VERSIONS)?;
    }
    if exists(UNSCOPED_COMPONENTS.name())? {
        for entry in write.open_table(UNSCOPED_COMPONENTS)?.iter()? {
            let (key, value) = entry?;
            let (name, version) = key.value();
            components.insert((scope, name, version), value.value())?;
        }
        write.delete_table(UNSCOPED_COMPONENTS)?;
    }
    if exists(UNSCOPED_ACTIVE.name())? {
        for entry in write.open_table(UNSCOPED_ACTIVE)?.iter()? {
            let (name, value) = entry?;
            active.insert((scope, name.value()), value.value())?;
        }
        write.delete_table(UNSCOPED_ACTIVE)?;
    }
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

/// One scope of the plugin registry in an embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRegistry {
    store: EmbeddedStore,
    scope: String,
}

impl EmbeddedRegistry {
    /// Opens the plugin registry of `scope` in `store`, creating its tables when missing.
    /// Blocks briefly on disk: call it at start-up.
    pub fn open(store: &EmbeddedStore, scope: &str) -> anyhow::Result<Self> {
        let write = store.database().begin_write()?;
        create_tables(&write)?;
        write.commit()?;
        Ok(Self {
            store: store.clone(),
            scope: scope.to_owned(),
        })
    }
}

#[async_trait]
impl PluginRegistry for EmbeddedRegistry {
    async fn store_version(
        &self,
        version: &PluginVersion,
        component: &[u8],
    ) -> BackendResult<Stored> {
        let (scope, name, number) = (
            self.scope.clone(),
            version.name.clone(),
            version.version.clone(),
        );
        let row = encode(&VersionRow {
            sha256: version.sha256.clone(),
            size: version.size,
            uploaded_at_ms: version.uploaded_at_ms,
        })?;
        let sha256 = version.sha256.clone();
        let component = component.to_vec();
        self.store
            .run(move |db| {
                let write = db.begin_write().map_err(storage)?;
                {
                    let mut versions = write.open_table(VERSIONS).map_err(storage)?;
                    let key = (scope.as_str(), name.as_str(), number.as_str());
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
        let (scope, name) = (self.scope.clone(), name.to_owned());
        self.store
            .run(move |db| {
                let read = db.begin_read().map_err(storage)?;
                let table = read.open_table(VERSIONS).map_err(storage)?;
                let mut versions = Vec::new();
                // Versions of `name` are the keys (scope, name, "") up to the next name.
                let start = (scope.as_str(), name.as_str(), "");
                for entry in table.range(start..).map_err(storage)? {
                    let (key, value) = entry.map_err(storage)?;
                    let (in_scope, plugin, version) = key.value();
                    if in_scope != scope || plugin != name {
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
        let (scope, name, version) = (self.scope.clone(), name.to_owned(), version.to_owned());
        self.store
            .run(move |db| {
                let read = db.begin_read().map_err(storage)?;
                let table = read.open_table(COMPONENTS).map_err(storage)?;
                Ok(table
                    .get((scope.as_str(), name.as_str(), version.as_str()))
                    .map_err(storage)?
                    .map(|bytes| bytes.value().to_vec()))
            })
            .await
    }

    async fn plugins(&self) -> BackendResult<Vec<(String, Option<ActiveVersion>)>> {
        let scope = self.scope.clone();
        self.store
            .run(move |db| {
                let read = db.begin_read().map_err(storage)?;
                let mut plugins: BTreeMap<String, Option<ActiveVersion>> = BTreeMap::new();
                let versions = read.open_table(VERSIONS).map_err(storage)?;
                for entry in versions
                    .range((scope.as_str(), "", "")..)
                    .map_err(storage)?
                {
                    let (key, _) = entry.map_err(storage)?;
                    let (in_scope, name, _) = key.value();
                    if in_scope != scope {
                        break;
                    }
                    plugins.entry(name.to_owned()).or_default();
                }
                let active = read.open_table(ACTIVE).map_err(storage)?;
                for entry in active.range((scope.as_str(), "")..).map_err(storage)? {
                    let (key, row) = entry.map_err(storage)?;
                    let (in_scope, name) = key.value();
                    if in_scope != scope {
                        break;
                    }
                    let row: ActiveRow = decode("active plugin version", row.value())?;
                    plugins.insert(name.to_owned(), Some(active_version(name, row)));
                }
                Ok(plugins.into_iter().collect())
            })
            .await
    }

    async fn active(&self, name: &str) -> BackendResult<Option<ActiveVersion>> {
        let (scope, name) = (self.scope.clone(), name.to_owned());
        self.store
            .run(move |db| {
                let read = db.begin_read().map_err(storage)?;
                let table = read.open_table(ACTIVE).map_err(storage)?;
                let Some(row) = table
                    .get((scope.as_str(), name.as_str()))
                    .map_err(storage)?
                else {
                    return Ok(None);
                };
                let row: ActiveRow = decode("active plugin version", row.value())?;
                Ok(Some(active_version(&name, row)))
            })
            .await
    }

    async fn set_active(&self, active: &ActiveVersion) -> BackendResult<()> {
        let (scope, name) = (self.scope.clone(), active.name.clone());
        let row = encode(&ActiveRow {
            version: active.version.clone(),
            sha256: active.sha256.clone(),
            activated_at_ms: active.activated_at_ms,
        })?;
        self.store
            .run(move |db| {
                let write = db.begin_write().map_err(storage)?;
                {
                    let mut table = write.open_table(ACTIVE).map_err(storage)?;
                    table
                        .insert((scope.as_str(), name.as_str()), row.as_slice())
                        .map_err(storage)?;
                }
                write.commit().map_err(storage)
            })
            .await
    }

    async fn limit_overrides(&self, name: &str) -> BackendResult<LimitOverrides> {
        let (scope, name) = (self.scope.clone(), name.to_owned());
        self.store
            .run(move |db| {
                let read = db.begin_read().map_err(storage)?;
                let table = read.open_table(LIMITS).map_err(storage)?;
                match table
                    .get((scope.as_str(), name.as_str()))
                    .map_err(storage)?
                {
                    Some(row) => decode("plugin limits", row.value()),
                    None => Ok(LimitOverrides::default()),
                }
            })
            .await
    }

    async fn set_limit_overrides(
        &self,
        name: &str,
        overrides: &LimitOverrides,
    ) -> BackendResult<()> {
        let (scope, name) = (self.scope.clone(), name.to_owned());
        let row = (!overrides.is_empty())
            .then(|| encode(overrides))
            .transpose()?;
        self.store
            .run(move |db| {
                let write = db.begin_write().map_err(storage)?;
                {
                    let mut table = write.open_table(LIMITS).map_err(storage)?;
                    let key = (scope.as_str(), name.as_str());
                    match &row {
                        Some(row) => {
                            table.insert(key, row.as_slice()).map_err(storage)?;
                        }
                        None => {
                            table.remove(key).map_err(storage)?;
                        }
                    }
                }
                write.commit().map_err(storage)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registry_written_before_scopes_moves_into_the_default_scope() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A store file as an orderpipe without registry scopes left it.
            let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
            let write = db.begin_write().unwrap();
            {
                let row = encode(&VersionRow {
                    sha256: "sha-1".into(),
                    size: 4,
                    uploaded_at_ms: 1_000,
                })
                .unwrap();
                let mut versions = write.open_table(UNSCOPED_VERSIONS).unwrap();
                versions.insert(("order", "0.1.0"), row.as_slice()).unwrap();
                let mut components = write.open_table(UNSCOPED_COMPONENTS).unwrap();
                components
                    .insert(("order", "0.1.0"), &b"\0asm"[..])
                    .unwrap();
                let active = encode(&ActiveRow {
                    version: "0.1.0".into(),
                    sha256: "sha-1".into(),
                    activated_at_ms: 2_000,
                })
                .unwrap();
                let mut table = write.open_table(UNSCOPED_ACTIVE).unwrap();
                table.insert("order", active.as_slice()).unwrap();
            }
            write.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let default = EmbeddedRegistry::open(&store, "default").unwrap();
        let active = default.active("order").await.unwrap().expect("active");
        assert_eq!(active.version, "0.1.0");
        let component = default.component("order", "0.1.0").await.unwrap();
        assert_eq!(component.as_deref(), Some(&b"\0asm"[..]));
        assert_eq!(default.versions("order").await.unwrap().len(), 1);
        assert!(
            EmbeddedRegistry::open(&store, "staging")
                .unwrap()
                .plugins()
                .await
                .unwrap()
                .is_empty()
        );
        drop((store, default));
        // Opening again moves nothing twice and loses nothing.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            EmbeddedRegistry::open(&store, "default")
                .unwrap()
                .plugins()
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
