//! A profiling target for issue 19 (not a benchmark): the same drain as the consumer figure,
//! repeated with a fresh worker process each time, with where each drain's time and CPU went:
//! the worker's mean time per event in each step (`worker_event_step_seconds`), the CPU per
//! order of each process, and inside Cassandra per thread group (`/proc/<pid>/task/*`), so a
//! slow drain can be told from a fast one by what Cassandra was doing (flushing, compacting,
//! collecting garbage, syncing its commit log).
//!
//! `cargo test --release --test bench -- --ignored drain_profile_loop --exact --nocapture`;
//! `DRAIN_PROFILE_ORDERS` (default 10,000), `DRAIN_PROFILE_ROUNDS` (default 6) and
//! `DRAIN_PROFILE_VARIANTS`: worker settings taken in turn, round after round, each
//! `BATCHESxEVENTS` (`cassandra.batches_in_flight` × `worker.events_in_flight_per_partition`),
//! e.g. `4x16,8x16,8x32`; default the configured ones; `DRAIN_PROFILE_INSTANCE_SLOTS`: the
//! worker's `plugins.instance_slots` (how many plugin instances may be live at once);
//! `DRAIN_PROFILE_RESIDENT_BYTES`: its `plugins.resident_memory_bytes`;
//! `DRAIN_PROFILE_INSTANCE_REUSE`: its `plugins.limits.instance_reuse` (events per instance);
//! `DRAIN_PROFILE_RESET_INSTANCES` (`true` or `false`): its `plugins.reset_instances` (a fresh
//! instance by returning the last one to its start, or by instantiating);
//! `DRAIN_PROFILE_PERF_MAP` (any value): its `plugins.perf_map`, so `perf record -p` of the
//! worker names the plugin's functions. The worker loads
//! `plugins/dist/order.wasm`: copy another language's component there to profile it (and
//! `cargo xtask plugins` to put the Rust one back).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use orderpipe::backend::wiring::Backends;
use orderpipe::config::Mode;

use crate::support::cpu::{self, CpuMeter};
use crate::support::metrics::{self, WORKER_STEP_SECONDS, WORKER_STEPS};
use crate::support::process::HostProcess;

/// Thread groups printed per drain, busiest first.
const TOP_GROUPS: usize = 8;

/// Each thread of `pid`: its name and CPU seconds so far. Cassandra's shared-pool workers
/// rename themselves after the stage they serve, so a thread's time is counted per thread
/// and grouped by the name it has at the second reading.
fn threads(pid: u32) -> HashMap<u32, (String, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (name, seconds) = cpu::stat_of(&stat)?;
            Some((tid, (name.to_owned(), seconds)))
        })
        .collect()
}

/// "MutationStage 1.2 s, …": the busiest thread groups (names without their numbers) between
/// two readings.
fn busiest(before: &HashMap<u32, (String, f64)>, after: &HashMap<u32, (String, f64)>) -> String {
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    for (tid, (name, seconds)) in after {
        let earlier = before.get(tid).map_or(0.0, |(_, seconds)| *seconds);
        let group = name
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == ':' || c == '-' || c == '#')
            .to_owned();
        *groups.entry(group).or_insert(0.0) += (seconds - earlier).max(0.0);
    }
    let mut used: Vec<(f64, String)> = groups
        .into_iter()
        .filter(|(_, seconds)| *seconds > 0.0)
        .map(|(group, seconds)| (seconds, group))
        .collect();
    used.sort_by(|a, b| b.0.total_cmp(&a.0));
    used.iter()
        .take(TOP_GROUPS)
        .map(|(seconds, group)| format!("{group} {seconds:.2} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The worker's mean time per event in each step (`worker_event_step_seconds`), from its
/// `/metrics` at the end of a drain.
async fn step_means(worker: &HostProcess) -> String {
    let mut means = Vec::new();
    for step in WORKER_STEPS {
        let sample = |part: &str| format!("{WORKER_STEP_SECONDS}_{part}{{step=\"{step}\"}}");
        let count = worker.metric(&sample("count")).await;
        if count > 0.0 {
            let sum = worker.metric(&sample("sum")).await;
            means.push(format!("{step} {:.2} ms", sum * 1000.0 / count));
        }
    }
    means.join(", ")
}

/// How many fresh instances the worker's plugin started for how many decisions, and their
/// mean start-up and decision times (`plugin_instantiation_seconds`, `plugin_duration_seconds`).
async fn plugin_instances(http: &reqwest::Client, worker: &HostProcess) -> String {
    let total = |name: &'static str| async move {
        metrics::total_at(http, &worker.base, name)
            .await
            .unwrap_or(0.0)
    };
    let started = total("orderpipe_plugin_instantiation_seconds_count").await;
    let starting = total("orderpipe_plugin_instantiation_seconds_sum").await;
    let invoked = total("orderpipe_plugin_duration_seconds_count").await;
    let invoking = total("orderpipe_plugin_duration_seconds_sum").await;
    format!(
        "{started:.0} instances started for {invoked:.0} decisions, start-up {:.0} µs, \
         decision {:.0} µs (means, waits included)",
        starting / started.max(1.0) * 1e6,
        invoking / invoked.max(1.0) * 1e6
    )
}

/// `cassandra.batches_in_flight` and `worker.events_in_flight_per_partition` of each variant.
fn variants(default: (usize, usize)) -> Vec<(usize, usize)> {
    let parsed: Vec<(usize, usize)> = std::env::var("DRAIN_PROFILE_VARIANTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|variant| {
            let (batches, events) = variant.trim().split_once('x')?;
            Some((batches.parse().ok()?, events.parse().ok()?))
        })
        .collect();
    if parsed.is_empty() {
        vec![default]
    } else {
        parsed
    }
}

