//! The embedded cache: order views and plugin keys in process memory (moka), bounded in
//! bytes (each entry weighed by its size) and expiring like their Redis counterparts. Nothing survives a restart; the store
//! stays the source of truth.
//!
//! Invariants, matching the Redis cache:
//! - An order view is replaced only by a strictly newer version of the order, decided
//!   atomically per order (moka's per-key compute), so a slow writer never makes it stale.
//!   A write refreshes the view's time to live.
//! - Plugin keys are addressed by (plugin, key): the host supplies the plugin's name, so one
//!   plugin never sees another's keys. `set` replaces the value and its expiry (none unless
//!   given, as Redis `SET` does); `incr` keeps the expiry (as Redis `INCR` does) and refuses a
//!   value that is not an integer, or a result that would overflow.
//!
//! When full, the least useful entries are evicted (a cache miss, never a wrong answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use uuid::Uuid;

use crate::backend::{BackendError, BackendResult, PluginCache, StatusCache};
use crate::order::OrderView;

/// What every entry costs besides its own bytes: moka's bookkeeping, the key, the `Arc`.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// An order view's weight: its JSON size (what Redis would hold) plus the overhead. A view
/// too large to serialize weighs the most, so it is the first to go.
fn view_weight(_id: &Uuid, view: &Arc<OrderView>) -> u32 {
    serde_json::to_vec(view.as_ref())
        .map(|json| json.len().saturating_add(ENTRY_OVERHEAD_BYTES))
        .map_or(u32::MAX, |bytes| u32::try_from(bytes).unwrap_or(u32::MAX))
}

/// A plugin key's weight: its name, plugin name and value, plus the overhead.
fn key_weight(key: &PluginKey, value: &PluginValue) -> u32 {
    let bytes = key.0.len() + key.1.len() + value.value.len() + ENTRY_OVERHEAD_BYTES;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

type PluginKey = (String, String);

/// A plugin's cached value and when it expires (never, when `None`).
#[derive(Debug, Clone)]
struct PluginValue {
    value: Arc<str>,
    expires_at: Option<Instant>,
}

impl PluginValue {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// Each plugin key expires at the instant its value carries.
struct PluginKeyExpiry;

impl Expiry<PluginKey, PluginValue> for PluginKeyExpiry {
    fn expire_after_create(
        &self,
        _key: &PluginKey,
        value: &PluginValue,
        created_at: Instant,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &PluginKey,
        value: &PluginValue,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(updated_at))
    }
}

/// The embedded [`StatusCache`] and [`PluginCache`]. Cheap to clone (clones share entries).
#[derive(Clone)]
pub struct EmbeddedCache {
    views: Cache<Uuid, Arc<OrderView>>,
    keys: Cache<PluginKey, PluginValue>,
}

impl EmbeddedCache {
    /// A cache of at most `max_bytes` of order views and `max_bytes` of plugin keys; an
    /// order view lives for `view_ttl` after its last write.
    pub fn new(max_bytes: u64, view_ttl: Duration) -> Self {
        Self {
            views: Cache::builder()
                .name("order views")
                .weigher(view_weight)
                .max_capacity(max_bytes)
                .time_to_live(view_ttl.max(Duration::from_secs(1)))
                .build(),
            keys: Cache::builder()
                .name("plugin keys")
                .weigher(key_weight)
                .max_capacity(max_bytes)
                .expire_after(PluginKeyExpiry)
                .build(),
        }
    }

    fn plugin_key(plugin: &str, key: &str) -> PluginKey {
        (plugin.to_owned(), key.to_owned())
    }
}

#[async_trait]
impl StatusCache for EmbeddedCache {
    async fn get(&self, id: Uuid) -> BackendResult<Option<OrderView>> {
        Ok(self.views.get(&id).map(|view| (*view).clone()))
    }

    async fn put(&self, view: &OrderView) -> BackendResult<bool> {
        let result = self
            .views
            .entry(view.order_id)
            .and_compute_with(|current| match current {
                Some(current) if current.value().version >= view.version => Op::Nop,
                _ => Op::Put(Arc::new(view.clone())),
            });
        Ok(matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        ))
    }

    async fn ping(&self) -> BackendResult<()> {
        Ok(())
    }
}

#[async_trait]
impl PluginCache for EmbeddedCache {
    async fn get(&self, plugin: &str, key: &str) -> BackendResult<Option<String>> {
        Ok(self
            .keys
            .get(&Self::plugin_key(plugin, key))
            .filter(|value| value.is_live(Instant::now()))
            .map(|value| value.value.to_string()))
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl_seconds: Option<u32>,
    ) -> BackendResult<()> {
        let value = PluginValue {
            value: value.into(),
            expires_at: ttl_seconds.map(|ttl| Instant::now() + Duration::from_secs(ttl.into())),
        };
        // Through the per-key compute, so it is ordered with a concurrent `incr`.
        self.keys
            .entry(Self::plugin_key(plugin, key))
            .and_compute_with(|_| Op::Put(value));
        Ok(())
    }

