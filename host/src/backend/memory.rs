//! In-memory plugin store and cache: for unit tests of the plugin runtime and for running a
//! plugin against fixtures. Never used where a test claims to cover Cassandra or Redis.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{BackendResult, PluginCache, PluginStore};

/// A [`PluginStore`] and [`PluginCache`] held in process memory (no expiry).
#[derive(Debug, Default)]
pub struct MemoryPluginData {
    rows: Mutex<HashMap<(String, String, String), String>>,
    keys: Mutex<HashMap<(String, String), String>>,
}

impl MemoryPluginData {
    pub fn new() -> Self {
        Self::default()
    }
}

fn row_key(plugin: &str, table: &str, key: &str) -> (String, String, String) {
    (plugin.to_owned(), table.to_owned(), key.to_owned())
}

#[async_trait]
impl PluginStore for MemoryPluginData {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rows.get(&row_key(plugin, table, key)).cloned())
    }

    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.insert(row_key(plugin, table, key), value.to_owned());
        Ok(())
    }

    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.remove(&row_key(plugin, table, key));
        Ok(())
    }
}

#[async_trait]
impl PluginCache for MemoryPluginData {
    async fn get(&self, plugin: &str, key: &str) -> BackendResult<Option<String>> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        Ok(keys.get(&(plugin.to_owned(), key.to_owned())).cloned())
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        _ttl_seconds: Option<u32>,
    ) -> BackendResult<()> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.insert((plugin.to_owned(), key.to_owned()), value.to_owned());
        Ok(())
    }

    async fn incr(&self, plugin: &str, key: &str, delta: i64) -> BackendResult<i64> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let slot = keys
            .entry((plugin.to_owned(), key.to_owned()))
            .or_insert_with(|| "0".into());
        let current: i64 = slot.parse().map_err(|_| {
            super::BackendError::Invalid(format!("value of {key} is not an integer"))
        })?;
        let next = current.saturating_add(delta);
        *slot = next.to_string();
        Ok(next)
    }

    async fn delete(&self, plugin: &str, key: &str) -> BackendResult<()> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&(plugin.to_owned(), key.to_owned()));
        Ok(())
    }
}
