//! Limits per plugin: the host's defaults (`[plugins.limits]`), overridden per plugin from
//! the configuration (`[plugins.limits_for.<name>]`) and then from the shared registry
//! (`PUT /api/plugins/<name>/limits`, which wins), checked against the host's ceilings.
//! The limits themselves (names, defaults, bounds) are declared in [`crate::plugin_limits`].

use std::collections::BTreeMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::plugin_limits::{LIMIT_BOUNDS, LIMIT_NAMES, LimitOverrides, PluginLimits};

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

/// The source of each limit of [`EffectiveLimits::limits`], by limit name.
pub type LimitSources = BTreeMap<&'static str, LimitSource>;

/// The limits a plugin runs under, and where each came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    pub limits: PluginLimits,
    pub sources: LimitSources,
}

/// A change to a plugin's overrides, as `PUT /api/plugins/<name>/limits` sends it: an absent
/// limit keeps its override, a number sets it, `null` removes it (back to the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsChange {
    changes: BTreeMap<&'static str, Option<u64>>,
}

impl<'de> Deserialize<'de> for LimitsChange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChangeVisitor;
        impl<'de> Visitor<'de> for ChangeVisitor {
            type Value = LimitsChange;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of plugin limits")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LimitsChange, A::Error> {
                let mut changes = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(name) = LIMIT_NAMES.iter().find(|name| **name == key) else {
                        return Err(serde::de::Error::unknown_field(&key, LIMIT_NAMES));
                    };
                    let value: Option<u64> = map.next_value()?;
                    changes.insert(*name, value);
                }
                Ok(LimitsChange { changes })
            }
        }
        deserializer.deserialize_map(ChangeVisitor)
    }
}

impl LimitsChange {
    /// True when the change names no limit.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// `overrides` with this change applied; fails, naming the limit, for a value the
    /// limit's type cannot hold (e.g. `memory_mib` past 2^32).
    pub fn apply(&self, overrides: &LimitOverrides) -> Result<LimitOverrides, String> {
        let mut changed = overrides.clone();
        for (name, value) in &self.changes {
            changed.set(name, *value)?;
        }
        Ok(changed)
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

    /// The limits of plugin `name` given its registry overrides: for each limit, the
    /// registry's override, else the configured one, else the default.
    pub fn effective(&self, name: &str, overrides: &LimitOverrides) -> EffectiveLimits {
        let configured = self.configured.get(name).cloned().unwrap_or_default();
        let mut limits = self.defaults.clone();
        let mut sources = LimitSources::new();
        for limit in LIMIT_NAMES {
            let (value, source) = match (overrides.get(limit), configured.get(limit)) {
                (Some(value), _) => (Some(value), LimitSource::Override),
                (None, Some(value)) => (Some(value), LimitSource::Config),
                (None, None) => (None, LimitSource::Default),
            };
            if let Some(value) = value {
                // Overrides hold values of the limit's own type, so this cannot fail.
                let _ = limits.set(limit, value);
            }
            sources.insert(limit, source);
        }
        EffectiveLimits { limits, sources }
    }

    /// Checks limits against the ceilings; the error names the limit and its bounds.
    pub fn check(&self, limits: &PluginLimits) -> Result<(), String> {
        for bounds in LIMIT_BOUNDS {
            let max = bounds.max.unwrap_or(u64::from(self.max_memory_mib));
            let value = limits.get(bounds.name).unwrap_or_default();
            if value < bounds.min || value > max {
                return Err(format!(
                    "{} must be between {} and {max} ({}), not {value}",
                    bounds.name, bounds.min, bounds.why
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_limits::MAX_TIMEOUT_MS;

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
        assert_eq!(effective.sources["fuel"], LimitSource::Override);
        assert_eq!(effective.limits.timeout_ms, 700);
        assert_eq!(effective.sources["timeout_ms"], LimitSource::Override);
        assert_eq!(effective.limits.memory_mib, 64);
        assert_eq!(effective.sources["memory_mib"], LimitSource::Default);
        let configured = policy().effective("order", &LimitOverrides::default());
        assert_eq!(configured.limits.timeout_ms, 500);
        assert_eq!(configured.sources["timeout_ms"], LimitSource::Config);
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
        let after = change.apply(&before).unwrap();
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
