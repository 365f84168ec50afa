//! The host functions a plugin imports: its own rows, its own cache keys, logging and a clock.
//!
//! Guest inputs are hostile. Every call counts against the invocation's quota, every key,
//! table and value is size-checked, and the plugin's name (set by the host, never by the
//! guest) scopes every address. Expected failures go back to the guest as `host-error`
//! values; nothing a guest passes can make the host trap or panic.
//!
//! When the caller asks (`orderpipe plugin test` does; the worker does not), every call is
//! also noted in a short, bounded [`HostCall`] record, so a person trying a plugin out can see
//! what it asked the host and what it got. Unasked, no record text is ever formatted.

use std::sync::Arc;

use uuid::Uuid;

use super::bindings::orderpipe::plugin::{cache, clock, log, store, types};
use super::bindings::wit::HostError;
use super::failure::clamp;
use crate::backend::{BackendError, PluginCache, PluginStore, PluginWrite};
use crate::plugin_limits::PluginLimits;

/// The longest table name a plugin may use.
const MAX_TABLE_BYTES: usize = 64;
/// The longest key a plugin may use (store or cache).
const MAX_KEY_BYTES: usize = 512;
/// The longest log line kept; longer lines are cut (and count against the log budget as cut).
const MAX_LOG_LINE_BYTES: usize = 4 * 1024;
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
    clamp(text, MAX_RECORDED_TEXT_BYTES)
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
    pub version: String,
    pub order_id: Option<Uuid>,
    pub store: Arc<dyn PluginStore>,
    pub cache: Arc<dyn PluginCache>,
    /// What `clock.now-ms` answers: the time of the event being decided.
    pub now_ms: u64,
    /// Host calls still allowed in this invocation.
    pub calls_left: u32,
    /// Host calls made so far in this invocation.
    pub calls_made: u32,
    pub call_quota: u32,
    /// The largest value one write may carry (the plugin's `write_bytes`).
    pub write_bytes: usize,
    /// The first write refused as too large (by the bound or by the backend): the event
    /// fails with this reason, whatever the plugin decides after it.
    pub refused_write: Option<String>,
    /// The log budget left in this invocation, and what was dropped past it.
    pub log: LogBudget,
    /// The first backend outage a host call ran into: the event is retried later rather
    /// than decided on a plugin's reaction to an outage.
    pub unavailable: Option<(&'static str, String)>,
    /// Whether host calls are recorded in `call_log` at all.
    pub record_calls: bool,
    /// The first [`MAX_RECORDED_CALLS`] host calls of this invocation, logging included,
    /// when `record_calls` is set.
    pub call_log: Vec<HostCall>,
    /// Host calls made after `call_log` was full.
    pub calls_not_logged: u32,
    /// When set, store writes are held here instead of applied (the worker records them
    /// with the event's outcome); the plugin's own reads see them. At most one per
    /// (table, key), the latest; bounded by the host-call quota and `write_bytes`.
    pub held_writes: Option<Vec<PluginWrite>>,
}

/// Log lines and bytes one invocation may still write to the host's log, and the lines
/// dropped past that budget.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogBudget {
    pub lines_left: u32,
    pub bytes_left: usize,
    pub dropped_lines: u32,
    pub dropped_bytes: u64,
}

impl HostContext {
    /// The host functions of one invocation of plugin `plugin` (version `version`) under
    /// `limits`, deciding for `order_id` at `now_ms`.
    pub(crate) fn new(
        plugin: (&str, &str),
        order_id: Option<Uuid>,
        store: Arc<dyn PluginStore>,
        cache: Arc<dyn PluginCache>,
        limits: &PluginLimits,
        now_ms: u64,
    ) -> Self {
        Self {
            plugin: plugin.0.to_owned(),
            version: plugin.1.to_owned(),
            order_id,
            store,
            cache,
            now_ms,
            calls_left: limits.host_calls,
            calls_made: 0,
            call_quota: limits.host_calls,
            write_bytes: limits.write_bytes as usize,
            refused_write: None,
            log: LogBudget {
                lines_left: limits.log_lines,
                bytes_left: limits.log_bytes as usize,
                dropped_lines: 0,
                dropped_bytes: 0,
            },
            unavailable: None,
            record_calls: false,
            call_log: Vec::new(),
            calls_not_logged: 0,
            held_writes: None,
        }
    }

