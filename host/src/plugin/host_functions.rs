//! The host functions a plugin imports: its own rows, its own cache keys, logging and a clock.
//!
//! Guest inputs are hostile. Every call counts against the invocation's quota, every key,
//! table and value is size-checked, and the plugin's name (set by the host, never by the
//! guest) scopes every address. Expected failures go back to the guest as `host-error`
//! values; nothing a guest passes can make the host trap or panic.
//!
//! Every call is also noted in a short, bounded [`HostCall`] record, so a person trying a
//! plugin out (`orderpipe plugin test`) can see what it asked the host and what it got.

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
/// The most host calls one invocation keeps a record of; later calls are only counted, so a
/// plugin that floods the host cannot make the host hoard records.
const MAX_RECORDED_CALLS: usize = 64;
/// The longest argument or answer text a record keeps; longer text is cut.
const MAX_RECORDED_TEXT_BYTES: usize = 96;

/// One host call a plugin made, as a person reads it: `cache.get payment:p-1 -> none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// `store.get`, `cache.incr`, `log.info`, `clock.now-ms`, ...
    pub function: &'static str,
    /// What the call addressed and passed, e.g. `orders-by-customer ada/42 = "12.5"`; text
    /// longer than a few dozen bytes is cut.
    pub arguments: String,
    /// What the host answered, e.g. `none`, `"p-1"`, `ok`, `3`, `error: quota-exceeded: ...`;
    /// empty for calls that answer nothing (logging).
    pub answer: String,
}

impl std::fmt::Display for HostCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.function)?;
        if !self.arguments.is_empty() {
            write!(f, " {}", self.arguments)?;
        }
        if !self.answer.is_empty() {
            write!(f, " -> {}", self.answer)?;
        }
        Ok(())
    }
}

/// Text for a record: cut to [`MAX_RECORDED_TEXT_BYTES`] on a character boundary.
fn short(text: &str) -> String {
    if text.len() <= MAX_RECORDED_TEXT_BYTES {
        return text.to_owned();
    }
    let mut cut = MAX_RECORDED_TEXT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// A value as a record shows it: quoted, cut.
fn quoted(value: &str) -> String {
    short(&format!("{value:?}"))
}

/// A host call's answer as a record shows it.
fn answer_text<T>(result: &Result<T, HostError>, ok: impl FnOnce(&T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(HostError::Invalid(detail)) => short(&format!("error: invalid: {detail}")),
        Err(HostError::QuotaExceeded(detail)) => short(&format!("error: quota-exceeded: {detail}")),
        Err(HostError::Unavailable(detail)) => short(&format!("error: unavailable: {detail}")),
    }
}

fn found(value: &Option<String>) -> String {
    value.as_deref().map_or_else(|| "none".to_owned(), quoted)
}

fn done(_: &()) -> String {
    "ok".to_owned()
}

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
    /// The first [`MAX_RECORDED_CALLS`] host calls of this invocation, logging included.
    pub call_log: Vec<HostCall>,
    /// Host calls made after `call_log` was full.
    pub calls_not_logged: u32,
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

    /// Notes a call in the invocation's bounded call log.
    fn record(&mut self, function: &'static str, arguments: String, answer: String) {
        if self.call_log.len() < MAX_RECORDED_CALLS {
            self.call_log.push(HostCall {
                function,
                arguments,
                answer,
            });
        } else {
            self.calls_not_logged = self.calls_not_logged.saturating_add(1);
        }
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
        let result = async {
            self.charge("store.get")?;
            check_len("table", &table, MAX_TABLE_BYTES)?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            let result = self.store.get(&self.plugin, &table, &key).await;
            self.answer(result)
        }
        .await;
        let arguments = format!("{} {}", short(&table), short(&key));
        self.record("store.get", arguments, answer_text(&result, found));
        result
    }

    async fn put(&mut self, table: String, key: String, value: String) -> Result<(), HostError> {
        let result = async {
            self.charge("store.put")?;
            check_len("table", &table, MAX_TABLE_BYTES)?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            check_len("value", &value, MAX_VALUE_BYTES)?;
            let result = self.store.put(&self.plugin, &table, &key, &value).await;
            self.answer(result)
        }
        .await;
        let arguments = format!("{} {} = {}", short(&table), short(&key), quoted(&value));
        self.record("store.put", arguments, answer_text(&result, done));
        result
    }

    async fn delete(&mut self, table: String, key: String) -> Result<(), HostError> {
        let result = async {
            self.charge("store.delete")?;
            check_len("table", &table, MAX_TABLE_BYTES)?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            let result = self.store.delete(&self.plugin, &table, &key).await;
            self.answer(result)
        }
        .await;
        let arguments = format!("{} {}", short(&table), short(&key));
        self.record("store.delete", arguments, answer_text(&result, done));
        result
    }
}

