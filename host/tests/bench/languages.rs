//! The `order` plugin in each language (issue 20): Rust (`order.wasm`), TypeScript
//! (`order-ts.wasm`, jco's QuickJS backend) and Python (`order-py.wasm`, componentize-py), all from
//! `plugins/dist/` (`cargo xtask plugins` and `cargo xtask guests` build them). Per language:
//! component size, the host's compile time, one `created` decision with a fresh instance (the
//! last one returned to its start, the default, and one instantiated) and with a reused one
//! (p50/p99 and CPU), memory per live instance, and a worker's consumer
//! throughput on the real servers, in alternating rounds (Rust, TS, Python) × 3, each figure
//! the median of its rounds. `cargo xtask bench --languages [--release]`; the table goes to
//! `target/bench/languages.md` and its own section of `BENCHMARKS.md`.

use std::fmt::Write as _;

use orderpipe::backend::wiring::Backends;
use orderpipe::config::Mode;

use crate::plugin::{self, Overhead};
use crate::report::median;
use crate::step;
use crate::support::cpu::{self, CpuMeter};
use crate::support::process::HostProcess;
use crate::support::report::{Markers, machine, write_benchmarks_section};

/// A language's `order` plugin: its name in the table and its component in `plugins/dist/`.
struct Language {
    name: &'static str,
    plugin: &'static str,
    file: &'static str,
}

const LANGUAGES: [Language; 3] = [
    Language {
        name: "Rust",
        plugin: "order",
        file: "order.wasm",
    },
    Language {
        name: "TypeScript",
        plugin: "order-ts",
        file: "order-ts.wasm",
    },
    Language {
        name: "Python",
        plugin: "order-py",
        file: "order-py.wasm",
    },
];

/// Decisions per instance policy and language: enough for a p99 of a JS or Python guest
/// (0.2-1.5 ms each fresh) in seconds.
const DECISIONS: usize = 2_000;
/// Invocations held at once for the memory figure.
const LIVE_INSTANCES: usize = 16;
/// Queued orders per consumer round (the against-original bench drains 3,000 with Rust
/// only; a third of that per language keeps the three languages' rounds within minutes), unless
/// `ORDERPIPE_BENCH_LANGUAGES_ORDERS` asks for longer drains: a Rust round of 1,000 lasts about
/// a third of a second, and a Python worker's first use of each instance slot weighs on it.
const DRAIN_ORDERS: u64 = 1_000;
/// Rounds of the three languages, unless `ORDERPIPE_BENCH_LANGUAGES_ROUNDS` says otherwise.
const ROUNDS: usize = 3;

/// The environment a run was given, as a reader would type it before the command.
fn settings_changed(orders: u64, rounds: usize) -> String {
    let mut changed = String::new();
    if orders != DRAIN_ORDERS {
        changed.push_str(&format!("ORDERPIPE_BENCH_LANGUAGES_ORDERS={orders} "));
    }
    if rounds != ROUNDS {
        changed.push_str(&format!("ORDERPIPE_BENCH_LANGUAGES_ROUNDS={rounds} "));
    }
    changed
}

/// The Rust `order` plugin keeps reused instances for this many events in the "reused"
/// column (the opt-in `instance_reuse`); fresh is 1, the default.
const REUSE: u32 = 1_000;

struct Measured {
    size_kib: f64,
    compile_s: f64,
    fresh: Overhead,
    /// Fresh instances each instantiated (`plugins.reset_instances = false`).
    instantiated: Overhead,
    reused: Overhead,
    memory_kib: f64,
    drains: Vec<f64>,
    /// Per round: CPU per order of the worker and of each server during the drain.
    drain_cpu: Vec<String>,
}

const MARKERS: Markers = if cfg!(debug_assertions) {
    Markers {
        begin: "<!-- bench-languages:begin -->",
        end: "<!-- bench-languages:end -->",
    }
} else {
    Markers {
        begin: "<!-- bench-languages-release:begin -->",
        end: "<!-- bench-languages-release:end -->",
    }
};

/// One worker-only host on the servers with `language`'s order plugin draining
/// `orders` queued orders; orders per second between 10 % and 90 % done, and the
/// CPU per order of the worker and of each server over the whole drain.
async fn drain(http: &reqwest::Client, language: &Language, orders: u64) -> (f64, String) {
    // Every language's component calls itself `order`: the host loads it from a folder of
    // its own under that name.
    let dir = tempfile::tempdir().expect("plugin folder");
    std::fs::copy(
        crate::support::plugins_dir().join(language.file),
        dir.path().join("order.wasm"),
    )
    .expect("component copied");
    let plugin = language.plugin;
    let mut config = crate::servers_config(Mode::Worker);
    config.plugins.dir = dir.path().to_path_buf();
    {
        let backends = Backends::connect(&config).await.expect("backends");
        crate::preload(&backends, orders).await;
    }
    let worker = HostProcess::start(&config, &format!("languages-{plugin}")).await;
    let meter = CpuMeter::start(&cpu::processes(Some(("worker", worker.pid()))));
    let rate = crate::drain_rate(orders, || async {
        crate::support::metrics::total_at(http, &worker.base, "orderpipe_events_processed_total")
            .await
            .unwrap_or(0.0) as u64
    })
    .await;
    let drain_cpu = meter.per(orders);
    let dead_letters =
        crate::support::metrics::total_at(http, &worker.base, "orderpipe_dead_letters_total")
            .await
            .unwrap_or(0.0);
    assert_eq!(
        dead_letters, 0.0,
        "{plugin}: no event failed or was dead-lettered while draining"
    );
    worker.stop().await;
    (rate, drain_cpu)
}