    /// What a held write says of (`table`, `key`): `Some(value)` when this invocation wrote
    /// or deleted it, `None` when it did not touch it.
    fn held(&self, table: &str, key: &str) -> Option<Option<String>> {
        self.held_writes.as_ref()?.iter().find_map(|write| {
            (write.table == table && write.key == key).then(|| write.value.clone())
        })
    }

    /// Holds a write when writes are held (replacing an earlier one of the same row);
    /// `false` when they are applied at once.
    fn hold(&mut self, table: &str, key: &str, value: Option<&str>) -> bool {
        let Some(held) = self.held_writes.as_mut() else {
            return false;
        };
        held.retain(|write| !(write.table == table && write.key == key));
        held.push(PluginWrite {
            plugin: self.plugin.clone(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: value.map(str::to_owned),
        });
        true
    }

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

    /// Refuses a value over the plugin's `write_bytes`, and remembers the refusal: a write
    /// that did not happen fails the event.
    fn check_write(&mut self, function: &str, value: &str) -> Result<(), HostError> {
        if value.len() > self.write_bytes {
            let reason = format!(
                "{function} of a {} byte value is over the plugin's write_bytes limit of {}",
                value.len(),
                self.write_bytes
            );
            self.refused_write.get_or_insert(reason.clone());
            return Err(HostError::Invalid(reason));
        }
        Ok(())
    }

    /// Notes a call in the invocation's bounded call log, when calls are recorded; the texts
    /// are only formatted then.
    fn record(
        &mut self,
        function: &'static str,
        arguments: impl FnOnce() -> String,
        answer: impl FnOnce() -> String,
    ) {
        if !self.record_calls {
            return;
        }
        if self.call_log.len() < MAX_RECORDED_CALLS {
            self.call_log.push(HostCall {
                function,
                arguments: arguments(),
                answer: answer(),
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
        self.answer_as(result, None)
    }

    /// [`HostContext::answer`] for a write (`function`): a refusal of the write fails the event.
    fn answer_write<T>(
        &mut self,
        function: &str,
        result: Result<T, BackendError>,
    ) -> Result<T, HostError> {
        self.answer_as(result, Some(function))
    }

    fn answer_as<T>(
        &mut self,
        result: Result<T, BackendError>,
        write: Option<&str>,
    ) -> Result<T, HostError> {
        result.map_err(|err| match err {
            BackendError::Unavailable {
                backend,
                ref detail,
            } => {
                self.unavailable.get_or_insert((backend, detail.clone()));
                HostError::Unavailable(err.to_string())
            }
            BackendError::Invalid(detail) => {
                if let Some(function) = write {
                    self.refused_write
                        .get_or_insert(format!("{function} was refused: {detail}"));
                }
                HostError::Invalid(detail)
            }
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
            if let Some(value) = self.held(&table, &key) {
                return Ok(value);
            }
            let result = self.store.get(&self.plugin, &table, &key).await;
            self.answer(result)
        }
        .await;
        self.record(
            "store.get",
            || format!("{} {}", short(&table), short(&key)),
            || answer_text(&result, found),
        );
        result
    }

    async fn put(&mut self, table: String, key: String, value: String) -> Result<(), HostError> {
        let result = async {
            self.charge("store.put")?;
            check_len("table", &table, MAX_TABLE_BYTES)?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            self.check_write("store.put", &value)?;
            if self.hold(&table, &key, Some(&value)) {
                return Ok(());
            }
            let result = self.store.put(&self.plugin, &table, &key, &value).await;
            self.answer_write("store.put", result)
        }
        .await;
        self.record(
            "store.put",
            || format!("{} {} = {}", short(&table), short(&key), quoted(&value)),
            || answer_text(&result, done),
        );
        result
    }

    async fn delete(&mut self, table: String, key: String) -> Result<(), HostError> {
        let result = async {
            self.charge("store.delete")?;
            check_len("table", &table, MAX_TABLE_BYTES)?;
            check_len("key", &key, MAX_KEY_BYTES)?;
            if self.hold(&table, &key, None) {
                return Ok(());
            }
            let result = self.store.delete(&self.plugin, &table, &key).await;
            self.answer(result)
        }
        .await;
        self.record(
            "store.delete",
            || format!("{} {}", short(&table), short(&key)),
            || answer_text(&result, done),
        );
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
        self.record("cache.get", || short(&key), || answer_text(&result, found));
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
            self.check_write("cache.set", &value)?;
            if ttl_seconds == Some(0) {
                return Err(HostError::Invalid("ttl-seconds must be positive".into()));
            }
            let result = self
                .cache
                .set(&self.plugin, &key, &value, ttl_seconds)
                .await;
            self.answer_write("cache.set", result)
        }
        .await;
        self.record(
            "cache.set",
            || {
                let ttl = ttl_seconds
                    .map(|ttl| format!(" ttl {ttl}s"))
                    .unwrap_or_default();
                format!("{} = {}{ttl}", short(&key), quoted(&value))
            },
            || answer_text(&result, done),
        );
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
        self.record(
            "cache.incr",
            || format!("{} {delta:+}", short(&key)),
            || answer_text(&result, i64::to_string),
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
        self.record(
            "cache.delete",
            || short(&key),
            || answer_text(&result, done),
        );
        result
    }
}

impl log::Host for HostContext {
    async fn log(&mut self, level: log::Level, message: String) {
        // Logging is not charged against the host-call quota; it has a budget of its own
        // (lines and bytes per invocation). Past it, lines are dropped and counted, and the
        // invocation's end logs one line saying how many.
        let mut message = message;
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
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
        if self.log.lines_left == 0 || self.log.bytes_left < message.len() {
            self.log.dropped_lines = self.log.dropped_lines.saturating_add(1);
            self.log.dropped_bytes = self.log.dropped_bytes.saturating_add(message.len() as u64);
            self.record(
                function,
                || quoted(&message),
                || "dropped: over the log budget".into(),
            );
            return;
        }
        self.log.lines_left -= 1;
        self.log.bytes_left -= message.len();
        self.record(function, || quoted(&message), String::new);
        let plugin = self.plugin.as_str();
        let version = self.version.as_str();
        // Formatted by the subscriber, and only for a line it keeps.
        let order_id = tracing::field::display(OrderIdField(self.order_id));
        match level {
            log::Level::Debug => {
                tracing::debug!(target: "orderpipe::plugin_log", plugin, version, order_id, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "orderpipe::plugin_log", plugin, version, order_id, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "orderpipe::plugin_log", plugin, version, order_id, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "orderpipe::plugin_log", plugin, version, order_id, "{message}")
            }
        }
    }
}

/// The order a plugin's log line is about, as its `order_id` field shows it (empty for none).
struct OrderIdField(Option<Uuid>);

impl std::fmt::Display for OrderIdField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => Ok(()),
        }
    }
}

impl clock::Host for HostContext {
    async fn now_ms(&mut self) -> u64 {
        let now = self.now_ms;
        self.record("clock.now-ms", String::new, || now.to_string());
        now
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryPluginData;

    fn context(quota: u32) -> HostContext {
        let data = Arc::new(MemoryPluginData::new());
        let limits = PluginLimits {
            host_calls: quota,
            ..PluginLimits::default()
        };
        let mut host =
            HostContext::new(("recorder", "0.1.0"), None, data.clone(), data, &limits, 42);
        host.record_calls = true;
        host
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

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::backend::memory::MemoryPluginData;

    fn context(limits: PluginLimits) -> HostContext {
        let data = Arc::new(MemoryPluginData::new());
        HostContext::new(("recorder", "0.1.0"), None, data.clone(), data, &limits, 42)
    }

    #[tokio::test]
    async fn lines_past_the_log_budget_are_dropped_and_counted() {
        let mut host = context(PluginLimits {
            log_lines: 3,
            log_bytes: 1_000,
            ..PluginLimits::default()
        });
        for _ in 0..10 {
            log::Host::log(&mut host, log::Level::Info, "x".repeat(100)).await;
        }
        assert_eq!(host.log.dropped_lines, 7);
        assert_eq!(host.log.dropped_bytes, 700);
        let mut bytes = context(PluginLimits {
            log_lines: 100,
            log_bytes: 250,
            ..PluginLimits::default()
        });
        for _ in 0..10 {
            log::Host::log(&mut bytes, log::Level::Info, "x".repeat(100)).await;
        }
        assert_eq!(
            bytes.log.dropped_lines, 8,
            "two lines of 100 bytes fit in 250"
        );
    }

    #[tokio::test]
    async fn a_write_over_the_bound_is_refused_and_remembered() {
        let mut host = context(PluginLimits {
            write_bytes: 10,
            ..PluginLimits::default()
        });
        store::Host::put(&mut host, "t".into(), "k".into(), "short".into())
            .await
            .unwrap();
        assert!(host.refused_write.is_none());
        let refused = cache::Host::set(&mut host, "k".into(), "x".repeat(11), None)
            .await
            .unwrap_err();
        assert!(matches!(refused, HostError::Invalid(_)));
        let reason = host.refused_write.clone().unwrap();
        assert!(reason.contains("write_bytes limit of 10"), "{reason}");
    }

    #[tokio::test]
    async fn held_writes_are_not_applied_but_the_plugin_reads_them_back() {
        let data = Arc::new(MemoryPluginData::new());
        PluginStore::put(data.as_ref(), "recorder", "t", "old", "stored")
            .await
            .unwrap();
        let limits = PluginLimits::default();
        let mut host = HostContext::new(
            ("recorder", "0.1.0"),
            None,
            data.clone(),
            data.clone(),
            &limits,
            42,
        );
        host.held_writes = Some(Vec::new());
        for value in ["first", "second"] {
            store::Host::put(&mut host, "t".into(), "new".into(), value.into())
                .await
                .unwrap();
        }
        store::Host::delete(&mut host, "t".into(), "old".into())
            .await
            .unwrap();
        let new = store::Host::get(&mut host, "t".into(), "new".into()).await;
        assert_eq!(new.unwrap().as_deref(), Some("second"));
        let old = store::Host::get(&mut host, "t".into(), "old".into()).await;
        assert_eq!(old.unwrap(), None, "deleted, as held");
        assert_eq!(
            PluginStore::get(data.as_ref(), "recorder", "t", "new")
                .await
                .unwrap(),
            None,
            "a held write is not applied"
        );
        assert_eq!(
            PluginStore::get(data.as_ref(), "recorder", "t", "old")
                .await
                .unwrap()
                .as_deref(),
            Some("stored"),
            "a held delete is not applied"
        );
        let held = host.held_writes.clone().unwrap();
        assert_eq!(
            held,
            vec![
                PluginWrite {
                    plugin: "recorder".into(),
                    table: "t".into(),
                    key: "new".into(),
                    value: Some("second".into()),
                },
                PluginWrite {
                    plugin: "recorder".into(),
                    table: "t".into(),
                    key: "old".into(),
                    value: None,
                },
            ],
            "one write per row, the latest"
        );
    }

    #[tokio::test]
    async fn the_clock_answers_the_events_time() {
        let mut host = context(PluginLimits::default());
        assert_eq!(clock::Host::now_ms(&mut host).await, 42);
    }
}
