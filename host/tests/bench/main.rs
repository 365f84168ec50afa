//! The benchmark of issue 5 (not in CI): how fast orderpipe is, each figure measured beside
//! a baseline in the same run, against the real Kafka, Cassandra and Redis on loopback.
//!
//! Run: `cargo xtask bench` (servers up, plugins built, `wrk` installed, then this test).
//! It writes `target/bench/report.{json,md}` and the bench section of `BENCHMARKS.md`.
//!
//! | figure | how | baseline (same run) |
//! |---|---|---|
//! | POST /api/orders | `wrk`, 16 connections, 10 s, an API-only host | a no-op axum handler; raw rdkafka production of the same messages, 16 concurrent sends |
//! | GET, cache hit | `wrk` on 1,000 known orders, cache warmed | `redis-benchmark` GET, 16 clients, no pipelining |
//! | GET, cache miss | `wrk` asking each of thousands of orders once, on a host with an empty cache | the store's SELECT in a bare loop, 16 clients |
//! | consumer | orders/s a worker process processes from a preloaded topic | the same workflow as a native Rust handler in the same worker loop; the same rows written by a bare Cassandra loop |
//! | plugin overhead | per `decide` of the order plugin, in memory | a fresh instance per event |
//! | end to end | POST → `processed` seen by GET, at half the maximum sustained rate of one host (API + worker) | the same on the embedded backends |
//! | peak RSS | `VmHWM` of each host process | the same load in embedded mode |
//!
//! Before the first figure that uses the servers, their own loops run until their rates stop
//! climbing (`servers_warm_up`), so orderpipe and its baselines meet equally warm JVMs.
//!
//! `cargo xtask bench --against-original` runs [`against_original`] instead: orderpipe beside
//! the service it replaces (`bench/original/`, Python), in alternating rounds (`comparison`).

#[path = "../support/mod.rs"]
mod support;

mod baselines;
mod comparison;
mod drain_profile;
mod http;
mod languages;
mod original;
mod plugin;
mod report;
mod servers_warm_up;

/// The `orderpipe` binary's allocator, so that what this process measures in itself (the
/// plugin overhead) is what the host pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderpipe::backend::wiring::Backends;
use orderpipe::config::{BackendsConfig, Config, Mode};
use orderpipe::order::OrderRequest;
use orderpipe::pipeline::health::WorkerHealth;
use orderpipe::pipeline::worker;
use orderpipe::plugin::PluginHost;
use orderpipe::telemetry::Metrics;
use serde_json::Value;
use support::process::HostProcess;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use baselines::NativeOrderHandler;
use report::{Figure, Report, percentile, proc_status_kib};
use support::cpu::{self, CpuMeter};

/// Concurrent HTTP connections (and Kafka/Cassandra clients in their baselines).
const CONNECTIONS: u32 = 16;
/// Length of each saturating run.
const RUN: Duration = Duration::from_secs(10);
/// Orders preloaded for each consumer measurement.
const CONSUMER_ORDERS: u64 = 3_000;
/// One order in this many is followed until it is processed.
const TRACK_EVERY: usize = 4;
/// How often an end-to-end order is read while it is young.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How long the end-to-end runs last.
const E2E_FOR: Duration = Duration::from_secs(15);
/// Bound on a worker draining its preloaded topic.
const DRAIN_WITHIN: Duration = Duration::from_secs(300);
/// The order the consumer and end-to-end runs use: no items, so the plugin takes it
/// straight to `processed` (pricing nothing, filing it under its customer, counting it).
const PLAIN_ORDER: &str = r#"{"customer":"bench"}"#;

fn repo_root() -> PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    host.parent().unwrap_or(host).to_path_buf()
}

/// A setting for a by-hand run from the environment (`ORDERPIPE_PROFILE_SECONDS`,
/// `DRAIN_PROFILE_ORDERS`, …): `None` when unset; a value that does not parse stops the run
/// rather than measuring something other than what was asked.
fn env_setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid setting")),
    )
}

fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .expect("HTTP client")
}

