//! A component that needs more of the instance pool than one slot holds: the Python `order`
//! plugin (componentize-py) creates 14 core instances per instance, where a Rust guest
//! creates 3. Many of its invocations at once must wait for room in the pool, never fail on
//! it; a pool too small for even one instance refuses the component when it is loaded.
//!
//! It loads `plugins/dist/order-py.wasm`, which `cargo xtask guests` publishes, so it is
//! ignored by a plain `cargo test`: `cargo xtask test` runs it right after `guests --test`.
//! By hand, with the guests built:
//! `cargo test -p orderpipe --test guest_instance_pool -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderpipe::backend::memory::MemoryPluginData;
use orderpipe::backend::{BackendResult, PluginCache, PluginStore};
use orderpipe::order::{Event, Order, OrderRequest};
use orderpipe::plugin::{PluginHost, PluginLimits, PluginRuntime, RuntimeSettings};
use serde_json::json;
use uuid::Uuid;

mod support;

/// How long each store write takes: every invocation holds its instance at least this long,
/// so the invocations below overlap whatever the scheduling.
const STORE_LATENCY: Duration = Duration::from_millis(50);
/// Invocations started at once.
const AT_ONCE: usize = 12;

/// The plugin's rows in memory, each write taking [`STORE_LATENCY`].
struct SlowStore(Arc<MemoryPluginData>);

#[async_trait]
impl PluginStore for SlowStore {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>> {
        PluginStore::get(self.0.as_ref(), plugin, table, key).await
    }
    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()> {
        tokio::time::sleep(STORE_LATENCY).await;
        PluginStore::put(self.0.as_ref(), plugin, table, key, value).await
    }
    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()> {
        PluginStore::delete(self.0.as_ref(), plugin, table, key).await
    }
}

fn runtime(slots: u32) -> PluginRuntime {
    PluginRuntime::with_settings(
        PluginLimits::default(),
        RuntimeSettings {
            instance_slots: slots,
            slot_wait: Duration::from_secs(60),
            ..RuntimeSettings::default()
        },
    )
    .expect("engine")
}

fn python_order() -> std::path::PathBuf {
    let path = support::plugins_dir().join("order-py.wasm");
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask guests` builds it",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs plugins/dist/order-py.wasm: run by `cargo xtask test` after `guests --test`"]
async fn a_python_plugins_invocations_wait_for_room_in_the_pool_instead_of_failing() {
    // Two slots: room for 16 core instances, one Python instance (14) at a time.
    let runtime = runtime(2);
    let plugin = Arc::new(runtime.load(&python_order()).await.expect("loads"));
    let data = Arc::new(MemoryPluginData::new());
    let host = PluginHost {
        store: Arc::new(SlowStore(data.clone())),
        cache: data as Arc<dyn PluginCache>,
        hold_store_writes: false,
        record_host_calls: false,
    };
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..AT_ONCE {
        let (plugin, host) = (plugin.clone(), host.clone());
        running.spawn(async move {
            let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
            let event = Event {
                id: Uuid::new_v4(),
                order_id: order.id,
                kind: "created".into(),
                data: json!({}),
                at_ms: 1,
            };
            plugin.decide(&order, &event, host).await
        });
    }
    let mut decided = 0;
    while let Some(done) = running.join_next().await {
        let invocation = done.expect("task").unwrap_or_else(|failure| {
            panic!("a full pool failed an invocation instead of making it wait: {failure}")
        });
        println!("decided: {:?}", invocation.decision);
        decided += 1;
    }
    assert_eq!(decided, AT_ONCE);
    assert!(
        runtime.slot_waits() >= 1,
        "with room for one Python instance, the others waited"
    );
}

#[tokio::test]
#[ignore = "needs plugins/dist/order-py.wasm: run by `cargo xtask test` after `guests --test`"]
async fn a_pool_too_small_for_one_instance_refuses_the_component_when_it_is_loaded() {
    // One slot holds 8 core instances; the Python component needs 14.
    let refused = runtime(1)
        .load(&python_order())
        .await
        .expect_err("one slot cannot hold a Python instance");
    let message = format!("{refused:#}");
    assert!(
        message.contains("needs 2 instance slots, more than the host's 1"),
        "{message}"
    );
}