pub async fn run() {
    let date = crate::report::run_date();
    let dist = crate::support::plugins_dir();
    for language in &LANGUAGES {
        assert!(
            dist.join(language.file).exists(),
            "{} is missing: `cargo xtask plugins` and `cargo xtask guests` build it",
            dist.join(language.file).display()
        );
    }

    let mut measured = Vec::new();
    for language in &LANGUAGES {
        step(&format!(
            "{}: compile, {DECISIONS} decisions fresh and reused, {LIVE_INSTANCES} live instances",
            language.name
        ));
        let size_kib = std::fs::metadata(dist.join(language.file))
            .expect("component")
            .len() as f64
            / 1024.0;
        let compile_s = plugin::compile_seconds(language.file).await;
        let fresh = plugin::overhead_of(language.file, 1, DECISIONS).await;
        let instantiated = plugin::overhead_instantiated_of(language.file, DECISIONS).await;
        let reused = plugin::overhead_of(language.file, REUSE, DECISIONS).await;
        let memory_kib = plugin::memory_per_instance_of(language.file, LIVE_INSTANCES).await;
        measured.push(Measured {
            size_kib,
            compile_s,
            fresh,
            instantiated,
            reused,
            memory_kib,
            drains: Vec::new(),
            drain_cpu: Vec::new(),
        });
    }

    let orders: u64 =
        crate::env_setting("ORDERPIPE_BENCH_LANGUAGES_ORDERS").unwrap_or(DRAIN_ORDERS);
    let rounds: usize = crate::env_setting("ORDERPIPE_BENCH_LANGUAGES_ROUNDS").unwrap_or(ROUNDS);
    let http = crate::http_client();
    for round in 1..=rounds {
        for (language, figures) in LANGUAGES.iter().zip(&mut measured) {
            step(&format!(
                "round {round} of {rounds}: a worker with the {} order plugin draining \
                 {orders} orders",
                language.name
            ));
            let (rate, drain_cpu) = drain(&http, language, orders).await;
            step(&format!("  {rate:.0} orders/s; CPU per order: {drain_cpu}"));
            figures.drains.push(rate);
            figures.drain_cpu.push(drain_cpu);
        }
    }

    let rust_drain = median(&measured[0].drains);
    let mut markdown = String::new();
    let _ = writeln!(
        markdown,
        "## The order plugin in each language (`{}cargo xtask bench --languages{}`)\n",
        settings_changed(orders, rounds),
        if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        }
    );
    let _ = writeln!(
        markdown,
        "Run {date} on {}; the host's {} profile. Decisions: the `order` plugin deciding a \
         `created` event in this process, {DECISIONS} back to back after 200 warm-up calls, \
         its store.put and cache.incr on in-memory host functions; fresh = a fresh instance per \
         event, the last event's returned to its start (the default), new = each \
         instantiated (`plugins.reset_instances = false`), reused = `instance_reuse` {REUSE} \
         (opt-in, state kept). Memory: RSS growth \
         with {LIVE_INSTANCES} invocations parked at once in their store.put, per instance. \
         Compile: the host compiling the component (what an upload costs before activation). \
         Consumer: a worker-only host on Kafka, Cassandra and Redis draining {orders} \
         queued orders (rate between 10 % and 90 %), rounds alternating Rust, TypeScript, \
         Python × {rounds}, median; the goal (issue 20) is ≥ 0.5× Rust's.\n",
        machine(),
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    );
    markdown.push_str(
        "| language | component | compile | fresh p50 / p99 | fresh CPU | new p50 / p99 | \
         reused p50 / p99 | memory per instance | consumer (rounds) | vs Rust |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (language, m) in LANGUAGES.iter().zip(&measured) {
        let drain = median(&m.drains);
        let rounds: Vec<String> = m.drains.iter().map(|r| format!("{r:.0}")).collect();
        let _ = writeln!(
            markdown,
            "| {} | {:.0} KiB | {:.2} s | {:.0} / {:.0} µs | {:.0} µs | {:.0} / {:.0} µs | \
             {:.0} / {:.0} µs | {:.0} KiB | {drain:.0} orders/s ({}) | {:.2}× |",
            language.name,
            m.size_kib,
            m.compile_s,
            m.fresh.p50_us,
            m.fresh.p99_us,
            m.fresh.cpu_us,
            m.instantiated.p50_us,
            m.instantiated.p99_us,
            m.reused.p50_us,
            m.reused.p99_us,
            m.memory_kib,
            rounds.join(", "),
            drain / rust_drain
        );
    }
    markdown.push_str("\nCPU per order while draining, per round:\n\n");
    for (language, m) in LANGUAGES.iter().zip(&measured) {
        let _ = writeln!(markdown, "- {}: {}", language.name, m.drain_cpu.join("; "));
    }
    let dir = crate::repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join("languages.md"), &markdown).expect("languages.md");
    write_benchmarks_section(&MARKERS, &markdown).expect("BENCHMARKS.md updated");
    println!("\n{markdown}");
    println!(
        "bench: report in {}/languages.md; BENCHMARKS.md updated",
        dir.display()
    );
}