/// Posts `count` orders with 16 concurrent clients and returns their ids.
async fn post_orders(http: &reqwest::Client, base: &str, body: &str, count: usize) -> Vec<Uuid> {
    futures::stream::iter(0..count)
        .map(|_| {
            let request = http
                .post(format!("{base}/api/orders"))
                .header("content-type", "application/json")
                .body(body.to_owned());
            async move {
                let answer: Value = request
                    .send()
                    .await
                    .expect("POST answered")
                    .json()
                    .await
                    .expect("JSON");
                answer["order_id"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok())
                    .unwrap_or_else(|| panic!("no order id in {answer}"))
            }
        })
        .buffer_unordered(CONNECTIONS as usize)
        .collect()
        .await
}

fn write_ids(ids: &[Uuid]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("orderpipe-bench-ids-{}", Uuid::new_v4()));
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(&path, text).expect("ids file");
    path
}

/// Publishes `count` `created` events of plain orders through the event log; their ids.
async fn preload(backends: &Backends, count: u64) -> Vec<Uuid> {
    let request: OrderRequest = serde_json::from_str(PLAIN_ORDER).expect("order");
    futures::stream::iter(0..count)
        .map(|_| {
            let (events, request) = (backends.events.clone(), request.clone());
            async move {
                let id = Uuid::new_v4();
                events
                    .publish(id, &baselines::created_message(id, &request))
                    .await
                    .expect("preload publish");
                id
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// Events per second between 10 % and 90 % of `total` (leaving out start-up and the tail),
/// reading a counter every 50 ms; returns once all `total` are done.
async fn drain_rate<F, Fut>(total: u64, mut count: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let (low, high) = (total / 10, total * 9 / 10);
    let started = Instant::now();
    let mut low_at = None;
    let mut rate = None;
    loop {
        let done = count().await;
        if low_at.is_none() && done >= low {
            low_at = Some((Instant::now(), done));
        }
        if rate.is_none() && done >= high {
            let (at, from) = low_at.expect("passed 10 % first");
            rate = Some((done - from) as f64 / at.elapsed().as_secs_f64());
        }
        if done >= total {
            return rate.expect("passed 90 % first");
        }
        assert!(
            started.elapsed() < DRAIN_WITHIN,
            "only {done} of {total} events processed in {DRAIN_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 100 orders posted and waited for until each is `processed`: the worker has its
/// partitions, connections are open and the plugin is warm before anything is measured.
async fn warm_up(http: &reqwest::Client, base: &str) {
    let ids = post_orders(http, base, PLAIN_ORDER, 100).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let view: Value = http
                .get(format!("{base}/api/orders/{id}"))
                .send()
                .await
                .expect("GET answered")
                .json()
                .await
                .expect("JSON");
            if view["status"] == "processed" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "warm-up order {id} not processed: {view}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How many orders per second one host (API and worker) takes in and processes, as a
/// closed loop: 16 clients each post an order, wait until GET shows it `processed` and post
/// the next, for `RUN`. Little's law makes this the rate at which both halves keep up,
/// reading included.
async fn sustained_rate(http: &reqwest::Client, base: &str) -> f64 {
    let started = Instant::now();
    let processed = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (http, base, processed) = (http.clone(), base.to_owned(), processed.clone());
        clients.spawn(async move {
            while started.elapsed() < RUN {
                let id = post_orders(&http, &base, PLAIN_ORDER, 1).await[0];
                wait_processed(&http, &base, id).await;
                processed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(client) = clients.join_next().await {
        client.expect("closed-loop client");
    }
    processed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Reads the order until GET shows it `processed` (see [`wait_for_status`]).
async fn wait_processed(http: &reqwest::Client, base: &str, id: Uuid) {
    wait_for_status(http, base, id, |status| status == "processed").await;
}

/// Reads the order until GET shows a status that is `done`: every 2 ms while young, then
/// every tenth of its age (at most 50 ms; 10 % resolution at worst), so a slow spell does not
/// turn into a flood of GETs.
async fn wait_for_status(http: &reqwest::Client, base: &str, id: Uuid, done: fn(&str) -> bool) {
    let at = Instant::now();
    loop {
        let view: Value = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .expect("GET answered")
            .json()
            .await
            .expect("JSON");
        if view["status"].as_str().is_some_and(done) {
            return;
        }
        assert!(
            at.elapsed() < Duration::from_secs(30),
            "order {id} stuck: {view}"
        );
        let pause = (at.elapsed() / 10).clamp(POLL_EVERY, Duration::from_millis(50));
        tokio::time::sleep(pause).await;
    }
}

/// Open-loop POSTs at `rate` per second for `E2E_FOR`; every `TRACK_EVERY`th order is then
/// read until GET shows it `processed` (every 2 ms at first, less often as it ages), so the
/// reading adds little load of its own. Returns the POST-to-visible latencies (ms, sorted).
async fn end_to_end(base: &str, rate: f64) -> Vec<f64> {
    let http = http_client();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (E2E_FOR.as_secs_f64() * rate) as usize;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (http, base) = (http.clone(), base.to_owned());
        tasks.spawn(async move {
            let at = Instant::now();
            let answer: Value = http
                .post(format!("{base}/api/orders"))
                .header("content-type", "application/json")
                .body(PLAIN_ORDER)
                .send()
                .await
                .expect("POST answered")
                .json()
                .await
                .expect("JSON");
            let id: Uuid = answer["order_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("order id");
            if n % TRACK_EVERY != 0 {
                return None;
            }
            wait_processed(&http, &base, id).await;
            Some(at.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut latencies = Vec::new();
    while let Some(latency) = tasks.join_next().await {
        latencies.extend(latency.expect("end-to-end task"));
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn step(what: &str) {
    println!("bench: {what}");
}

fn servers_config(mode: Mode) -> Config {
    let mut config = support::config("order");
    config.mode = mode;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test: run it with `cargo xtask bench`"]
async fn bench() {
    let started = Instant::now();
    let date = report::run_date();
    let mut figures = Vec::new();
    let http = http_client();

    // ---- plugin overhead (in this process, nothing else running yet) ----
    step("plugin overhead: 5,000 decisions each with fresh and with warm instances");
    let fresh = plugin::overhead(1, 5_000).await;
    let warm = plugin::overhead(1_000, 5_000).await;
    let per_instance_kib = plugin::memory_per_instance(64).await;
    figures.push(
        Figure::new("plugin overhead", "p50 per decision", fresh.p50_us, "µs")
            .against("warm instance (opt-in reuse)", warm.p50_us)
            .at_most(10.0)
            .note(format!(
                "the order plugin deciding a `created` event ({} times back to back on a \
                 runtime worker, after 200 warm-up calls): a fresh instance (the host's \
                 default, `instance_reuse` = 1: no state survives from one order to the \
                 next), the call, its store.put and cache.incr on in-memory host functions, \
                 the decision bounds and the state-machine check",
                fresh.invocations
            )),
    );
    figures.push(
        Figure::new("plugin overhead", "p99 per decision", fresh.p99_us, "µs")
            .against("warm instance (opt-in reuse)", warm.p99_us)
            .at_most(50.0),
    );
    figures.push(
        Figure::new("plugin overhead", "CPU per decision", fresh.cpu_us, "µs")
            .against("warm instance (opt-in reuse)", warm.cpu_us)
            .note("CPU time of every thread of the bench process over the same decisions"),
    );
    figures.push(
        Figure::new(
            "plugin overhead",
            "memory per live instance",
            per_instance_kib,
            "KiB",
        )
        .note("RSS growth with 64 invocations parked at once inside their store.put, / 64"),
    );

    // ---- the servers, warmed up before the first figure that uses them ----
    step("servers warm-up: Kafka and Cassandra loops until their rates stop climbing");
    let servers_warm_up =
        servers_warm_up::warm_up(&servers_config(Mode::Worker), CONNECTIONS).await;

    // ---- POST ----
    step("POST /api/orders: wrk against an API-only host, a no-op handler, raw rdkafka");
    let api_config = servers_config(Mode::Api);
    let api = HostProcess::start(&api_config, "bench-api").await;
    // Warm-up: connections, the producer, prepared statements.
    post_orders(&http, &api.base, http::ORDER_BODY, 200).await;
    let api_processes = cpu::processes(Some(("orderpipe", api.pid())));
    let meter = CpuMeter::start(&api_processes);
    let post = http::wrk_post(&api.base, CONNECTIONS, RUN);
    let post_cpu = meter.per(post.requests);
    assert_eq!(post.errors, 0, "every POST answered 201: {post:?}");
    let noop_base = http::serve_noop().await;
    let meter = CpuMeter::start(&[("no-op handler".into(), std::process::id())]);
    let noop = http::wrk_post(&noop_base, CONNECTIONS, RUN);
    let noop_cpu = meter.per(noop.requests);
    let kafka = baselines::kafka_produce(&api_config, CONNECTIONS, RUN).await;
    figures.push(
        Figure::new("POST /api/orders", "throughput", post.rate, "req/s")
            .against("no-op axum handler", noop.rate)
            .ratio_at_least(0.5)
            .note(format!(
                "wrk -t2 -c{CONNECTIONS} -d{}s, an order with two items; the host publishes \
                 to Kafka (idempotent, acks=all), then stores the order in Cassandra and \
                 answers 201. CPU per POST: {post_cpu} (no-op handler: {noop_cpu})",
                RUN.as_secs()
            )),
    );
    figures.push(
        Figure::new(
            "POST /api/orders",
            "throughput vs Kafka",
            post.rate,
            "req/s",
        )
        .against("raw rdkafka produce", kafka.rate)
        .note(format!(
            "raw rdkafka: the same `created` messages, same producer settings, \
                 {CONNECTIONS} concurrent sends each awaiting its acknowledgement"
        )),
    );
    figures.push(
        Figure::new("POST /api/orders", "p50 latency", post.p50_ms, "ms")
            .against("raw rdkafka produce", kafka.p50_ms),
    );
    figures.push(
        Figure::new("POST /api/orders", "p99 latency", post.p99_ms, "ms")
            .against("raw rdkafka produce", kafka.p99_ms),
    );
    figures.push(
        Figure::new("no-op axum handler", "p50 / p99 latency", noop.p50_ms, "ms")
            .note(format!("p99 {:.2} ms", noop.p99_ms)),
    );

    // ---- GET, cache hits ----
    step("GET, cache hits: wrk on 1,000 known orders vs redis-benchmark GET");
    let known = post_orders(&http, &api.base, http::ORDER_BODY, 1_000).await;
    for id in &known {
        let answer = http
            .get(format!("{}/api/orders/{id}", api.base))
            .send()
            .await
            .expect("GET");
        assert!(answer.status().is_success());
    }
    let known_file = write_ids(&known);
    let meter = CpuMeter::start(&api_processes);
    let hit = http::wrk_get(&api.base, &known_file, CONNECTIONS, RUN);
    let hit_cpu = meter.per(hit.requests);
    assert_eq!(hit.errors, 0, "every GET answered 200: {hit:?}");
    let redis_port: u16 = api_config
        .redis
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(16379);
    let redis_get = http::redis_benchmark_get(redis_port, CONNECTIONS, 200_000);
    figures.push(
        Figure::new(
            "GET /api/orders/<id>",
            "cache-hit throughput",
            hit.rate,
            "req/s",
        )
        .against("redis-benchmark GET", redis_get)
        .ratio_at_least(0.5)
        .note(format!(
            "wrk -c{CONNECTIONS}, random ids among 1,000 cached orders (p50 {:.2} ms, p99 \
                 {:.2} ms); redis-benchmark -c {CONNECTIONS} -P 1 -t get. CPU per GET: {hit_cpu}",
            hit.p50_ms, hit.p99_ms
        )),
    );
    let api_peak = peak_rss_mib(api.pid());
    api.stop().await;

    // ---- consumer ----
    step(&format!(
        "consumer: {CONSUMER_ORDERS} preloaded orders through a Wasm worker process"
    ));
    let worker_config = servers_config(Mode::Worker);
    let worker_backends = Backends::connect(&worker_config).await.expect("backends");
    let mut stored_ids = preload(&worker_backends, CONSUMER_ORDERS).await;
    let worker = HostProcess::start(&worker_config, "bench-worker").await;
    let meter = CpuMeter::start(&cpu::processes(Some(("orderpipe", worker.pid()))));
    let wasm_rate = drain_rate(CONSUMER_ORDERS, || async {
        support::metrics::total_at(&http, &worker.base, "orderpipe_events_processed_total")
            .await
            .unwrap_or(0.0) as u64
    })
    .await;
    let wasm_cpu = meter.per(CONSUMER_ORDERS);
    let worker_peak = peak_rss_mib(worker.pid());
    worker.stop().await;

    step("consumer: the same workflow as a native handler in the same worker loop");
    let native_config = servers_config(Mode::Worker);
    let native_backends = Backends::connect(&native_config).await.expect("backends");
    stored_ids.extend(preload(&native_backends, CONSUMER_ORDERS).await);
    let handler = Arc::new(NativeOrderHandler {
        store: native_backends.store.clone(),
        cache: native_backends.cache.clone(),
        plugin_host: PluginHost {
            store: native_backends.plugin_store.clone(),
            cache: native_backends.plugin_cache.clone(),
            hold_store_writes: false,
            record_host_calls: false,
        },
        health: WorkerHealth::new(),
        metrics: Metrics::new(),
        processed: AtomicU64::new(0),
    });
    let shutdown = CancellationToken::new();
    let meter = CpuMeter::start(&cpu::processes(Some(("bench process", std::process::id()))));
    let native_worker = tokio::spawn(worker::run(
        native_backends
            .subscribe(&native_config.kafka.topic)
            .expect("subscribe"),
        handler.clone(),
        worker::QueueBounds::of(&native_config.worker),
        native_config.worker.events_in_flight_per_partition,
        shutdown.clone(),
    ));
    let native_rate = drain_rate(CONSUMER_ORDERS, || {
        let done = handler.processed.load(Ordering::Relaxed);
        async move { done }
    })
    .await;
    let native_cpu = meter.per(CONSUMER_ORDERS);
    shutdown.cancel();
    native_worker
        .await
        .expect("native worker")
        .expect("native worker");

    step("consumer: the same rows written by a bare Cassandra loop");
    let partitions = worker_config.kafka.partitions.max(1) as u32;
    let (bare_rate, bare_ids) = baselines::cassandra_write_rows(
        native_backends.store.clone(),
        PluginHost {
            store: native_backends.plugin_store.clone(),
            cache: native_backends.plugin_cache.clone(),
            hold_store_writes: false,
            record_host_calls: false,
        },
        CONSUMER_ORDERS,
        partitions,
    )
    .await;
    figures.push(
        Figure::new(
            "consumer",
            "orders processed (Wasm plugin)",
            wasm_rate,
            "orders/s",
        )
        .against("native Rust handler, same loop", native_rate)
        .ratio_at_least(0.8)
        .note(format!(
            "{CONSUMER_ORDERS} `created` events preloaded on a {partitions}-partition topic, \
                 drained by one worker process; rate between 10 % and 90 % done; each order: \
                 load, plugin (store.put + cache.incr), conditional batch, status row, Redis \
                 view. CPU per order: {wasm_cpu}; native handler: {native_cpu}"
        )),
    );
    figures.push(
        Figure::new(
            "consumer",
            "orders processed vs bare writes",
            wasm_rate,
            "orders/s",
        )
        .against("bare Cassandra write loop", bare_rate)
        .ratio_at_least(0.6)
        .note(format!(
            "bare loop: {partitions} concurrent writers, per order the same rows (order \
                 insert, conditional batch, status row, plugin row), nothing else"
        )),
    );

    // ---- GET, cache misses ----
    step("GET, cache misses: each order once, on a host with an empty cache");
    let miss_config = servers_config(Mode::Api);
    let miss_host = HostProcess::start(&miss_config, "bench-miss").await;
    stored_ids.extend(&bare_ids);
    stored_ids.extend(&known);
    let miss_file = write_ids(&stored_ids);
    let miss = http::wrk_get_each_once(
        &miss_host.base,
        &miss_file,
        CONNECTIONS,
        Duration::from_secs(1),
    );
    assert_eq!(miss.errors, 0, "every GET answered 200: {miss:?}");
    miss_host.stop().await;
    let select = baselines::cassandra_select(
        native_backends.store.clone(),
        Arc::new(stored_ids.clone()),
        CONNECTIONS,
        Duration::from_secs(3),
    )
    .await;
    let repeats = miss.requests.saturating_sub(stored_ids.len() as u64);
    figures.push(
        Figure::new(
            "GET /api/orders/<id>",
            "cache-miss throughput",
            miss.rate,
            "req/s",
        )
        .against("bare SELECT loop", select.rate)
        .note(format!(
            "a fresh host (empty Redis prefix) asked for each of {} stored orders once, 1 s \
                 ({} requests{}); miss = Redis GET, Cassandra read, Redis SET; bare loop: the \
                 store's SELECT, {CONNECTIONS} clients, 3 s",
            stored_ids.len(),
            miss.requests,
            if repeats > 0 {
                format!(", {repeats} of them repeats, i.e. hits")
            } else {
                String::new()
            }
        )),
    );

    // ---- end to end, servers and embedded ----
    step("end to end: the maximum sustained rate of one host (API + worker), real servers");
    let all = HostProcess::start(&servers_config(Mode::All), "bench-all").await;
    warm_up(&http, &all.base).await;
    let sustained = sustained_rate(&http, &all.base).await;
    let e2e_rate = (sustained / 2.0).max(1.0);
    step(&format!(
        "end to end at {e2e_rate:.0} orders/s (half the maximum sustained rate), real servers"
    ));
    let servers_e2e = end_to_end(&all.base, e2e_rate).await;
    let all_peak = peak_rss_mib(all.pid());
    all.stop().await;

    step("end to end at the same rate, embedded backends");
    let data = tempfile::tempdir().expect("temp dir");
    let mut embedded_config = servers_config(Mode::All);
    embedded_config.backends = BackendsConfig {
        data_dir: data.path().to_path_buf(),
        ..BackendsConfig::default()
    };
    let embedded = HostProcess::start(&embedded_config, "bench-embedded").await;
    warm_up(&http, &embedded.base).await;
    let embedded_e2e = end_to_end(&embedded.base, e2e_rate).await;
    let embedded_peak = peak_rss_mib(embedded.pid());
    embedded.stop().await;

    let p = |values: &[f64], q: f64| percentile(values, q).unwrap_or(0.0);
    figures.push(
        Figure::new(
            "end to end",
            "p50 POST → processed",
            p(&servers_e2e, 0.5),
            "ms",
        )
        .against("embedded backends", p(&embedded_e2e, 0.5))
        .at_most(10.0)
        .note(format!(
            "{} of about {} orders followed (one in 4), at {e2e_rate:.0}/s, half the maximum sustained rate of one host running \
             API and worker ({sustained:.0} orders/s: {CONNECTIONS} clients for {} s, each \
             posting its next order once GET shows the last one processed), open loop; each order read every 2 ms (then every tenth of its \
             age) until GET shows `processed`",
            servers_e2e.len(),
            servers_e2e.len() * TRACK_EVERY,
            RUN.as_secs()
        )),
    );
    figures.push(
        Figure::new(
            "end to end",
            "p99 POST → processed",
            p(&servers_e2e, 0.99),
            "ms",
        )
        .against("embedded backends", p(&embedded_e2e, 0.99))
        .at_most(25.0),
    );
    figures.push(
        Figure::new(
            "peak RSS",
            "host, API + worker, end-to-end load",
            all_peak,
            "MiB",
        )
        .against("embedded backends, same load", embedded_peak)
        .note(format!(
            "VmHWM; the API-only host under the POST/GET runs peaked at {api_peak:.1} MiB, \
                 the worker-only host draining the consumer run at {worker_peak:.1} MiB"
        )),
    );

    let report = Report {
        date,
        machine: report::machine(),
        build: if cfg!(debug_assertions) {
            "dev profile (the one CI builds: orderpipe at opt-level 0, the plugin compiler and the host's hot path at 1)"
        } else {
            "release profile (`cargo xtask bench --release`)"
        }
        .into(),
        duration_s: started.elapsed().as_secs_f64(),
        servers_warm_up,
        figures,
    };
    let dir = repo_root().join("target/bench");
    let (json_path, md_path) = report.write(&dir).expect("report written");
    let markdown = report.markdown();
    println!("\n{markdown}");
    report::update_benchmarks_md(&markdown).expect("BENCHMARKS.md updated");
    println!(
        "bench: report in {} and {}; BENCHMARKS.md updated",
        json_path.display(),
        md_path.display()
    );
}

/// orderpipe against the original design (issue 19): consumer drain, POST, cache-hit GET and
/// POST → processed p50, in alternating rounds; `cargo xtask bench --against-original
/// [--release]`, which installs the original into a virtualenv first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test: run it with `cargo xtask bench --against-original`"]
async fn against_original() {
    comparison::run().await;
}

/// The `order` plugin in Rust, TypeScript and Python side by side (issue 20): component
/// size, compile time, decision cost fresh and reused, memory per instance, consumer
/// throughput; `cargo xtask bench --languages [--release]`, which builds the guests first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test: run it with `cargo xtask bench --languages`"]
async fn languages() {
    languages::run().await;
}

/// The consumer's drain repeated with a fresh worker each time, and where each drain's CPU
/// went, down to Cassandra's thread groups ([`drain_profile`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a profiling target, not a test"]
async fn drain_profile_loop() {
    drain_profile::run().await;
}

/// Back-to-back fresh-instance decisions for `ORDERPIPE_PROFILE_SECONDS` (default 10; also
/// `ORDERPIPE_PROFILE_REUSE`, `ORDERPIPE_PROFILE_RESIDENT_BYTES`, `ORDERPIPE_PROFILE_COMPONENT`:
/// a file of `plugins/dist/`, default `order.wasm`; `ORDERPIPE_PROFILE_PERF_MAP`: name the
/// guest's functions for `perf report`), for a profiler: `perf record` sees the per-event
/// path, not the compilation that dominates [`plugin_overhead`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a profiling target, not a test"]
async fn plugin_overhead_profile_loop() {
    let seconds: u64 = env_setting("ORDERPIPE_PROFILE_SECONDS").unwrap_or(10);
    let reuse: u32 = env_setting("ORDERPIPE_PROFILE_REUSE").unwrap_or(1);
    let resident: usize = env_setting("ORDERPIPE_PROFILE_RESIDENT_BYTES")
        .unwrap_or(orderpipe::plugin_limits::DEFAULT_RESIDENT_MEMORY_BYTES);
    // Leaked once per run: the loop's component outlives it anyway.
    let file: &'static str = std::env::var("ORDERPIPE_PROFILE_COMPONENT")
        .map(|file| &*file.leak())
        .unwrap_or("order.wasm");
    let figures = plugin::overhead_for(file, reuse, resident, Duration::from_secs(seconds)).await;
    println!(
        "profile loop ({file}, reuse {reuse}, resident {resident} bytes): {} decisions, p50 {:.2} µs, p99 {:.2} µs, CPU {:.2} µs",
        figures.invocations, figures.p50_us, figures.p99_us, figures.cpu_us
    );
}

/// The plugin overhead alone, in alternating rounds (A B C A B C A B C), each figure the
/// median of its rounds: fresh instances with memory kept resident (the default), fresh
/// instances whose memory goes back to the kernel after each (`resident_memory_bytes = 0`),
/// and warm instances (opt-in reuse); latency of one decision and CPU of the process per
/// decision. `cargo test --release --test bench -- --ignored plugin_overhead --exact
/// --nocapture`: seconds, where the whole bench takes minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test"]
async fn plugin_overhead() {
    const DECISIONS: usize = 20_000;
    let mut rounds: [Vec<plugin::Overhead>; 3] = Default::default();
    for _ in 0..3 {
        rounds[0].push(plugin::overhead(1, DECISIONS).await);
        rounds[1].push(plugin::overhead_with(1, DECISIONS, 0).await);
        rounds[2].push(plugin::overhead(1_000, DECISIONS).await);
    }
    let median = |rounds: &[plugin::Overhead], pick: fn(&plugin::Overhead) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let names = [
        "fresh instance, memory kept resident (default)",
        "fresh instance, memory given back (resident_memory_bytes = 0)",
        "warm instance (opt-in reuse)",
    ];
    println!(
        "plugin overhead, median of 3 alternating rounds of {DECISIONS} decisions each \
         (latency of one decision; CPU of the whole process per decision):"
    );
    for (name, rounds) in names.iter().zip(&rounds) {
        println!(
            "  {name}: p50 {:.2} µs, p99 {:.2} µs, CPU {:.2} µs",
            median(rounds, |o| o.p50_us),
            median(rounds, |o| o.p99_us),
            median(rounds, |o| o.cpu_us)
        );
    }
}
