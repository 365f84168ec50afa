//! Native test support: an in-memory stand-in for the host, and builders for orders and
//! events. Only compiled off `wasm32`; inside the host the real functions are called.
//!
//! Each test thread has its own fake host, which starts empty; [`FakeHost::new`] resets it
//! and returns a handle to seed it, make it fail, and look at what the plugin did:
//!
//! ```
//! use orderpipe_plugin_sdk::{cache, testing::FakeHost, HostError};
//!
//! let host = FakeHost::new();
//! host.cache_set("seen", "yes");
//! assert_eq!(cache::get("seen"), Ok(Some("yes".to_string())));
//!
//! host.fail_with(HostError::Unavailable("redis is down".into()));
//! assert!(cache::get("seen").is_err());
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::__bindings::orderpipe::plugin::log::Level;
use crate::{Event, HostError, LineItem, Order};

/// The fake clock's time until a test sets another: 2023-11-14T22:13:20Z.
pub const DEFAULT_NOW_MS: u64 = 1_700_000_000_000;

/// A handle on this thread's fake host. Cheap; all handles on a thread see the same state.
#[derive(Debug, Clone, Copy)]
pub struct FakeHost {
    _not_send: std::marker::PhantomData<*const ()>,
}

#[derive(Debug)]
struct State {
    store: BTreeMap<(String, String), String>,
    cache: BTreeMap<String, (String, Option<u32>)>,
    logs: Vec<(Level, String)>,
    now_ms: u64,
    calls: u64,
    quota: Option<u64>,
    failure: Option<HostError>,
}

