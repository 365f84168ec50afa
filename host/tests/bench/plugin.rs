//! Plugin overhead per invocation, in this process: the order plugin deciding a `created`
//! event (instantiate when needed, call, its two host calls against in-memory host
//! functions), with a fresh instance per event and with warm instances; and the memory a
//! live instance costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderpipe::backend::memory::MemoryPluginData;
use orderpipe::backend::{BackendResult, PluginCache, PluginStore};
use orderpipe::order::{Event, Order, OrderRequest};
use orderpipe::plugin::{
    GuestProfiler, LoadedPlugin, PluginHost, PluginLimits, PluginRuntime, RuntimeSettings,
};
use orderpipe::plugin_limits::DEFAULT_RESIDENT_MEMORY_BYTES;
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::report::{percentile, proc_status_kib};

pub struct Overhead {
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU time of the whole process (every thread) per decision.
    pub cpu_us: f64,
    pub invocations: usize,
}

/// The Rust `order` plugin's component in `plugins/dist/`.
const RUST_ORDER: &str = "order.wasm";

/// Whether fresh instances are made by returning the last one to its start (the host's
/// default, `plugins.reset_instances`) unless `ORDERPIPE_BENCH_RESET_INSTANCES=false` asks
/// for each to be instantiated, to compare the two.
fn reset_instances() -> bool {
    crate::env_setting("ORDERPIPE_BENCH_RESET_INSTANCES").unwrap_or(true)
}

async fn load(
    file: &str,
    reuse: u32,
    resident_memory_bytes: usize,
    reset_instances: bool,
) -> LoadedPlugin {
    let path = crate::support::plugins_dir().join(file);
    let limits = PluginLimits {
        instance_reuse: reuse,
        ..PluginLimits::default()
    };
    // `ORDERPIPE_PROFILE_PERF_MAP=1`: name the guest's functions for `perf report`.
    let profiler =
        GuestProfiler::perf_map_if(std::env::var_os("ORDERPIPE_PROFILE_PERF_MAP").is_some());
    PluginRuntime::with_settings(
        limits,
        RuntimeSettings {
            resident_memory_bytes,
            reset_instances,
            profiler,
            ..RuntimeSettings::default()
        },
    )
    .expect("engine")
    .load(&path)
    .await
    .unwrap_or_else(|e| panic!("{} loads: {e:#}", path.display()))
}

/// Seconds the host takes to compile the component `file` of `plugins/dist/` (what an
/// upload costs before its activation).
pub async fn compile_seconds(file: &str) -> f64 {
    let started = Instant::now();
    drop(load(file, 1, DEFAULT_RESIDENT_MEMORY_BYTES, true).await);
    started.elapsed().as_secs_f64()
}

fn created(order: &Order) -> Event {
    Event {
        id: Uuid::new_v4(),
        order_id: order.id,
        kind: "created".into(),
        data: json!({}),
        at_ms: 1,
    }
}

/// `invocations` sequential decisions with instances reused up to `reuse` events (1: a
/// fresh instance each time), after a short warm-up, with the host's default resident memory.
pub async fn overhead(reuse: u32, invocations: usize) -> Overhead {
    overhead_with(reuse, invocations, DEFAULT_RESIDENT_MEMORY_BYTES).await
}

/// [`overhead`] keeping `resident_memory_bytes` of each instance slot resident (0: every
/// page given back to the kernel after each instance). The decisions run back to back on a
/// runtime worker, as the pipeline's partition tasks do.
pub async fn overhead_with(
    reuse: u32,
    invocations: usize,
    resident_memory_bytes: usize,
) -> Overhead {
    tokio::spawn(decisions(
        RUST_ORDER,
        reuse,
        resident_memory_bytes,
        reset_instances(),
        Budget::Count(invocations),
    ))
    .await
    .expect("the decisions ran")
}

/// [`overhead`] of the component `file` of `plugins/dist/` (another language's `order`).
pub async fn overhead_of(file: &'static str, reuse: u32, invocations: usize) -> Overhead {
    tokio::spawn(decisions(
        file,
        reuse,
        DEFAULT_RESIDENT_MEMORY_BYTES,
        reset_instances(),
        Budget::Count(invocations),
    ))
    .await
    .expect("the decisions ran")
}

/// [`overhead_of`] with each fresh instance instantiated (`plugins.reset_instances =
/// false`) rather than the last one returned to its start.
pub async fn overhead_instantiated_of(file: &'static str, invocations: usize) -> Overhead {
    tokio::spawn(decisions(
        file,
        1,
        DEFAULT_RESIDENT_MEMORY_BYTES,
        false,
        Budget::Count(invocations),
    ))
    .await
    .expect("the decisions ran")
}

