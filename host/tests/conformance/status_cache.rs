//! The cache role: [`StatusCache`] (order views, never older than what they replace),
//! against the embedded cache and Redis. The fixture also carries the [`PluginCache`] of
//! the same backend, for `plugin_data`.

use std::sync::Arc;
use std::time::Duration;

use orderpipe::backend::embedded::EmbeddedCache;
use orderpipe::backend::redis::RedisCache;
use orderpipe::backend::{PluginCache, StatusCache};
use orderpipe::order::{Order, OrderRequest, OrderView};
use rand::seq::SliceRandom;
use uuid::Uuid;

use crate::{bounded, support};

/// One backend's status cache and plugin cache.
pub struct Caches {
    pub status: Arc<dyn StatusCache>,
    pub plugins: Arc<dyn PluginCache>,
}

impl Caches {
    pub async fn embedded() -> Self {
        let cache = Arc::new(EmbeddedCache::new(64 << 20, Duration::from_secs(3600)));
        Caches {
            status: cache.clone(),
            plugins: cache,
        }
    }

    pub async fn redis() -> Self {
        // A key prefix of its own (support::config makes one per call).
        let config = support::config("order").redis;
        let cache = Arc::new(
            bounded("connecting to Redis", RedisCache::connect(&config))
                .await
                .expect("Redis client"),
        );
        Caches {
            status: cache.clone(),
            plugins: cache,
        }
    }
}

fn view(id: Uuid, version: u64) -> OrderView {
    let mut order = Order::new(id, OrderRequest::default(), 1_700_000_000_000);
    order.version = version;
    order.status = format!("status_{version}");
    order.updated_at_ms += version as i64;
    order
        .attributes
        .insert("version".into(), serde_json::json!(version));
    order.view()
}

async fn get(cache: &dyn StatusCache, id: Uuid) -> Option<OrderView> {
    bounded("reading the cache", cache.get(id))
        .await
        .expect("get")
}

async fn put(cache: &dyn StatusCache, view: &OrderView) -> bool {
    bounded("writing the cache", cache.put(view))
        .await
        .expect("put")
}

conformance!(Caches { embedded, redis }:
    a_cached_view_round_trips,
    put_never_replaces_a_newer_version,
    concurrent_puts_leave_the_newest_version,
    a_cached_view_keeps_its_pipeline,
);

async fn a_cached_view_keeps_its_pipeline(caches: &Caches) {
    let cache = caches.status.as_ref();
    let id = Uuid::new_v4();
    let mut invoice = view(id, 1);
    invoice.pipeline = "invoices".into();
    assert!(put(cache, &invoice).await);
    assert_eq!(
        get(cache, id).await.map(|view| view.pipeline),
        Some("invoices".into())
    );
}

async fn a_cached_view_round_trips(caches: &Caches) {
    let cache = caches.status.as_ref();
    bounded("ping", cache.ping()).await.expect("ping");
    let id = Uuid::new_v4();
    assert_eq!(get(cache, id).await, None);
    let mut first = view(id, 0);
    first.customer = Some("ada".into());
    assert!(put(cache, &first).await);
    assert_eq!(get(cache, id).await, Some(first));
}

async fn put_never_replaces_a_newer_version(caches: &Caches) {
    let cache = caches.status.as_ref();
    let id = Uuid::new_v4();
    assert!(put(cache, &view(id, 2)).await);
    assert!(!put(cache, &view(id, 1)).await, "older version written");
    assert!(
        !put(cache, &view(id, 2)).await,
        "same version written again"
    );
    assert_eq!(get(cache, id).await, Some(view(id, 2)));
    assert!(put(cache, &view(id, 3)).await, "newer version refused");
    assert_eq!(get(cache, id).await, Some(view(id, 3)));
}

async fn concurrent_puts_leave_the_newest_version(caches: &Caches) {
    let id = Uuid::new_v4();
    let mut versions: Vec<u64> = (1..=20).collect();
    versions.shuffle(&mut rand::rng());
    let mut tasks = tokio::task::JoinSet::new();
    for version in versions {
        let cache = caches.status.clone();
        tasks.spawn(async move { cache.put(&view(id, version)).await.expect("put") });
    }
    while let Some(result) = bounded("concurrent writers", tasks.join_next()).await {
        result.expect("task");
    }
    assert_eq!(get(caches.status.as_ref(), id).await, Some(view(id, 20)));
}
