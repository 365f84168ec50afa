//! The host functions a plugin imports: its own rows, its own cache keys, logging and a clock.
//!
//! Guest inputs are hostile. Every call counts against the invocation's quota, every key,
//! table and value is size-checked, and the plugin's name (set by the host, never by the
//! guest) scopes every address. Expected failures go back to the guest as `host-error`
//! values; nothing a guest passes can make the host trap or panic.

use std::sync::Arc;

use uuid::Uuid;

use super::bindings::orderpipe::plugin::{cache, clock, log, store, types};
use super::bindings::wit::HostError;
use crate::backend::{BackendError, PluginCache, PluginStore};

/// The longest table name a plugin may use.
const MAX_TABLE_BYTES: usize = 64;
/// The longest key a plugin may use (store or cache).
const MAX_KEY_BYTES: usize = 512;
/// The largest value a plugin may store or cache.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The longest log line kept; longer lines are cut.
const MAX_LOG_BYTES: usize = 4 * 1024;

/// What a plugin's host functions reach during one invocation.
pub(crate) struct HostContext {
    pub plugin: String,
    pub order_id: Option<Uuid>,
    pub store: Arc<dyn PluginStore>,
    pub cache: Arc<dyn PluginCache>,
    /// Host calls still allowed in this invocation.
    pub calls_left: u32,
    /// Host calls made so far in this invocation.
    pub calls_made: u32,
    pub call_quota: u32,
    /// The first backend outage a host call ran into: the event is retried later rather
    /// than decided on a plugin's reaction to an outage.
    pub unavailable: Option<(&'static str, String)>,
}

impl HostContext {
    fn charge(&mut self, function: &str) -> Result<(), HostError> {
        if self.calls_left == 0 {
            return Err(HostError::QuotaExceeded(format!(
                "{function}: the plugin made more than {} host calls in one invocation",
                self.call_quota
            )));
        }
        self.calls_left -= 1;
        self.calls_made += 1;
        Ok(())
    }
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), HostError> {
    if text.is_empty() && what != "value" {
        return Err(HostError::Invalid(format!("the {what} is empty")));
    }
    if text.len() > max {
        return Err(HostError::Invalid(format!(
            "the {what} is {} bytes long (at most {max})",
            text.len()
        )));
    }
    Ok(())
}

impl HostContext {
    fn answer<T>(&mut self, result: Result<T, BackendError>) -> Result<T, HostError> {
        result.map_err(|err| match err {
            BackendError::Unavailable {
                backend,
                ref detail,
            } => {
                self.unavailable.get_or_insert((backend, detail.clone()));
                HostError::Unavailable(err.to_string())
            }
            BackendError::Invalid(detail) => HostError::Invalid(detail),
        })
    }
}

impl types::Host for HostContext {}

impl store::Host for HostContext {
    async fn get(&mut self, table: String, key: String) -> Result<Option<String>, HostError> {
        self.charge("store.get")?;
        check_len("table", &table, MAX_TABLE_BYTES)?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        {
            let result = self.store.get(&self.plugin, &table, &key).await;
            self.answer(result)
        }
    }

    async fn put(&mut self, table: String, key: String, value: String) -> Result<(), HostError> {
        self.charge("store.put")?;
        check_len("table", &table, MAX_TABLE_BYTES)?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        check_len("value", &value, MAX_VALUE_BYTES)?;
        {
            let result = self.store.put(&self.plugin, &table, &key, &value).await;
            self.answer(result)
        }
    }

    async fn delete(&mut self, table: String, key: String) -> Result<(), HostError> {
        self.charge("store.delete")?;
        check_len("table", &table, MAX_TABLE_BYTES)?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        {
            let result = self.store.delete(&self.plugin, &table, &key).await;
            self.answer(result)
        }
    }
}

impl cache::Host for HostContext {
    async fn get(&mut self, key: String) -> Result<Option<String>, HostError> {
        self.charge("cache.get")?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        {
            let result = self.cache.get(&self.plugin, &key).await;
            self.answer(result)
        }
    }

    async fn set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<(), HostError> {
        self.charge("cache.set")?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        check_len("value", &value, MAX_VALUE_BYTES)?;
        if ttl_seconds == Some(0) {
            return Err(HostError::Invalid("ttl-seconds must be positive".into()));
        }
        {
            let result = self
                .cache
                .set(&self.plugin, &key, &value, ttl_seconds)
                .await;
            self.answer(result)
        }
    }

    async fn incr(&mut self, key: String, delta: i64) -> Result<i64, HostError> {
        self.charge("cache.incr")?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        {
            let result = self.cache.incr(&self.plugin, &key, delta).await;
            self.answer(result)
        }
    }

    async fn delete(&mut self, key: String) -> Result<(), HostError> {
        self.charge("cache.delete")?;
        check_len("key", &key, MAX_KEY_BYTES)?;
        {
            let result = self.cache.delete(&self.plugin, &key).await;
            self.answer(result)
        }
    }
}

impl log::Host for HostContext {
    async fn log(&mut self, level: log::Level, message: String) {
        // Logging is not charged against the quota, but it is bounded in size.
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = self.plugin.as_str();
        let order_id = self.order_id.map(|id| id.to_string()).unwrap_or_default();
        match level {
            log::Level::Debug => {
                tracing::debug!(target: "orderpipe::plugin_log", plugin, order_id, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "orderpipe::plugin_log", plugin, order_id, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "orderpipe::plugin_log", plugin, order_id, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "orderpipe::plugin_log", plugin, order_id, "{message}")
            }
        }
    }
}

impl clock::Host for HostContext {
    async fn now_ms(&mut self) -> u64 {
        crate::order::now_ms().max(0) as u64
    }
}
