//! The runtime against the real plugin components built by `cargo xtask plugins`, with
//! in-memory host functions (the backends have their own tests against real servers).

use std::path::PathBuf;

use serde_json::json;
use uuid::Uuid;

use super::{
    InstanceOrigin, Invocation, LoadedPlugin, PluginHost, PluginLimits, PluginRuntime,
    RuntimeSettings,
};
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

/// `plugin`'s decision on `order`'s `created` event, with in-memory host functions.
async fn decide_created(plugin: &LoadedPlugin, order: &Order) -> Invocation {
    plugin
        .decide(
            order,
            &event(order, "created", json!({})),
            PluginHost::in_memory(),
        )
        .await
        .expect("decides")
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
    let invocation = decide_created(&plugin, &order).await;
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
        ..PluginLimits::default()
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

/// The Rust SDK's allocator bumps through the 256 KiB initial heap, then grows the memory
/// (`plugins/sdk/src/heap.rs`): an order that needs several times that, lifted into the guest
/// and walked, is decided as a small one is, and so is the next order on a fresh instance.
#[tokio::test]
async fn an_order_larger_than_the_plugins_initial_heap_is_decided_like_a_small_one() {
    let plugin = load("order").await;
    let items = (0..1_000)
        .map(|i| LineItem {
            sku: format!("SKU-{i}-{}", "x".repeat(300)),
            qty: 2,
            unit_price: 0.75,
        })
        .collect();
    let mut large = order("created", items);
    large
        .attributes
        .insert("note".into(), json!("y".repeat(600 * 1024)));
    let small = order("created", vec![item(2, 5.25), item(1, 2.0)]);
    for (order, total) in [(&large, 1500.0), (&small, 12.5), (&large, 1500.0)] {
        let invocation = decide_created(&plugin, order).await;
        match invocation.decision {
            Decision::Transition { to, attributes, .. } => {
                assert_eq!(to, "awaiting_payment");
                assert_eq!(attributes.get("total"), Some(&json!(total)));
            }
            other => panic!("unexpected decision {other:?}"),
        }
        // An instance whose memory grew cannot be returned to its start in place: it is
        // dropped, and the next event gets a new one.
        let kept = if std::ptr::eq(order, &large) { 0 } else { 1 };
        assert_eq!(plugin.warm_instances(), kept);
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
    let runtime = PluginRuntime::new(PluginLimits {
        instance_reuse: 3,
        ..PluginLimits::default()
    })
    .expect("engine");
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

/// The reason of a decision that did not transition, or of a failure.
fn reason_of(trace: &super::Trace) -> String {
    match &trace.outcome {
        Ok(Decision::NoChange { reason }) | Ok(Decision::Reject { reason }) => reason.clone(),
        Ok(Decision::Transition { reason, .. }) => format!("transitioned: {reason}"),
        Err(failure) => format!("failed: {}", failure.reason),
    }
}

/// The reason `plugin` gives for `event` on `order`, with in-memory host functions.
async fn reason_for(plugin: &LoadedPlugin, order: &Order, event: Event) -> String {
    reason_of(
        &plugin
            .decide_traced(order, &event, PluginHost::in_memory())
            .await,
    )
}

/// What `plugin` makes of one `kind` event (with `data`) on a fresh `processed` order.
async fn trace_of(plugin: &LoadedPlugin, kind: &str, data: serde_json::Value) -> super::Trace {
    let order = order("processed", vec![]);
    plugin
        .decide_traced(&order, &event(&order, kind, data), PluginHost::in_memory())
        .await
}

#[tokio::test]
async fn time_and_randomness_are_the_events_not_the_hosts() {
    let plugin = load("hostile").await;
    let order = order("processed", vec![]);
    let mut first = event(&order, "ambient", json!({}));
    first.at_ms = 1_700_000_000_123;
    let decide = |event: Event| reason_for(&plugin, &order, event);
    let once = decide(first.clone()).await;
    assert!(
        once.starts_with("ambient: wall_is_event_time=true wall_ms=1700000000123"),
        "{once}"
    );
    assert_eq!(
        decide(first.clone()).await,
        once,
        "deciding the same event again sees the same clocks and random numbers"
    );
    let other = Event {
        id: Uuid::new_v4(),
        ..first
    };
    let random = |reason: &str| reason.split(" random=").nth(1).map(str::to_owned);
    assert_ne!(
        random(&decide(other).await),
        random(&once),
        "another event draws other random numbers"
    );
}

#[tokio::test]
async fn a_reused_instance_sees_each_events_time_and_randomness_as_a_fresh_one_would() {
    let fresh = load("hostile").await;
    let reused = load_reused_hostile().await;
    let order = order("processed", vec![]);
    let events: Vec<Event> = (0..3)
        .map(|n| {
            let mut event = event(&order, "ambient", json!({}));
            event.at_ms = 1_700_000_000_000 + n;
            event
        })
        .collect();
    // One reused instance decides the three events, then the first again; each answer is
    // what a fresh instance answers for that event (its clocks and its random draws).
    for event in events.iter().chain(&events[..1]) {
        let expected = reason_for(&fresh, &order, event.clone()).await;
        assert!(expected.contains(" random="), "{expected}");
        assert_eq!(reason_for(&reused, &order, event.clone()).await, expected);
    }
}

/// What `plugin` makes of one `kind` event (with `data`) on each of `orders` new orders, one
/// after the other.
async fn reasons_over_orders(
    plugin: &LoadedPlugin,
    kind: &str,
    data: serde_json::Value,
    orders: usize,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for _ in 0..orders {
        let order = order("processed", vec![]);
        let trace = plugin
            .decide_traced(
                &order,
                &event(&order, kind, data.clone()),
                PluginHost::in_memory(),
            )
            .await;
        reasons.push(reason_of(&trace));
    }
    reasons
}

/// `name` loaded by a runtime of its own with these limits and settings.
async fn load_under(name: &str, limits: PluginLimits, settings: RuntimeSettings) -> LoadedPlugin {
    PluginRuntime::with_settings(limits, settings)
        .expect("engine")
        .load(&plugin_path(name))
        .await
        .expect("plugin loads")
}

/// `name` under the default limits (a fresh instance per event), the fresh instance made
/// by returning the last one to its start (`reset`, the default) or by instantiating.
async fn load_fresh(name: &str, reset: bool) -> LoadedPlugin {
    let settings = RuntimeSettings {
        reset_instances: reset,
        ..RuntimeSettings::default()
    };
    load_under(name, PluginLimits::default(), settings).await
}

/// Asserts that `plugin`'s fresh instances came the way `reset` says: one kept idle,
/// returned to its start, or none kept at all.
fn assert_fresh_instances_were(plugin: &LoadedPlugin, reset: bool) {
    let idle = plugin.warm_instances();
    if reset {
        assert_eq!(
            idle, 1,
            "the last event's instance, returned to its start, is kept"
        );
    } else {
        assert_eq!(idle, 0, "a new instance for every event, none kept");
    }
}

/// The hostile plugin opted into reuse: one instance decides up to 10 events.
async fn load_reused_hostile() -> LoadedPlugin {
    load_with(
        "hostile",
        PluginLimits {
            instance_reuse: 10,
            ..PluginLimits::default()
        },
    )
    .await
}

#[tokio::test]
async fn no_state_survives_from_one_order_to_the_next_unless_reuse_is_opted_into() {
    for reset in [true, false] {
        let fresh = load_fresh("hostile", reset).await;
        for reason in reasons_over_orders(&fresh, "remember", json!({}), 3).await {
            assert_eq!(reason, "remember: previous=none", "reset: {reset}");
        }
        assert_fresh_instances_were(&fresh, reset);
    }
    // What reuse means, said by a test: an opted-in plugin's globals reach the next order.
    let reused = load_reused_hostile().await;
    let reasons = reasons_over_orders(&reused, "remember", json!({}), 2).await;
    assert_eq!(reasons[0], "remember: previous=none");
    assert!(reasons[1].starts_with("ESCAPED"), "{reasons:?}");
}

/// The pooling allocator resets a slot's memory page by page, the dirty pages found with the
/// kernel's `PAGEMAP_SCAN` (vendor/README.md): a guest that dirties hundreds of scattered
/// pages, within the pages kept resident (4 MiB) and past them, leaves none of them to the
/// next order. The same holds for an instance returned to its start in place (the default)
/// as for a new one.
#[tokio::test]
async fn no_memory_survives_from_one_order_to_the_next_however_scattered_its_writes() {
    for reset in [true, false] {
        let fresh = load_fresh("hostile", reset).await;
        // 400 disjoint dirty pages (1.6 MiB): more regions than one scan returns; 1,200
        // (4.7 MiB): past the pages kept resident too.
        for pages in [400, 1_200, 400, 1_200] {
            let reasons =
                reasons_over_orders(&fresh, "scatter", json!({ "pages": pages }), 1).await;
            assert_eq!(
                reasons[0],
                format!("scatter: marked {pages} pages, found none marked"),
                "reset: {reset}"
            );
        }
        // 100 pages of the component's data image (mapped copy-on-write), one order after
        // another.
        for reason in reasons_over_orders(&fresh, "scatter_image", json!({}), 3).await {
            assert_eq!(
                reason, "scatter_image: marked 100 pages, found none marked",
                "reset: {reset}"
            );
        }
        assert_fresh_instances_were(&fresh, reset);
    }
    // The test can tell: an opted-in reused instance finds the previous order's marks.
    let reused = load_reused_hostile().await;
    let reasons = reasons_over_orders(&reused, "scatter", json!({ "pages": 400 }), 2).await;
    assert_eq!(
        reasons[1],
        "ESCAPED: scatter: 400 of 400 pages marked by an earlier order"
    );
    let reasons = reasons_over_orders(&reused, "scatter_image", json!({}), 2).await;
    assert_eq!(
        reasons[1],
        "ESCAPED: scatter_image: 100 of 100 pages marked by an earlier order"
    );
}

#[tokio::test]
async fn a_decision_over_its_bounds_fails_naming_the_bound() {
    let plugin = load("hostile").await;
    let trace = trace_of(&plugin, "huge_attribute", json!({"bytes": 200_000})).await;
    let reason = reason_of(&trace);
    assert!(
        reason.contains("attribute_value_bytes limit of 16384"),
        "{reason}"
    );
    let roomy = plugin.with_limits(PluginLimits {
        attribute_value_bytes: 1 << 20,
        ..PluginLimits::default()
    });
    let trace = trace_of(&roomy, "huge_attribute", json!({"bytes": 200_000})).await;
    let reason = reason_of(&trace);
    assert!(reason.contains("decision_bytes limit of 65536"), "{reason}");
}

#[tokio::test]
async fn a_write_over_its_bound_fails_the_event_whatever_the_plugin_decides() {
    let plugin = load("hostile").await;
    let trace = trace_of(&plugin, "huge_write", json!({"bytes": 100_000})).await;
    let reason = reason_of(&trace);
    assert!(reason.contains("write_bytes limit of 65536"), "{reason}");
    assert!(reason.starts_with("failed:"), "{reason}");
}

#[tokio::test]
async fn a_log_flood_is_cut_at_the_budget_and_counted() {
    let plugin = load("hostile").await;
    let trace = trace_of(&plugin, "log_flood", json!({"lines": 1_000, "bytes": 100})).await;
    assert_eq!(reason_of(&trace), "log_flood: done");
    let limits = PluginLimits::default();
    let kept = (limits.log_lines as usize).min(limits.log_bytes as usize / 100) as u32;
    assert_eq!(trace.log_lines_dropped, 1_000 - kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_wait_for_a_free_instance_slot_instead_of_failing() {
    let runtime = PluginRuntime::with_settings(
        PluginLimits::default(),
        RuntimeSettings {
            instance_slots: 1,
            slot_wait: std::time::Duration::from_secs(30),
            ..RuntimeSettings::default()
        },
    )
    .expect("engine");
    let plugin = runtime
        .load(&plugin_path("hostile"))
        .await
        .expect("plugin loads");
    // Many short decisions on two threads: a slot handed on before wasmtime freed its own
    // would fail one of them with "maximum concurrent limit … reached".
    let mut running = Vec::new();
    for n in 0..32 {
        let plugin = plugin.clone();
        running.push(tokio::spawn(async move {
            let order = order("processed", vec![]);
            let iterations = if n % 4 == 0 { 2_000_000 } else { 1_000 };
            let event = event(&order, "spin", json!({"iterations": iterations}));
            plugin
                .decide_traced(&order, &event, PluginHost::in_memory())
                .await
        }));
    }
    for task in running {
        let trace = task.await.expect("task");
        let reason = reason_of(&trace);
        assert!(reason.starts_with("spin: done"), "{reason}");
    }
    assert!(
        runtime.slot_waits() >= 1,
        "someone had to wait for the one slot"
    );
}

#[tokio::test]
async fn a_host_with_perf_map_names_the_plugins_compiled_functions_for_perf() {
    let map = PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    // The guest's own functions (`wasm[0]::function[82]`, followed by the function's name when
    // the component keeps its name section; the Rust plugins' release profile strips it).
    let named = |text: &str| text.lines().any(|line| line.contains("::function["));
    let before = std::fs::read_to_string(&map).unwrap_or_default();
    let runtime = PluginRuntime::with_settings(
        PluginLimits::default(),
        RuntimeSettings {
            instance_slots: 4,
            profiler: super::GuestProfiler::PerfMap,
            ..RuntimeSettings::default()
        },
    )
    .expect("engine");
    runtime
        .load(&plugin_path("order"))
        .await
        .expect("plugin loads");
    let after = std::fs::read_to_string(&map).expect("wasmtime wrote the perf map");
    let added = &after[before.len().min(after.len())..];
    assert!(
        named(added),
        "no guest function among the {} lines the host added to {}",
        added.lines().count(),
        map.display()
    );
    // Every line is what `perf report` reads: start address, size (hex), name.
    for line in added.lines() {
        let mut fields = line.splitn(3, ' ');
        let (start, size) = (fields.next().unwrap(), fields.next().unwrap_or(""));
        let hex = |text: &str| u64::from_str_radix(text.trim_start_matches("0x"), 16).is_ok();
        assert!(hex(start) && hex(size), "not a perf map line: {line}");
        assert!(fields.next().is_some_and(|name| !name.is_empty()), "{line}");
    }
    // Only this test's runtime writes the file; the process's own stays out of /tmp.
    if before.is_empty() {
        let _ = std::fs::remove_file(&map);
    }
}

#[tokio::test]
async fn an_invocation_reports_its_instance_and_the_time_a_new_one_took_to_start() {
    let instantiated = load_fresh("order", false).await;
    let order = order("created", vec![item(1, 2.0)]);
    for _ in 0..2 {
        let invocation = decide_created(&instantiated, &order).await;
        assert_eq!(invocation.instance, InstanceOrigin::New);
        assert!(
            !invocation.instantiation.is_zero() && invocation.instantiation < invocation.duration,
            "instantiation {:?} of {:?}",
            invocation.instantiation,
            invocation.duration
        );
    }

    // Returned to its start instead (the default): only the instance `describe` used was
    // ever instantiated.
    let reset = load_fresh("order", true).await;
    for _ in 0..2 {
        let invocation = decide_created(&reset, &order).await;
        assert_eq!(invocation.instance, InstanceOrigin::Returned);
        assert_eq!(invocation.instantiation, std::time::Duration::ZERO);
    }

    let reused = load_with(
        "order",
        PluginLimits {
            instance_reuse: 10,
            ..PluginLimits::default()
        },
    )
    .await;
    // The first decision may take the instance `describe` used while loading; the second
    // takes the first's.
    decide_created(&reused, &order).await;
    let second = decide_created(&reused, &order).await;
    assert_eq!(second.instance, InstanceOrigin::Reused);
    assert_eq!(second.instantiation, std::time::Duration::ZERO);
}

/// Instances returned to their start may fill the pool: any invocation short of room drops
/// them (see `invocations_wait_for_a_free_instance_slot_instead_of_failing`).
#[tokio::test]
async fn a_version_may_keep_as_many_instances_returned_to_their_start_as_the_slots_hold() {
    for (slots, most) in [(128, 128), (8, 8), (1, 1)] {
        let settings = RuntimeSettings {
            instance_slots: slots,
            ..RuntimeSettings::default()
        };
        let plugin = load_under("order", PluginLimits::default(), settings).await;
        assert_eq!(plugin.most_warm_instances(), most, "{slots} slots");
    }
}

#[tokio::test]
async fn a_version_keeps_at_most_a_quarter_of_the_slots_as_idle_warm_instances() {
    for (slots, most) in [(128, 32), (8, 2), (2, 1)] {
        let limits = PluginLimits {
            instance_reuse: 10,
            ..PluginLimits::default()
        };
        let settings = RuntimeSettings {
            instance_slots: slots,
            ..RuntimeSettings::default()
        };
        let plugin = load_under("order", limits, settings).await;
        assert_eq!(plugin.most_warm_instances(), most, "{slots} slots");
    }
}
