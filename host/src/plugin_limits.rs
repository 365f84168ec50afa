//! The limits one plugin invocation runs under, as plain values: each limit's name, default,
//! bounds and why, written once in the table below.
//!
//! A leaf module: it imports nothing from the crate, so the configuration, the registry
//! backends and the plugin runtime can all use these types without reaching into each other.
//! Which limits apply to a plugin (defaults, configuration, registry overrides) is decided in
//! `plugin::limits`; how they are enforced, in the plugin runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One limit's bounds: what values an operator may give it, and why.
#[derive(Debug, Clone, Copy)]
pub struct LimitBounds {
    pub name: &'static str,
    pub min: u64,
    /// `None`: the ceiling is a host setting (`memory_mib` is capped by `plugins.max_memory_mib`).
    pub max: Option<u64>,
    pub why: &'static str,
}

/// The largest CPU budget a plugin may get: about ten seconds of wasm on one core, far past
/// any sane decision; larger numbers are typos.
pub const MAX_FUEL: u64 = 10_000_000_000;
/// The longest deadline: an event holds its partition while it runs, so a plugin may not
/// stall a partition for more than a minute.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// The most host calls per invocation: each is a round trip to Cassandra or Redis.
pub const MAX_HOST_CALLS: u32 = 10_000;
/// The largest decision an operator may allow. Past about 16 MiB Cassandra refuses to store
/// it (its `native_transport_max_frame_size`); the event then fails, the pipeline goes on.
pub const MAX_DECISION_BYTES: u32 = 32 * 1024 * 1024;
/// The largest store or cache value an operator may allow one plugin write.
pub const MAX_WRITE_BYTES: u32 = 1024 * 1024;
/// The most log lines one invocation may be allowed.
pub const MAX_LOG_LINES: u32 = 10_000;
/// The most log bytes one invocation may be allowed.
pub const MAX_LOG_BYTES: u32 = 1024 * 1024;
/// The most events one instance may decide before it is replaced.
pub const MAX_INSTANCE_REUSE: u32 = 100_000;

/// Instance slots when the configuration does not say (`plugins.instance_slots`): how many
/// plugin instances may exist at once on one host.
pub const DEFAULT_INSTANCE_SLOTS: u32 = 128;
/// How long an invocation waits for a free slot when the configuration does not say
/// (`plugins.slot_wait_ms`); past it the event is retried later.
pub const DEFAULT_SLOT_WAIT_MS: u64 = 30_000;

/// Linear memory kept resident per instance slot between uses when the configuration does not
/// say (`plugins.resident_memory_bytes`); see `RuntimeSettings::resident_memory_bytes`.
pub const DEFAULT_RESIDENT_MEMORY_BYTES: usize = 4 * 1024 * 1024;

/// Declares every limit once: [`PluginLimits`] (the values), [`LimitOverrides`] (some of
/// them replaced), the names and the bounds.
macro_rules! plugin_limits {
    ($( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr, $min:literal ..= $max:expr, $why:literal; )+) => {
        /// Limits for one plugin invocation.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct PluginLimits {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for PluginLimits {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        impl PluginLimits {
            /// A limit's value by name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( stringify!($field) => Some(u64::from(self.$field)), )+
                    _ => None,
                }
            }

            /// Sets a limit by name; fails for an unknown name or a value its type cannot hold.
            pub fn set(&mut self, name: &str, value: u64) -> Result<(), String> {
                match name {
                    $( stringify!($field) => {
                        self.$field = <$ty>::try_from(value)
                            .map_err(|_| format!("{name} {value} is too large"))?;
                    } )+
                    _ => return Err(format!("unknown plugin limit {name:?}")),
                }
                Ok(())
            }
        }

        /// Per-plugin limits that replace the host's defaults; `None` keeps the default.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct LimitOverrides {
            $( pub $field: Option<$ty>, )+
        }

        impl LimitOverrides {
            /// An override by name (`None`: not overridden, or not a limit).
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( stringify!($field) => self.$field.map(u64::from), )+
                    _ => None,
                }
            }

            /// Sets or clears an override by name.
            pub fn set(&mut self, name: &str, value: Option<u64>) -> Result<(), String> {
                match name {
                    $( stringify!($field) => {
                        self.$field = value
                            .map(<$ty>::try_from)
                            .transpose()
                            .map_err(|_| format!("{name} {value:?} is too large"))?;
                    } )+
                    _ => return Err(format!("unknown plugin limit {name:?}")),
                }
                Ok(())
            }
        }

        /// Every limit's name, in the order the table declares them.
        pub const LIMIT_NAMES: &[&str] = &[ $( stringify!($field), )+ ];

        /// Every limit's bounds.
        pub const LIMIT_BOUNDS: &[LimitBounds] = &[
            $( LimitBounds { name: stringify!($field), min: $min, max: $max, why: $why }, )+
        ];
    };
}

