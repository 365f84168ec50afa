//! Cassandra's request sharing (`backend/cassandra/batcher.rs`, `reads.rs`), on the real server:
//! with one request in flight, writes and reads arriving meanwhile share the next one, and
//! each caller gets exactly what it would have alone. Only the Cassandra store shares
//! requests, so there is no embedded case.

use orderpipe::backend::{Advance, BackendError, PluginWrite, StoredOrder};
use orderpipe::order::Outcome;
use uuid::Uuid;

use crate::order_store::{Stores, advanced, entry_for, new_order};
use crate::{bounded, support};

/// Past Cassandra's 16 MiB `native_transport_max_frame_size`.
const TOO_LARGE: usize = 20 * 1024 * 1024;

/// A store whose writes and reads wait for one request in flight, so they share the next.
async fn one_request_at_a_time() -> Stores {
    let mut config = support::config("order").cassandra;
    config.batches_in_flight = 1;
    Stores::cassandra_with(config).await
}

/// With one batch in flight, writes arriving meanwhile share the next request: each lands as
/// if sent alone, and a too-large one among them is refused without taking the others along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sharing_a_batch_each_land_and_a_refused_one_fails_alone() {
    let stores = one_request_at_a_time().await;
    let orders: Vec<_> = (0..24).map(|_| new_order()).collect();
    let mut writes = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let next = advanced(order, "paid");
        let entry = entry_for(order, &next, Outcome::Transitioned);
        let basis = StoredOrder::not_stored(order.clone());
        let store = stores.orders.clone();
        let plugins = stores.plugins.clone();
        writes.push(tokio::spawn(async move {
            let recorded = store.record_next_event(&basis, &next, &entry).await;
            let value = if n == 7 {
                "x".repeat(TOO_LARGE)
            } else {
                format!("value {n}")
            };
            let put = plugins.put("batching", "t", &format!("k{n}"), &value).await;
            (recorded, put)
        }));
    }
    for (n, write) in writes.into_iter().enumerate() {
        let (recorded, put) = bounded("a write", write).await.expect("task");
        recorded.unwrap_or_else(|e| panic!("order {n} not recorded: {e}"));
        if n == 7 {
            assert!(matches!(put, Err(BackendError::Invalid(_))), "{put:?}");
        } else {
            put.unwrap_or_else(|e| panic!("plugin write {n} failed: {e}"));
        }
    }
    for (n, order) in orders.iter().enumerate() {
        let stored = bounded("loading", stores.orders.load_order(order.id))
            .await
            .expect("load")
            .expect("stored");
        assert_eq!(stored.order.status, "paid", "order {n}");
        let value = bounded(
            "reading",
            stores.plugins.get("batching", "t", &format!("k{n}")),
        )
        .await
        .expect("get");
        let expected = (n != 7).then(|| format!("value {n}"));
        assert_eq!(value, expected, "plugin row {n}");
    }
}

/// Reads of many orders at once, some never stored, each get their own order's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sharing_a_query_each_get_their_own_order() {
    let stores = one_request_at_a_time().await;
    let mut ids = Vec::new();
    for n in 0..20 {
        if n % 5 == 4 {
            ids.push((Uuid::new_v4(), None));
            continue;
        }
        let mut order = new_order();
        order.status = format!("status-{n}");
        bounded("storing", stores.orders.store_accepted_order(&order))
            .await
            .expect("store");
        ids.push((order.id, Some(order.status)));
    }
    let reads = ids.iter().map(|(id, _)| {
        let store = stores.orders.clone();
        let id = *id;
        tokio::spawn(async move { store.load_order(id).await })
    });
    let loaded = bounded("reading", futures::future::join_all(reads)).await;
    for ((id, status), loaded) in ids.iter().zip(loaded) {
        let loaded = loaded.expect("task").expect("read");
        assert_eq!(
            loaded.as_ref().map(|stored| stored.order.status.clone()),
            *status,
            "order {id}"
        );
        if let Some(stored) = loaded {
            assert_eq!(stored.order.id, *id);
        }
    }
}

/// The worker's plugin writes go with the event (`OrderStore::record_next_event_with`): small
/// ones in the event's own batch, one larger than a batch's byte bound on its own first; a
/// delete as well as a put; each lands with the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_s_writes_are_recorded_with_its_event() {
    let stores = one_request_at_a_time().await;
    assert!(stores.orders.records_plugin_writes());
    let write = |key: &str, value: Option<String>| PluginWrite {
        plugin: "folding".into(),
        table: "t".into(),
        key: key.into(),
        value,
    };
    bounded(
        "a row to delete",
        stores.plugins.put("folding", "t", "gone", "old"),
    )
    .await
    .expect("put");
    // Past `cassandra.batch_max_bytes` (16 KiB), under Cassandra's 50 KiB batch refusal.
    let large = "y".repeat(24 * 1024);
    let cases = [
        vec![write("small", Some("value".into())), write("gone", None)],
        vec![write("large", Some(large.clone()))],
    ];
    for writes in cases {
        let order = new_order();
        let next = advanced(&order, "paid");
        let entry = entry_for(&order, &next, Outcome::Transitioned);
        let basis = StoredOrder::not_stored(order.clone());
        let recorded = bounded(
            "recording",
            stores
                .orders
                .record_next_event_with(&basis, &next, &entry, &writes),
        )
        .await;
        assert!(
            matches!(recorded, Ok(Advance::Recorded { .. })),
            "{recorded:?}"
        );
        let stored = bounded("loading", stores.orders.load_order(order.id))
            .await
            .expect("load")
            .expect("stored");
        assert_eq!(stored.order.status, "paid");
    }
    let row = |key: &'static str| stores.plugins.get("folding", "t", key);
    assert_eq!(
        bounded("small", row("small"))
            .await
            .expect("get")
            .as_deref(),
        Some("value")
    );
    assert_eq!(bounded("gone", row("gone")).await.expect("get"), None);
    assert_eq!(
        bounded("large", row("large")).await.expect("get"),
        Some(large)
    );
}
