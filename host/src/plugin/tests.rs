//! The runtime against the real plugin components built by `cargo xtask plugins`, with
//! in-memory host functions (the backends have their own tests against real servers).

use std::path::PathBuf;

use serde_json::json;
use uuid::Uuid;

use super::{LoadedPlugin, PluginHost, PluginLimits, PluginRuntime};
use crate::order::{Decision, Event, LineItem, Order, OrderRequest};

fn plugin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("ORDERPIPE_PLUGINS__DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask plugins` first",
        path.display()
    );
    path
}

async fn load(name: &str) -> LoadedPlugin {
    load_with(name, PluginLimits::default()).await
}

async fn load_with(name: &str, limits: PluginLimits) -> LoadedPlugin {
    let runtime = PluginRuntime::new(limits).expect("engine");
    runtime
        .load(&plugin_path(name))
        .await
        .expect("plugin loads")
}

fn order(status: &str, items: Vec<LineItem>) -> Order {
    let mut order = Order::new(
        Uuid::new_v4(),
        OrderRequest {
            customer: Some("ada".into()),
            items,
            currency: Some("EUR".into()),
            ..Default::default()
        },
        0,
    );
    order.status = status.into();
    order
}

fn event(order: &Order, kind: &str, data: serde_json::Value) -> Event {
    Event {
        id: Uuid::new_v4(),
        order_id: order.id,
        kind: kind.into(),
        data,
        at_ms: 1,
    }
}

fn item(qty: i64, unit_price: f64) -> LineItem {
    LineItem {
        sku: "SKU-1".into(),
        qty,
        unit_price,
    }
}

#[tokio::test]
async fn order_plugin_describes_its_state_machine() {
    let plugin = load("order").await;
    assert_eq!(plugin.name, "order");
    assert!(plugin.state_machine.allows("created", "awaiting_payment"));
    assert!(plugin.state_machine.allows("paid", "shipped"));
    assert!(!plugin.state_machine.allows("shipped", "cancelled"));
}

#[tokio::test]
async fn order_plugin_prices_an_order_and_counts_host_calls() {
    let plugin = load("order").await;
    let order = order("created", vec![item(2, 5.25), item(1, 2.0)]);
    let invocation = plugin
        .decide(
            &order,
            &event(&order, "created", json!({})),
            PluginHost::in_memory(),
        )
        .await
        .expect("decides");
    match invocation.decision {
        Decision::Transition { to, attributes, .. } => {
            assert_eq!(to, "awaiting_payment");
            assert_eq!(attributes.get("total"), Some(&json!(12.5)));
        }
        other => panic!("unexpected decision {other:?}"),
    }
    assert!(invocation.fuel_used > 0);
    assert!(
        invocation.host_calls >= 1,
        "the plugin records the customer's order through the store"
    );
}

#[tokio::test]
async fn failures_name_their_cause_and_the_next_call_works() {
    let limits = PluginLimits {
        fuel: 100_000_000,
        memory_mib: 16,
        timeout_ms: 5_000,
        host_calls: 50,
    };
    let plugin = load_with("hostile", limits).await;
    let order = order("processed", vec![]);
    let cases = [
        ("trap", "trapped"),
        ("loop", "CPU budget"),
        ("grow_memory", "memory limit of 16 MiB"),
        ("illegal_transition", "is not a state"),
        ("skip_state", "not an allowed transition"),
    ];
    for (kind, expected) in cases {
        let failure = plugin
            .decide(
                &order,
                &event(&order, kind, json!({})),
                PluginHost::in_memory(),
            )
            .await
            .expect_err(kind);
        assert!(
            failure.reason.contains(expected),
            "{kind}: {}",
            failure.reason
        );
        assert!(failure.backend_unavailable.is_none());
    }
    let trap = plugin
        .decide(
            &order,
            &event(&order, "trap", json!({})),
            PluginHost::in_memory(),
        )
        .await
        .expect_err("trap");
    assert!(
        trap.reason.contains("hostile plugin trapped on purpose"),
        "stderr is kept: {}",
        trap.reason
    );

    let fresh = self::order("created", vec![]);
    let ok = plugin
        .decide(
            &fresh,
            &event(&fresh, "created", json!({})),
            PluginHost::in_memory(),
        )
        .await
        .expect("a fresh instance after failures");
    assert!(matches!(ok.decision, Decision::Transition { ref to, .. } if to == "processed"));
}