plugin_limits! {
    /// CPU budget in wasmtime fuel units (roughly one per wasm instruction).
    fuel: u64 = 50_000_000, 1 ..= Some(MAX_FUEL), "wasm instructions per event";
    /// Linear memory cap per instance, in MiB.
    memory_mib: u32 = 64, 1 ..= None, "the host's plugins.max_memory_mib";
    /// Wall-clock deadline per invocation, host calls included, in milliseconds.
    timeout_ms: u64 = 2_000, 1 ..= Some(MAX_TIMEOUT_MS), "an event holds its partition while it runs";
    /// Host calls (store, cache) allowed per invocation; 0 is a plugin with no store or cache.
    host_calls: u32 = 100, 0 ..= Some(MAX_HOST_CALLS as u64), "store and cache calls per event";
    /// The most bytes one decision may carry: its reason plus every attribute key and value
    /// (they are stored with the order and served on every read).
    decision_bytes: u32 = 64 * 1024, 1024 ..= Some(MAX_DECISION_BYTES as u64), "bytes of one decision";
    /// The most attributes one transition may set.
    attributes: u32 = 64, 0 ..= Some(1_024), "attributes one transition sets";
    /// The longest attribute key.
    attribute_key_bytes: u32 = 128, 1 ..= Some(1_024), "bytes of one attribute key";
    /// The longest attribute value (JSON text).
    attribute_value_bytes: u32 = 16 * 1024, 1 ..= Some(MAX_DECISION_BYTES as u64), "bytes of one attribute value";
    /// The largest value one store or cache write may carry.
    write_bytes: u32 = 64 * 1024, 1 ..= Some(MAX_WRITE_BYTES as u64), "bytes of one store or cache value";
    /// Log lines one invocation may write to the host's log; later lines are dropped and counted.
    log_lines: u32 = 50, 0 ..= Some(MAX_LOG_LINES as u64), "log lines per event";
    /// Log bytes one invocation may write to the host's log; later lines are dropped and counted.
    log_bytes: u32 = 16 * 1024, 0 ..= Some(MAX_LOG_BYTES as u64), "log bytes per event";
    /// Events one instance decides before it is discarded. 1 (the default): every event gets
    /// a fresh instance, so nothing a plugin keeps in globals reaches another order. More is
    /// an operator's opt-in for guests that are costly to instantiate (JavaScript, Python):
    /// globals then survive from one order to the next on that instance.
    instance_reuse: u32 = 1, 1 ..= Some(MAX_INSTANCE_REUSE as u64), "events one instance decides";
}

impl PluginLimits {
    pub fn memory_bytes(&self) -> usize {
        self.memory_mib as usize * 1024 * 1024
    }
}

impl LimitOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The overrides that are set, by name.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        LIMIT_NAMES
            .iter()
            .filter_map(|name| self.get(name).map(|value| ((*name).to_owned(), value)))
            .collect()
    }

    /// Overrides from a map by name; unknown names and values out of a type's range are
    /// skipped (they were written by a newer or a broken host).
    pub fn from_map(map: &BTreeMap<String, u64>) -> Self {
        let mut overrides = Self::default();
        for (name, value) in map {
            let _ = overrides.set(name, Some(*value));
        }
        overrides
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_bounds_and_a_default_within_them() {
        assert_eq!(LIMIT_NAMES.len(), LIMIT_BOUNDS.len());
        let defaults = PluginLimits::default();
        for bounds in LIMIT_BOUNDS {
            let value = defaults.get(bounds.name).unwrap();
            assert!(value >= bounds.min, "{}", bounds.name);
            assert!(bounds.max.is_none_or(|max| value <= max), "{}", bounds.name);
        }
    }

    #[test]
    fn overrides_round_trip_through_a_map_by_name() {
        let mut overrides = LimitOverrides::default();
        overrides.set("log_lines", Some(7)).unwrap();
        overrides.set("fuel", Some(9)).unwrap();
        assert!(overrides.set("cpu", Some(1)).is_err());
        assert!(overrides.set("memory_mib", Some(u64::MAX)).is_err());
        let map = overrides.to_map();
        assert_eq!(map.len(), 2);
        assert_eq!(LimitOverrides::from_map(&map), overrides);
    }
}