    async fn incr(&self, plugin: &str, key: &str, delta: i64) -> BackendResult<i64> {
        let now = Instant::now();
        let mut result = 0;
        self.keys
            .entry(Self::plugin_key(plugin, key))
            .and_try_compute_with(|current| {
                let current = current
                    .map(|entry| entry.into_value())
                    .filter(|value| value.is_live(now));
                let (count, expires_at) = match &current {
                    None => (0, None),
                    Some(value) => (
                        value.value.parse::<i64>().map_err(|_| {
                            BackendError::Invalid(format!("value of {key} is not an integer"))
                        })?,
                        value.expires_at,
                    ),
                };
                result = count.checked_add(delta).ok_or_else(|| {
                    BackendError::Invalid(format!("incrementing {key} would overflow"))
                })?;
                Ok::<_, BackendError>(Op::Put(PluginValue {
                    value: result.to_string().into(),
                    expires_at,
                }))
            })?;
        Ok(result)
    }

    async fn delete(&self, plugin: &str, key: &str) -> BackendResult<()> {
        self.keys
            .entry(Self::plugin_key(plugin, key))
            .and_compute_with(|_| Op::Remove);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: Uuid, version: u64) -> OrderView {
        let mut order = crate::order::Order::new(id, Default::default(), 0);
        order.version = version;
        order.status = format!("v{version}");
        order.view()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_leave_the_newest_version() {
        let cache = EmbeddedCache::new(1 << 20, Duration::from_secs(60));
        let id = Uuid::new_v4();
        let mut tasks = tokio::task::JoinSet::new();
        for version in (1..=50).rev() {
            let cache = cache.clone();
            tasks.spawn(async move { cache.put(&view(id, version)).await.unwrap() });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            StatusCache::get(&cache, id).await.unwrap().unwrap().version,
            50
        );
    }

    #[tokio::test]
    async fn a_plugin_key_with_a_ttl_expires_and_incr_keeps_the_ttl() {
        let cache = EmbeddedCache::new(1 << 20, Duration::from_secs(60));
        // A zero TTL has already expired: no waiting needed to see expiry.
        cache.set("p", "gone", "1", Some(0)).await.unwrap();
        assert_eq!(PluginCache::get(&cache, "p", "gone").await.unwrap(), None);
        assert_eq!(cache.incr("p", "gone", 5).await.unwrap(), 5);

        cache.set("p", "k", "1", Some(60)).await.unwrap();
        assert_eq!(cache.incr("p", "k", 1).await.unwrap(), 2);
        let kept = cache.keys.get(&("p".into(), "k".into())).unwrap();
        assert!(kept.expires_at.is_some(), "incr dropped the TTL");
    }

    #[tokio::test]
    async fn incr_refuses_overflow() {
        let cache = EmbeddedCache::new(1 << 20, Duration::from_secs(60));
        cache
            .set("p", "k", &i64::MAX.to_string(), None)
            .await
            .unwrap();
        assert!(matches!(
            cache.incr("p", "k", 1).await,
            Err(BackendError::Invalid(_))
        ));
        assert_eq!(
            PluginCache::get(&cache, "p", "k").await.unwrap(),
            Some(i64::MAX.to_string())
        );
    }

    #[tokio::test]
    async fn capacity_bounds_the_bytes() {
        let one = u64::from(view_weight(&Uuid::nil(), &Arc::new(view(Uuid::nil(), 1))));
        let cache = EmbeddedCache::new(10 * one, Duration::from_secs(60));
        for _ in 0..100 {
            cache.put(&view(Uuid::new_v4(), 1)).await.unwrap();
        }
        cache.views.run_pending_tasks();
        assert!(
            cache.views.weighted_size() <= 10 * one,
            "{} bytes",
            cache.views.weighted_size()
        );
        assert!(cache.views.entry_count() <= 10);

        // A large view weighs as much as several small ones.
        let mut big = view(Uuid::new_v4(), 1);
        big.attributes.insert(
            "note".into(),
            serde_json::json!("x".repeat(4 * one as usize)),
        );
        cache.put(&big).await.unwrap();
        cache.views.run_pending_tasks();
        assert!(cache.views.weighted_size() <= 10 * one);
        // Kept or not (moka's admission policy decides), it displaced several small views
        // if it is there.
        if cache.views.contains_key(&big.order_id) {
            assert!(
                cache.views.entry_count() <= 6,
                "{}",
                cache.views.entry_count()
            );
        }

        cache
            .set("p", "k", &"v".repeat(20 * one as usize), None)
            .await
            .unwrap();
        cache.keys.run_pending_tasks();
        assert_eq!(
            cache.keys.entry_count(),
            0,
            "a value over the whole budget is not kept"
        );
    }
}
