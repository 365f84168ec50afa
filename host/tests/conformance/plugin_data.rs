//! What a plugin may keep: its rows ([`PluginStore`]: embedded store and Cassandra) and its
//! cache keys ([`PluginCache`]: embedded cache and Redis). Both are addressed under the
//! plugin's name, which the host supplies: one plugin never reaches another's data.

use std::time::{Duration, Instant};

use orderpipe::backend::{BackendError, PluginCache, PluginStore};
use uuid::Uuid;

use crate::bounded;
use crate::order_store::Stores;
use crate::status_cache::Caches;

/// Plugin names unique to one test (the Cassandra keyspace is shared by every run).
fn plugin_names() -> (String, String) {
    let suffix = Uuid::new_v4().simple().to_string();
    (format!("alpha_{suffix}"), format!("beta_{suffix}"))
}

async fn row(store: &dyn PluginStore, plugin: &str, table: &str, key: &str) -> Option<String> {
    bounded("reading a plugin row", store.get(plugin, table, key))
        .await
        .expect("get")
}

async fn put_row(store: &dyn PluginStore, plugin: &str, table: &str, key: &str, value: &str) {
    bounded("writing a plugin row", store.put(plugin, table, key, value))
        .await
        .expect("put");
}

async fn cached(cache: &dyn PluginCache, plugin: &str, key: &str) -> Option<String> {
    bounded("reading a plugin key", cache.get(plugin, key))
        .await
        .expect("get")
}

async fn set(cache: &dyn PluginCache, plugin: &str, key: &str, value: &str, ttl: Option<u32>) {
    bounded("writing a plugin key", cache.set(plugin, key, value, ttl))
        .await
        .expect("set");
}

conformance!(Stores { embedded, cassandra }:
    plugin_rows_round_trip_and_delete,
    plugin_rows_are_scoped_by_plugin_and_table,
);

conformance!(Caches { embedded, redis }:
    plugin_keys_are_scoped_by_plugin,
    incr_counts_from_zero_and_refuses_non_integers,
    a_key_set_with_a_ttl_expires_and_incr_keeps_the_ttl,
);

async fn plugin_rows_round_trip_and_delete(stores: &Stores) {
    let store = stores.plugins.as_ref();
    let (plugin, _) = plugin_names();
    assert_eq!(row(store, &plugin, "payments", "p-1").await, None);
    put_row(store, &plugin, "payments", "p-1", "{\"amount\":24.98}").await;
    assert_eq!(
        row(store, &plugin, "payments", "p-1").await.as_deref(),
        Some("{\"amount\":24.98}")
    );
    put_row(store, &plugin, "payments", "p-1", "replaced").await;
    assert_eq!(
        row(store, &plugin, "payments", "p-1").await.as_deref(),
        Some("replaced")
    );
    bounded("deleting a row", store.delete(&plugin, "payments", "p-1"))
        .await
        .expect("delete");
    assert_eq!(row(store, &plugin, "payments", "p-1").await, None);
    // Deleting what is not there is not an error.
    bounded(
        "deleting a missing row",
        store.delete(&plugin, "payments", "p-1"),
    )
    .await
    .expect("delete again");
}

async fn plugin_rows_are_scoped_by_plugin_and_table(stores: &Stores) {
    let store = stores.plugins.as_ref();
    let (alpha, beta) = plugin_names();
    put_row(store, &alpha, "t", "k", "alpha's").await;
    assert_eq!(
        row(store, &beta, "t", "k").await,
        None,
        "read another plugin's row"
    );
    assert_eq!(
        row(store, &alpha, "other", "k").await,
        None,
        "tables are separate"
    );
    put_row(store, &beta, "t", "k", "beta's").await;
    assert_eq!(
        row(store, &alpha, "t", "k").await.as_deref(),
        Some("alpha's")
    );
    bounded("deleting a row", store.delete(&beta, "t", "k"))
        .await
        .expect("delete");
    assert_eq!(
        row(store, &alpha, "t", "k").await.as_deref(),
        Some("alpha's")
    );
}

async fn plugin_keys_are_scoped_by_plugin(caches: &Caches) {
    let cache = caches.plugins.as_ref();
    let (alpha, beta) = plugin_names();
    set(cache, &alpha, "k", "alpha's", None).await;
    assert_eq!(
        cached(cache, &beta, "k").await,
        None,
        "read another plugin's key"
    );
    set(cache, &beta, "k", "beta's", None).await;
    assert_eq!(cached(cache, &alpha, "k").await.as_deref(), Some("alpha's"));
    bounded("deleting a key", cache.delete(&beta, "k"))
        .await
        .expect("delete");
    assert_eq!(cached(cache, &beta, "k").await, None);
    assert_eq!(cached(cache, &alpha, "k").await.as_deref(), Some("alpha's"));
}

async fn incr_counts_from_zero_and_refuses_non_integers(caches: &Caches) {
    let cache = caches.plugins.as_ref();
    let (alpha, beta) = plugin_names();
    let incr = |plugin: &str, delta: i64| {
        let (plugin, cache) = (plugin.to_owned(), caches.plugins.clone());
        async move { bounded("incrementing", cache.incr(&plugin, "count", delta)).await }
    };
    assert_eq!(incr(&alpha, 5).await.expect("incr"), 5);
    assert_eq!(incr(&alpha, -2).await.expect("incr"), 3);
    assert_eq!(
        incr(&beta, 1).await.expect("incr"),
        1,
        "counters are per plugin"
    );
    assert_eq!(cached(cache, &alpha, "count").await.as_deref(), Some("3"));

    set(cache, &alpha, "count", "three", None).await;
    match incr(&alpha, 1).await {
        Err(BackendError::Invalid(_)) => {}
        other => panic!("incr of a non-integer answered {other:?}"),
    }
    assert_eq!(
        cached(cache, &alpha, "count").await.as_deref(),
        Some("three")
    );
}

async fn a_key_set_with_a_ttl_expires_and_incr_keeps_the_ttl(caches: &Caches) {
    let cache = caches.plugins.as_ref();
    let (plugin, _) = plugin_names();
    set(cache, &plugin, "short", "soon gone", Some(1)).await;
    set(cache, &plugin, "counter", "5", Some(1)).await;
    set(cache, &plugin, "forever", "kept", None).await;
    assert_eq!(
        cached(cache, &plugin, "short").await.as_deref(),
        Some("soon gone")
    );
    assert_eq!(
        bounded("incrementing", cache.incr(&plugin, "counter", 1))
            .await
            .expect("incr"),
        6
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cached(cache, &plugin, "short").await.is_some()
        || cached(cache, &plugin, "counter").await.is_some()
    {
        assert!(
            Instant::now() < deadline,
            "keys with a 1 s TTL outlived 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cached(cache, &plugin, "forever").await.as_deref(),
        Some("kept")
    );
}