#[tokio::test]
async fn a_plugin_cannot_reach_files_environment_or_network() {
    let plugin = load("hostile").await;
    let order = order("processed", vec![]);
    for kind in ["read_file", "read_env", "open_socket"] {
        let invocation = plugin
            .decide(
                &order,
                &event(&order, kind, json!({"port": 19042})),
                PluginHost::in_memory(),
            )
            .await
            .expect(kind);
        match invocation.decision {
            Decision::Reject { reason } => {
                assert!(reason.contains("denied"), "{kind}: {reason}");
                assert!(!reason.contains("ESCAPED"), "{kind}: {reason}");
            }
            other => panic!("{kind} escaped the sandbox: {other:?}"),
        }
    }
}

#[tokio::test]
async fn host_calls_beyond_the_quota_are_refused() {
    let limits = PluginLimits {
        host_calls: 10,
        ..PluginLimits::default()
    };
    let plugin = load_with("hostile", limits).await;
    let order = order("processed", vec![]);
    let invocation = plugin
        .decide(
            &order,
            &event(&order, "host_call_flood", json!({})),
            PluginHost::in_memory(),
        )
        .await
        .expect("decides");
    assert_eq!(invocation.host_calls, 10);
    match invocation.decision {
        Decision::Reject { reason } => assert!(reason.contains("quota"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused() {
    let runtime = PluginRuntime::new(PluginLimits::default()).unwrap();
    let error = runtime.load_bytes(b"\0asm not really").await.unwrap_err();
    assert!(
        format!("{error:#}").contains("not a valid WebAssembly component"),
        "{error:#}"
    );
}

#[tokio::test]
async fn warm_instances_are_reused_up_to_the_limit_and_never_after_a_failure() {
    let runtime = PluginRuntime::new(PluginLimits::default())
        .expect("engine")
        .with_instance_reuse(3);
    let plugin = runtime
        .load(&plugin_path("hostile"))
        .await
        .expect("plugin loads");
    // Loading asked the plugin to describe itself on an instance it keeps; start afresh.
    assert_eq!(
        plugin.warm_instances(),
        1,
        "the describe() instance is kept"
    );
    plugin.discard_warm_instances();
    let decide = |kind: &'static str| {
        let plugin = plugin.clone();
        async move {
            let order = order("created", vec![]);
            plugin
                .decide(
                    &order,
                    &event(&order, kind, json!({})),
                    PluginHost::in_memory(),
                )
                .await
        }
    };
    decide("created").await.expect("first call");
    assert_eq!(plugin.warm_instances(), 1, "kept after a normal return");
    decide("created").await.expect("second call, same instance");
    assert_eq!(plugin.warm_instances(), 1);
    decide("created").await.expect("third call, same instance");
    assert_eq!(plugin.warm_instances(), 0, "retired after 3 calls");

    decide("created").await.expect("a fresh instance");
    assert_eq!(plugin.warm_instances(), 1);
    let trap = decide("trap").await.expect_err("trap");
    assert!(
        trap.reason.contains("trapped on purpose"),
        "{}",
        trap.reason
    );
    assert_eq!(plugin.warm_instances(), 0, "a trapped instance is dropped");
    decide("loop").await.expect_err("out of fuel");
    assert_eq!(
        plugin.warm_instances(),
        0,
        "an instance out of fuel is dropped"
    );
    decide("created")
        .await
        .expect("a fresh instance after failures");
    assert_eq!(plugin.warm_instances(), 1);

    plugin.discard_warm_instances();
    assert_eq!(plugin.warm_instances(), 0);
}
