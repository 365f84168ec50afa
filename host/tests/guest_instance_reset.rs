//! A fresh instance made by returning the last event's instance to its start (the default,
//! `plugins.reset_instances`: wasmtime patch 4, vendor/README.md) decides every event exactly
//! as a newly instantiated one, for the TypeScript (QuickJS) and Python (CPython) order
//! plugins, whose start-up fills tables, globals and hundreds of pages of memory.
//!
//! "Exactly": the same decisions, and the same fuel, once the start-up's own fuel (which a
//! new instance burns inside every invocation and a returned one never) is taken off. Any
//! state the reset missed (a cache CPython or QuickJS warmed, a moved heap pointer, a table
//! entry) changes the instructions the next event runs, so the difference would not stay
//! the same from one event to the next.
//!
//! It loads `plugins/dist/order-ts.wasm` and `order-py.wasm`, which `cargo xtask guests`
//! publishes, so it is ignored by a plain `cargo test`: `cargo xtask test` runs it right
//! after `guests --test`. By hand, with the guests built:
//! `cargo test -p orderpipe --test guest_instance_reset -- --ignored --nocapture`.

use std::time::Duration;

use orderpipe::order::{Decision, Event, LineItem, Order, OrderRequest};
use orderpipe::plugin::{
    Invocation, LoadedPlugin, PluginHost, PluginLimits, PluginRuntime, RuntimeSettings,
};
use serde_json::json;
use uuid::Uuid;

mod support;

/// Orders taken through the workflow by each plugin, one event after another.
const ORDERS: usize = 6;

async fn load(file: &str, reset: bool) -> LoadedPlugin {
    let path = support::plugins_dir().join(file);
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask guests` builds it",
        path.display()
    );
    PluginRuntime::with_settings(
        PluginLimits::default(),
        RuntimeSettings {
            reset_instances: reset,
            ..RuntimeSettings::default()
        },
    )
    .expect("engine")
    .load(&path)
    .await
    .expect("loads")
}

/// The events each order goes through, by its number: paid and shipped, paid short then in
/// full, cancelled, or rejected at creation.
fn events_for(n: usize) -> Vec<(&'static str, serde_json::Value)> {
    match n % 4 {
        0 => vec![
            ("created", json!({})),
            (
                "payment_received",
                json!({"amount": 1_000.0, "payment_id": format!("p-{n}")}),
            ),
            ("shipped", json!({})),
        ],
        1 => vec![
            ("created", json!({})),
            ("payment_received", json!({"amount": 0.5})),
            ("payment_received", json!({"amount": 1_000.0})),
            ("cancel_requested", json!({})),
        ],
        2 => vec![("created", json!({})), ("cancel_requested", json!({}))],
        _ => vec![("created", json!({}))],
    }
}

fn new_order(n: usize) -> Order {
    let qty = if n % 4 == 3 { -1 } else { 1 + n as i64 };
    let request = OrderRequest {
        items: vec![LineItem {
            sku: format!("SKU-{n}"),
            qty,
            unit_price: 2.5 + n as f64,
        }],
        ..OrderRequest::default()
    };
    // A fixed id per order number: both plugins see the same inputs (the id seeds the
    // guest's random generator).
    Order::new(Uuid::from_u128(n as u128 + 1), request, 1_000)
}

/// Every decision `plugin` makes for the orders, in turn, with its fuel.
async fn decide_all(plugin: &LoadedPlugin) -> Vec<Invocation> {
    let host = PluginHost::in_memory();
    let mut invocations = Vec::new();
    for n in 0..ORDERS {
        let mut order = new_order(n);
        for (i, (kind, data)) in events_for(n).into_iter().enumerate() {
            let event = Event {
                id: Uuid::from_u128(((n as u128) << 32) + i as u128 + 1),
                order_id: order.id,
                kind: kind.into(),
                data,
                at_ms: 2_000 + i as i64,
            };
            let invocation = tokio::time::timeout(
                Duration::from_secs(30),
                plugin.decide(&order, &event, host.clone()),
            )
            .await
            .expect("decided in time")
            .unwrap_or_else(|failure| panic!("order {n}, {kind}: {failure}"));
            if let Decision::Transition { to, attributes, .. } = &invocation.decision {
                order.status = to.clone();
                order.attributes.extend(attributes.clone());
            }
            invocations.push(invocation);
        }
    }
    invocations
}

async fn a_returned_instance_decides_as_a_new_one(file: &str) {
    let instantiated = decide_all(&load(file, false).await).await;
    let reset_plugin = load(file, true).await;
    let reset = decide_all(&reset_plugin).await;
    assert_eq!(instantiated.len(), reset.len());
    assert!(
        reset.iter().all(|i| i.instantiation.is_zero()),
        "{file}: every decision on the instance `describe` used, returned to its start"
    );
    assert!(
        instantiated.iter().all(|i| !i.instantiation.is_zero()),
        "{file}: every decision on a new instance"
    );
    let start_up = instantiated[0].fuel_used as i64 - reset[0].fuel_used as i64;
    assert!(start_up > 0, "{file}: a new instance's start-up burns fuel");
    for (n, (new, returned)) in instantiated.iter().zip(&reset).enumerate() {
        assert_eq!(new.decision, returned.decision, "{file}: decision {n}");
        assert_eq!(
            new.fuel_used as i64 - returned.fuel_used as i64,
            start_up,
            "{file}: decision {n} ran other instructions on a returned instance \
             ({} against {} fuel on a new one)",
            returned.fuel_used,
            new.fuel_used
        );
    }
    println!(
        "{file}: {} decisions alike; start-up {start_up} fuel; last decision {:?} new, {:?} returned",
        reset.len(),
        instantiated.last().map(|i| i.duration),
        reset.last().map(|i| i.duration)
    );
}

#[tokio::test]
#[ignore = "needs plugins/dist/order-py.wasm: run by `cargo xtask test` after `guests --test`"]
async fn a_python_instance_returned_to_its_start_decides_as_a_new_one() {
    a_returned_instance_decides_as_a_new_one("order-py.wasm").await;
}

#[tokio::test]
#[ignore = "needs plugins/dist/order-ts.wasm: run by `cargo xtask test` after `guests --test`"]
async fn a_typescript_instance_returned_to_its_start_decides_as_a_new_one() {
    a_returned_instance_decides_as_a_new_one("order-ts.wasm").await;
}

#[tokio::test]
async fn a_rust_instance_returned_to_its_start_decides_as_a_new_one() {
    a_returned_instance_decides_as_a_new_one("order.wasm").await;
}