impl Default for State {
    fn default() -> Self {
        State {
            store: BTreeMap::new(),
            cache: BTreeMap::new(),
            logs: Vec::new(),
            now_ms: DEFAULT_NOW_MS,
            calls: 0,
            quota: None,
            failure: None,
        }
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

impl FakeHost {
    /// Resets this thread's fake host to empty and returns a handle on it.
    #[allow(clippy::new_without_default)] // `new` resets shared state; `default` would hide that.
    pub fn new() -> Self {
        with_state(|state| *state = State::default());
        FakeHost {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Makes every later store and cache call fail with `error` (it still counts as a call).
    pub fn fail_with(&self, error: HostError) {
        with_state(|state| state.failure = Some(error));
    }

    /// Undoes [`FakeHost::fail_with`].
    pub fn recover(&self) {
        with_state(|state| state.failure = None);
    }

    /// Lets only `calls` store and cache calls succeed; later ones fail with `quota-exceeded`.
    pub fn set_quota(&self, calls: u64) {
        with_state(|state| state.quota = Some(calls));
    }

    /// How many store and cache calls the plugin made, failed ones included.
    pub fn calls(&self) -> u64 {
        with_state(|state| state.calls)
    }

    pub fn set_now_ms(&self, now_ms: u64) {
        with_state(|state| state.now_ms = now_ms);
    }

    pub fn store_get(&self, table: &str, key: &str) -> Option<String> {
        with_state(|state| {
            state
                .store
                .get(&(table.to_string(), key.to_string()))
                .cloned()
        })
    }

    pub fn store_put(&self, table: &str, key: &str, value: &str) {
        with_state(|state| {
            state
                .store
                .insert((table.to_string(), key.to_string()), value.to_string())
        });
    }

    /// Every row as `(table, key, value)`, sorted.
    pub fn store_rows(&self) -> Vec<(String, String, String)> {
        with_state(|state| {
            state
                .store
                .iter()
                .map(|((table, key), value)| (table.clone(), key.clone(), value.clone()))
                .collect()
        })
    }

    pub fn cache_get(&self, key: &str) -> Option<String> {
        with_state(|state| state.cache.get(key).map(|(value, _)| value.clone()))
    }

    /// The time to live the plugin gave `key`, if any. The fake never expires anything.
    pub fn cache_ttl(&self, key: &str) -> Option<u32> {
        with_state(|state| state.cache.get(key).and_then(|(_, ttl)| *ttl))
    }

    pub fn cache_set(&self, key: &str, value: &str) {
        with_state(|state| {
            state
                .cache
                .insert(key.to_string(), (value.to_string(), None))
        });
    }

    /// Everything logged so far, oldest first.
    pub fn logs(&self) -> Vec<(Level, String)> {
        with_state(|state| state.logs.clone())
    }

    /// Whether a line at `level` containing `text` was logged.
    pub fn logged(&self, level: Level, text: &str) -> bool {
        with_state(|state| {
            state
                .logs
                .iter()
                .any(|(l, line)| *l == level && line.contains(text))
        })
    }
}

/// A new order in `status` with id `00000000-0000-4000-8000-000000000001`, no customer,
/// items, currency or attributes, and version 1. Change its public fields as a test needs.
pub fn order(status: &str) -> Order {
    Order {
        id: "00000000-0000-4000-8000-000000000001".to_string(),
        status: status.to_string(),
        version: 1,
        customer: None,
        items: Vec::new(),
        currency: None,
        attributes: Vec::new(),
        body: "{}".to_string(),
    }
}

pub fn item(sku: &str, qty: i64, unit_price: f64) -> LineItem {
    LineItem {
        sku: sku.to_string(),
        qty,
        unit_price,
    }
}

/// An event with id `event-1`, accepted at [`DEFAULT_NOW_MS`].
pub fn event(kind: &str, data: &str) -> Event {
    Event {
        id: "event-1".to_string(),
        kind: kind.to_string(),
        data: data.to_string(),
        at_ms: DEFAULT_NOW_MS,
    }
}

/// The fake's side of the host functions, with the same signatures as the bindings.
pub(crate) mod fake {
    use super::{State, with_state};
    use crate::HostError;

    /// Counts a store or cache call and decides whether it fails.
    fn call(state: &mut State) -> Result<(), HostError> {
        state.calls += 1;
        if let Some(quota) = state.quota
            && state.calls > quota
        {
            return Err(HostError::QuotaExceeded(format!(
                "host call quota of {quota} per event exceeded"
            )));
        }
        match &state.failure {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    pub(crate) mod store {
        use super::{call, with_state};
        use crate::HostError;

        pub(crate) fn get(table: &str, key: &str) -> Result<Option<String>, HostError> {
            with_state(|state| {
                call(state)?;
                Ok(state
                    .store
                    .get(&(table.to_string(), key.to_string()))
                    .cloned())
            })
        }

        pub(crate) fn put(table: &str, key: &str, value: &str) -> Result<(), HostError> {
            with_state(|state| {
                call(state)?;
                state
                    .store
                    .insert((table.to_string(), key.to_string()), value.to_string());
                Ok(())
            })
        }

        pub(crate) fn delete(table: &str, key: &str) -> Result<(), HostError> {
            with_state(|state| {
                call(state)?;
                state.store.remove(&(table.to_string(), key.to_string()));
                Ok(())
            })
        }
    }

    pub(crate) mod cache {
        use super::{call, with_state};
        use crate::HostError;

        pub(crate) fn get(key: &str) -> Result<Option<String>, HostError> {
            with_state(|state| {
                call(state)?;
                Ok(state.cache.get(key).map(|(value, _)| value.clone()))
            })
        }

        pub(crate) fn set(
            key: &str,
            value: &str,
            ttl_seconds: Option<u32>,
        ) -> Result<(), HostError> {
            with_state(|state| {
                call(state)?;
                state
                    .cache
                    .insert(key.to_string(), (value.to_string(), ttl_seconds));
                Ok(())
            })
        }

        pub(crate) fn incr(key: &str, delta: i64) -> Result<i64, HostError> {
            with_state(|state| {
                call(state)?;
                let (value, ttl) = state
                    .cache
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| ("0".to_string(), None));
                let current: i64 = value
                    .parse()
                    .map_err(|_| HostError::Invalid(format!("value of {key} is not an integer")))?;
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| HostError::Invalid(format!("incrementing {key} overflows")))?;
                state.cache.insert(key.to_string(), (next.to_string(), ttl));
                Ok(next)
            })
        }

        pub(crate) fn delete(key: &str) -> Result<(), HostError> {
            with_state(|state| {
                call(state)?;
                state.cache.remove(key);
                Ok(())
            })
        }
    }

    pub(crate) mod log {
        use super::with_state;
        use crate::__bindings::orderpipe::plugin::log::Level;

        pub(crate) fn log(level: Level, message: &str) {
            with_state(|state| state.logs.push((level, message.to_string())));
        }
    }

    pub(crate) mod clock {
        use super::with_state;

        pub(crate) fn now_ms() -> u64 {
            with_state(|state| state.now_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cache, clock, log, store};

    #[test]
    fn fake_store_and_cache_round_trip() {
        let host = FakeHost::new();
        store::put("t", "k", "v").unwrap();
        assert_eq!(store::get("t", "k"), Ok(Some("v".to_string())));
        assert_eq!(host.store_get("t", "k").as_deref(), Some("v"));
        store::delete("t", "k").unwrap();
        assert_eq!(store::get("t", "k"), Ok(None));

        cache::set("c", "1", Some(60)).unwrap();
        assert_eq!(host.cache_ttl("c"), Some(60));
        assert_eq!(cache::incr("c", 2), Ok(3));
        assert_eq!(cache::incr("fresh", 5), Ok(5));
        cache::delete("c").unwrap();
        assert_eq!(cache::get("c"), Ok(None));
        assert_eq!(host.calls(), 9);
    }

    #[test]
    fn incr_on_a_non_integer_is_invalid() {
        let host = FakeHost::new();
        host.cache_set("word", "hello");
        assert!(matches!(cache::incr("word", 1), Err(HostError::Invalid(_))));
    }

    #[test]
    fn quota_turns_later_calls_into_errors() {
        let host = FakeHost::new();
        host.set_quota(2);
        assert!(cache::get("a").is_ok());
        assert!(cache::get("a").is_ok());
        assert!(matches!(cache::get("a"), Err(HostError::QuotaExceeded(_))));
    }

    #[test]
    fn failure_applies_until_recovered() {
        let host = FakeHost::new();
        host.fail_with(HostError::Unavailable("down".into()));
        assert_eq!(
            store::get("t", "k"),
            Err(HostError::Unavailable("down".into()))
        );
        host.recover();
        assert_eq!(store::get("t", "k"), Ok(None));
    }

    #[test]
    fn logs_and_clock_are_recorded() {
        let host = FakeHost::new();
        assert_eq!(clock::now_ms(), DEFAULT_NOW_MS);
        host.set_now_ms(5);
        assert_eq!(clock::now_ms(), 5);
        log::warn("careful");
        assert!(host.logged(Level::Warn, "care"));
        assert!(!host.logged(Level::Info, "care"));
    }
}