impl cache::Host for HostContext {
    async fn get(&mut self, key: String) -> Result<Option<String>, HostError> {
        let result = async {
            self.charge("cache.get")?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            let result = self.cache.get(&self.plugin, &key).await;
            self.answer(result)
        }
        .await;
        self.record("cache.get", short(&key), answer_text(&result, found));
        result
    }

    async fn set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<(), HostError> {
        let result = async {
            self.charge("cache.set")?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            check_len("value", &value, MAX_VALUE_BYTES)?;
            if ttl_seconds == Some(0) {
                return Err(HostError::Invalid("ttl-seconds must be positive".into()));
            }
            let result = self
                .cache
                .set(&self.plugin, &key, &value, ttl_seconds)
                .await;
            self.answer(result)
        }
        .await;
        let ttl = ttl_seconds
            .map(|ttl| format!(" ttl {ttl}s"))
            .unwrap_or_default();
        let arguments = format!("{} = {}{ttl}", short(&key), quoted(&value));
        self.record("cache.set", arguments, answer_text(&result, done));
        result
    }

    async fn incr(&mut self, key: String, delta: i64) -> Result<i64, HostError> {
        let result = async {
            self.charge("cache.incr")?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            let result = self.cache.incr(&self.plugin, &key, delta).await;
            self.answer(result)
        }
        .await;
        let arguments = format!("{} {delta:+}", short(&key));
        self.record(
            "cache.incr",
            arguments,
            answer_text(&result, i64::to_string),
        );
        result
    }

    async fn delete(&mut self, key: String) -> Result<(), HostError> {
        let result = async {
            self.charge("cache.delete")?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            let result = self.cache.delete(&self.plugin, &key).await;
            self.answer(result)
        }
        .await;
        self.record("cache.delete", short(&key), answer_text(&result, done));
        result
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
        let function = match level {
            log::Level::Debug => "log.debug",
            log::Level::Info => "log.info",
            log::Level::Warn => "log.warn",
            log::Level::Error => "log.error",
        };
        self.record(function, quoted(&message), String::new());
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
        let now = crate::order::now_ms().max(0) as u64;
        self.record("clock.now-ms", String::new(), now.to_string());
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryPluginData;

    fn context(quota: u32) -> HostContext {
        let data = Arc::new(MemoryPluginData::new());
        HostContext {
            plugin: "recorder".into(),
            order_id: None,
            store: data.clone(),
            cache: data,
            calls_left: quota,
            calls_made: 0,
            call_quota: quota,
            unavailable: None,
            call_log: Vec::new(),
            calls_not_logged: 0,
        }
    }

    fn lines(host: &HostContext) -> Vec<String> {
        host.call_log.iter().map(ToString::to_string).collect()
    }

    #[tokio::test]
    async fn host_calls_are_recorded_with_their_answers() {
        let mut host = context(10);
        store::Host::put(&mut host, "t".into(), "k".into(), "v".into())
            .await
            .unwrap();
        store::Host::get(&mut host, "t".into(), "k".into())
            .await
            .unwrap();
        cache::Host::get(&mut host, "missing".into()).await.unwrap();
        cache::Host::incr(&mut host, "n".into(), 2).await.unwrap();
        cache::Host::set(&mut host, "k".into(), "v".into(), Some(0))
            .await
            .unwrap_err();
        log::Host::log(&mut host, log::Level::Warn, "careful".into()).await;
        assert_eq!(
            lines(&host),
            [
                "store.put t k = \"v\" -> ok",
                "store.get t k -> \"v\"",
                "cache.get missing -> none",
                "cache.incr n +2 -> 2",
                "cache.set k = \"v\" ttl 0s -> error: invalid: ttl-seconds must be positive",
                "log.warn \"careful\"",
            ]
        );
    }

    #[tokio::test]
    async fn calls_over_the_quota_are_recorded_as_refused() {
        let mut host = context(1);
        cache::Host::get(&mut host, "a".into()).await.unwrap();
        cache::Host::get(&mut host, "a".into()).await.unwrap_err();
        let recorded = lines(&host);
        assert!(
            recorded[1].starts_with("cache.get a -> error: quota-exceeded:"),
            "{recorded:?}"
        );
    }

    #[tokio::test]
    async fn the_call_log_is_bounded_and_cuts_long_text() {
        let mut host = context(1_000);
        let long_key = "k".repeat(300);
        for _ in 0..MAX_RECORDED_CALLS + 5 {
            cache::Host::get(&mut host, long_key.clone()).await.unwrap();
        }
        assert_eq!(host.call_log.len(), MAX_RECORDED_CALLS);
        assert_eq!(host.calls_not_logged, 5);
        assert!(host.call_log[0].arguments.len() <= MAX_RECORDED_TEXT_BYTES + '…'.len_utf8());
        assert!(host.call_log[0].arguments.ends_with('…'));
    }
}
