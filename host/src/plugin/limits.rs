//! Limits per plugin: the host's defaults (`[plugins.limits]`), overridden per plugin from
//! the configuration (`[plugins.limits_for.<name>]`) and then from the shared registry
//! (`PUT /api/plugins/<name>/limits`, which wins), checked against the host's ceilings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::runtime::PluginLimits;
use crate::backend::registry::LimitOverrides;

/// The largest CPU budget a plugin may get: about ten seconds of wasm on one core, far past
/// any sane decision; larger numbers are typos.
pub const MAX_FUEL: u64 = 10_000_000_000;
/// The longest deadline: an event holds its partition while it runs, so a plugin may not
/// stall a partition for more than a minute.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// The most host calls per invocation: each is a round trip to Cassandra or Redis.
pub const MAX_HOST_CALLS: u32 = 10_000;

/// Where an effective limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitSource {
    /// `[plugins.limits]`.
    Default,
    /// `[plugins.limits_for.<name>]`.
    Config,
    /// The registry (`PUT /api/plugins/<name>/limits`).
    Override,
}

/// The source of each limit of [`EffectiveLimits::limits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitSources {
    pub fuel: LimitSource,
    pub memory_mib: LimitSource,
    pub timeout_ms: LimitSource,
    pub host_calls: LimitSource,
}

/// The limits a plugin runs under, and where each came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    pub limits: PluginLimits,
    pub sources: LimitSources,
}

/// A change to a plugin's overrides, as `PUT /api/plugins/<name>/limits` sends it: an absent
/// field keeps its override, a number sets it, `null` removes it (back to the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsChange {
    #[serde(default, deserialize_with = "present")]
    pub fuel: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub memory_mib: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub host_calls: Option<Option<u32>>,
}

/// A field that is present, possibly `null` (absent fields stay `None` through `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl LimitsChange {
    /// True when the change names no limit.
    pub fn is_empty(&self) -> bool {
        self.fuel.is_none()
            && self.memory_mib.is_none()
            && self.timeout_ms.is_none()
            && self.host_calls.is_none()
    }

    /// `overrides` with this change applied.
    pub fn apply(&self, overrides: &LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            fuel: self.fuel.unwrap_or(overrides.fuel),
            memory_mib: self.memory_mib.unwrap_or(overrides.memory_mib),
            timeout_ms: self.timeout_ms.unwrap_or(overrides.timeout_ms),
            host_calls: self.host_calls.unwrap_or(overrides.host_calls),
        }
    }
}

/// The host's limit policy: defaults, configured overrides per plugin, and ceilings.
#[derive(Debug, Clone)]
pub struct LimitPolicy {
    defaults: PluginLimits,
    configured: BTreeMap<String, LimitOverrides>,
    max_memory_mib: u32,
}

impl LimitPolicy {
    /// A policy from the configuration; fails when a configured limit is out of bounds.
    pub fn new(
        defaults: PluginLimits,
        configured: BTreeMap<String, LimitOverrides>,
        max_memory_mib: u32,
    ) -> Result<Self, String> {
        let policy = Self {
            defaults,
            configured,
            max_memory_mib,
        };
        policy
            .check(&policy.defaults)
            .map_err(|e| format!("plugins.limits: {e}"))?;
        for name in policy.configured.keys() {
            let effective = policy.effective(name, &LimitOverrides::default());
            policy
                .check(&effective.limits)
                .map_err(|e| format!("plugins.limits_for.{name}: {e}"))?;
        }
        Ok(policy)
    }

    /// `[plugins.limits]`.
    pub fn defaults(&self) -> &PluginLimits {
        &self.defaults
    }

    /// The limits of plugin `name` given its registry overrides.
    pub fn effective(&self, name: &str, overrides: &LimitOverrides) -> EffectiveLimits {
        let configured = self.configured.get(name).cloned().unwrap_or_default();
        fn pick<T: Copy>(
            default: T,
            configured: Option<T>,
            overridden: Option<T>,
        ) -> (T, LimitSource) {
            match (overridden, configured) {
                (Some(value), _) => (value, LimitSource::Override),
                (None, Some(value)) => (value, LimitSource::Config),
                (None, None) => (default, LimitSource::Default),
            }
        }
        let d = &self.defaults;
        let (fuel, fuel_source) = pick(d.fuel, configured.fuel, overrides.fuel);
        let (memory_mib, memory_source) =
            pick(d.memory_mib, configured.memory_mib, overrides.memory_mib);
        let (timeout_ms, timeout_source) =
            pick(d.timeout_ms, configured.timeout_ms, overrides.timeout_ms);
        let (host_calls, calls_source) =
            pick(d.host_calls, configured.host_calls, overrides.host_calls);
        EffectiveLimits {
            limits: PluginLimits {
                fuel,
                memory_mib,
                timeout_ms,
                host_calls,
            },
            sources: LimitSources {
                fuel: fuel_source,
                memory_mib: memory_source,
                timeout_ms: timeout_source,
                host_calls: calls_source,
            },
        }
    }