pub async fn run() {
    let orders: u64 = crate::env_setting("DRAIN_PROFILE_ORDERS").unwrap_or(10_000);
    let rounds: u64 = crate::env_setting("DRAIN_PROFILE_ROUNDS").unwrap_or(6);
    let http = crate::http_client();
    let config = crate::servers_config(Mode::Worker);
    let variants = variants((
        config.cassandra.batches_in_flight,
        config.worker.events_in_flight_per_partition,
    ));
    let cassandra = cpu::processes(None)
        .into_iter()
        .find(|(name, _)| name == "cassandra")
        .map(|(_, pid)| pid);
    for round in 1..=rounds {
        {
            let backends = Backends::connect(&config).await.expect("backends");
            crate::preload(&backends, orders).await;
        }
        let (batches, events) = variants[(round as usize - 1) % variants.len()];
        let mut config = config.clone();
        config.cassandra.batches_in_flight = batches;
        config.worker.events_in_flight_per_partition = events;
        if let Some(slots) = crate::env_setting("DRAIN_PROFILE_INSTANCE_SLOTS") {
            config.plugins.instance_slots = slots;
        }
        if let Some(bytes) = crate::env_setting("DRAIN_PROFILE_RESIDENT_BYTES") {
            config.plugins.resident_memory_bytes = bytes;
        }
        if let Some(reuse) = crate::env_setting("DRAIN_PROFILE_INSTANCE_REUSE") {
            config.plugins.limits.instance_reuse = reuse;
        }
        if let Some(reset) = crate::env_setting("DRAIN_PROFILE_RESET_INSTANCES") {
            config.plugins.reset_instances = reset;
        }
        config.plugins.perf_map = std::env::var_os("DRAIN_PROFILE_PERF_MAP").is_some();
        let worker = HostProcess::start(&config, "drain-profile-worker").await;
        let meter = CpuMeter::start(&cpu::processes(Some(("worker", worker.pid()))));
        let threads_before = cassandra.map(threads).unwrap_or_default();
        let started = Instant::now();
        let rate = crate::drain_rate(orders, || async {
            metrics::total_at(&http, &worker.base, "orderpipe_events_processed_total")
                .await
                .unwrap_or(0.0) as u64
        })
        .await;
        let took = started.elapsed().as_secs_f64();
        let threads_after = cassandra.map(threads).unwrap_or_default();
        println!(
            "drain {round} ({batches}x{events}): {rate:.0} orders/s ({orders} in {took:.1} s); per order: {}\n  \
             worker steps, mean per event: {}\n  plugin: {}\n  cassandra threads: {}",
            meter.per(orders),
            step_means(&worker).await,
            plugin_instances(&http, &worker).await,
            busiest(&threads_before, &threads_after)
        );
        worker.stop().await;
    }
}