/// Back-to-back decisions of the component `file` of `plugins/dist/` for `duration` (for a
/// profiler).
pub async fn overhead_for(
    file: &'static str,
    reuse: u32,
    resident_memory_bytes: usize,
    duration: Duration,
) -> Overhead {
    tokio::spawn(decisions(
        file,
        reuse,
        resident_memory_bytes,
        reset_instances(),
        Budget::Time(duration),
    ))
    .await
    .expect("the decisions ran")
}

enum Budget {
    Count(usize),
    Time(Duration),
}

async fn decisions(
    file: &'static str,
    reuse: u32,
    resident_memory_bytes: usize,
    reset_instances: bool,
    budget: Budget,
) -> Overhead {
    const WARM_UP: usize = 200;
    let plugin = load(file, reuse, resident_memory_bytes, reset_instances).await;
    let host = PluginHost::in_memory();
    let mut durations = Vec::new();
    let mut cpu_started = process_cpu_seconds();
    let mut until = Instant::now();
    for i in 0.. {
        if i == WARM_UP {
            cpu_started = process_cpu_seconds();
            if let Budget::Time(duration) = budget {
                until = Instant::now() + duration;
            }
        }
        let done = match budget {
            Budget::Count(count) => i >= WARM_UP + count,
            Budget::Time(_) => i > WARM_UP && Instant::now() >= until,
        };
        if done {
            break;
        }
        let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
        let event = created(&order);
        let at = Instant::now();
        plugin
            .decide(&order, &event, host.clone())
            .await
            .expect("the order plugin decides");
        if i >= WARM_UP {
            durations.push(at.elapsed());
        }
    }
    let cpu = process_cpu_seconds() - cpu_started;
    durations.sort_unstable();
    let us = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
    Overhead {
        p50_us: us(percentile(&durations, 0.50)),
        p99_us: us(percentile(&durations, 0.99)),
        cpu_us: cpu * 1e6 / durations.len().max(1) as f64,
        invocations: durations.len(),
    }
}

/// CPU seconds every live thread of this process has run, at nanosecond resolution (the
/// first field of each `/proc/self/task/*/schedstat`).
fn process_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// A plugin store whose `put` waits until released, so invocations stay live inside it.
struct HeldStore {
    inner: Arc<MemoryPluginData>,
    release: Arc<Notify>,
    released: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PluginStore for HeldStore {
    async fn get(&self, plugin: &str, table: &str, key: &str) -> BackendResult<Option<String>> {
        PluginStore::get(self.inner.as_ref(), plugin, table, key).await
    }

    async fn put(&self, plugin: &str, table: &str, key: &str, value: &str) -> BackendResult<()> {
        let notified = self.release.notified();
        if !self.released.load(std::sync::atomic::Ordering::SeqCst) {
            notified.await;
        }
        PluginStore::put(self.inner.as_ref(), plugin, table, key, value).await
    }

    async fn delete(&self, plugin: &str, table: &str, key: &str) -> BackendResult<()> {
        PluginStore::delete(self.inner.as_ref(), plugin, table, key).await
    }
}

/// Resident memory per live instance: `instances` invocations held inside their first host
/// call at once (each on its own instance), RSS measured before and while they wait.
pub async fn memory_per_instance(instances: usize) -> f64 {
    memory_per_instance_of(RUST_ORDER, instances).await
}

/// [`memory_per_instance`] of the component `file` of `plugins/dist/`.
pub async fn memory_per_instance_of(file: &str, instances: usize) -> f64 {
    let plugin = Arc::new(load(file, 1, DEFAULT_RESIDENT_MEMORY_BYTES, true).await);
    let data = Arc::new(MemoryPluginData::new());
    let release = Arc::new(Notify::new());
    let store = Arc::new(HeldStore {
        inner: data.clone(),
        release: release.clone(),
        released: false.into(),
    });
    let host = PluginHost {
        store: store.clone(),
        cache: data.clone() as Arc<dyn PluginCache>,
        hold_store_writes: false,
        record_host_calls: false,
    };
    // One invocation first, so code pages and the engine's own structures are resident.
    store
        .released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let warm = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
    plugin
        .decide(&warm, &created(&warm), host.clone())
        .await
        .expect("decides");
    store
        .released
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pid = std::process::id();
    let before = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..instances {
        let (plugin, host) = (plugin.clone(), host.clone());
        tasks.spawn(async move {
            let order = Order::new(Uuid::new_v4(), OrderRequest::default(), 0);
            plugin.decide(&order, &created(&order), host).await
        });
    }
    // Well within the plugin's 2 s deadline: every invocation is parked in `put` by now.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let during = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    store
        .released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    release.notify_waiters();
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("decides once released");
    }
    during.saturating_sub(before) as f64 / instances as f64
}