    /// Checks limits against the ceilings; the error names the limit and its bounds.
    pub fn check(&self, limits: &PluginLimits) -> Result<(), String> {
        fn within<T: PartialOrd + std::fmt::Display>(
            what: &str,
            value: T,
            min: T,
            max: T,
            why: &str,
        ) -> Result<(), String> {
            if value < min || value > max {
                return Err(format!(
                    "{what} must be between {min} and {max} ({why}), not {value}"
                ));
            }
            Ok(())
        }
        within(
            "fuel",
            limits.fuel,
            1,
            MAX_FUEL,
            "wasm instructions per event",
        )?;
        within(
            "memory_mib",
            limits.memory_mib,
            1,
            self.max_memory_mib,
            "the host's plugins.max_memory_mib",
        )?;
        within(
            "timeout_ms",
            limits.timeout_ms,
            1,
            MAX_TIMEOUT_MS,
            "an event holds its partition while it runs",
        )?;
        // Zero host calls is a legitimate sandbox: a plugin that may not touch store or cache.
        within(
            "host_calls",
            limits.host_calls,
            0,
            MAX_HOST_CALLS,
            "store and cache calls per event",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LimitPolicy {
        let mut configured = BTreeMap::new();
        configured.insert(
            "order".to_owned(),
            LimitOverrides {
                timeout_ms: Some(500),
                ..Default::default()
            },
        );
        LimitPolicy::new(PluginLimits::default(), configured, 128).unwrap()
    }

    #[test]
    fn the_registry_override_wins_over_the_configuration_which_wins_over_the_default() {
        let overrides = LimitOverrides {
            fuel: Some(1_000),
            timeout_ms: Some(700),
            ..Default::default()
        };
        let effective = policy().effective("order", &overrides);
        assert_eq!(effective.limits.fuel, 1_000);
        assert_eq!(effective.sources.fuel, LimitSource::Override);
        assert_eq!(effective.limits.timeout_ms, 700);
        assert_eq!(effective.sources.timeout_ms, LimitSource::Override);
        assert_eq!(effective.limits.memory_mib, 64);
        assert_eq!(effective.sources.memory_mib, LimitSource::Default);
        let configured = policy().effective("order", &LimitOverrides::default());
        assert_eq!(configured.limits.timeout_ms, 500);
        assert_eq!(configured.sources.timeout_ms, LimitSource::Config);
        let other = policy().effective("other", &LimitOverrides::default());
        assert_eq!(other.limits, PluginLimits::default());
    }

    #[test]
    fn zero_and_absurd_limits_are_refused_with_the_bound() {
        let policy = policy();
        let with = |change: fn(&mut PluginLimits)| {
            let mut limits = PluginLimits::default();
            change(&mut limits);
            policy.check(&limits)
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|l| l.host_calls = 0).is_ok());
        let zero_fuel = with(|l| l.fuel = 0).unwrap_err();
        assert!(
            zero_fuel.contains("fuel must be between 1 and"),
            "{zero_fuel}"
        );
        let memory = with(|l| l.memory_mib = 129).unwrap_err();
        assert!(memory.contains("plugins.max_memory_mib"), "{memory}");
        assert!(with(|l| l.timeout_ms = MAX_TIMEOUT_MS + 1).is_err());
        assert!(with(|l| l.fuel = u64::MAX).is_err());
    }

    #[test]
    fn a_change_keeps_absent_fields_sets_numbers_and_clears_nulls() {
        let change: LimitsChange =
            serde_json::from_str(r#"{"fuel": 5, "timeout_ms": null}"#).unwrap();
        let before = LimitOverrides {
            timeout_ms: Some(9),
            host_calls: Some(3),
            ..Default::default()
        };
        let after = change.apply(&before);
        assert_eq!(after.fuel, Some(5));
        assert_eq!(after.timeout_ms, None);
        assert_eq!(after.host_calls, Some(3));
        assert!(serde_json::from_str::<LimitsChange>(r#"{"cpu": 1}"#).is_err());
    }

    #[test]
    fn a_configured_limit_over_the_ceiling_is_refused_at_start_up() {
        let error = LimitPolicy::new(PluginLimits::default(), BTreeMap::new(), 32).unwrap_err();
        assert!(error.starts_with("plugins.limits: memory_mib"), "{error}");
    }
}
