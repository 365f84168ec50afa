//! orderpipe beside the service it replaces (issue 19): the original design, written from its
//! README in `bench/original/` and run by `original`, against orderpipe's host, on the same
//! Kafka, Cassandra and Redis, in alternating rounds (original, orderpipe, original, …), each
//! figure the median of its rounds, so drift in the shared servers falls on both sides.
//!
//! Each round of each side deploys it afresh (its own topic, group and cache prefix) the way
//! the original runs: one API (gunicorn -w 4 / an API-only host) and one consumer process (the
//! kafka-python consumer / a worker-only host). In that round:
//!
//! 1. consumer: `DRAIN_ORDERS` orders without items queued on the topic, then the consumer
//!    started; orders fully processed per second between 10 % and 90 % done;
//! 2. POST → processed visible, one order at a time: `ONE_AT_A_TIME` orders, each posted once
//!    GET showed the last one decided; p50;
//! 3. GET, cache hit: `KNOWN_ORDERS` orders posted and waited for until decided (the consumer
//!    wrote their views into Redis), then `wrk` on them;
//! 4. POST: the consumer stopped, `wrk` posting orders with two items.
//!
//! The report goes to `target/bench/against-original.{json,md}` and its own section of
//! `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderpipe::backend::wiring::Backends;
use orderpipe::config::Mode;
use serde::Serialize;

use crate::original::Original;
use crate::report::median;
use crate::servers_warm_up::{self, WarmUp};
use crate::support::cpu::{self, CpuMeter};
use crate::support::process::HostProcess;
use crate::support::report::{Markers, machine, write_benchmarks_section};
use crate::{CONNECTIONS, PLAIN_ORDER, http, step};

/// Rounds of each side.
const ROUNDS: usize = 3;
/// Orders queued for each consumer measurement (at 5,000 the load phase took 394 s on a
/// loaded 2026-12-03, orderpipe draining at 150/s; 3,000 as the main bench, to stay in 5 min).
const DRAIN_ORDERS: u64 = 3_000;
/// Orders followed one at a time for the POST → processed latency.
const ONE_AT_A_TIME: usize = 100;
/// Orders whose cached views the GET run reads.
const KNOWN_ORDERS: usize = 1_000;
/// Length of each `wrk` run.
const WRK_FOR: Duration = Duration::from_secs(5);

/// What one round measured of one side.
#[derive(Debug, Clone, Serialize)]
struct Round {
    drain: f64,
    post: f64,
    get_hit: f64,
    e2e_p50_ms: f64,
    /// CPU per drained order: the consumer process and each server.
    drain_cpu: String,
}

/// One line of the table: both sides' rounds, their medians and the goal.
#[derive(Debug, Clone, Serialize)]
struct Compared {
    figure: String,
    unit: String,
    original: Vec<f64>,
    orderpipe: Vec<f64>,
    original_median: f64,
    orderpipe_median: f64,
    /// orderpipe's median / the original's.
    ratio: f64,
    goal: String,
    met: bool,
}

impl Compared {
    fn new(figure: &str, unit: &str, rounds: &[[Round; 2]], pick: fn(&Round) -> f64) -> Compared {
        let original: Vec<f64> = rounds.iter().map(|r| pick(&r[0])).collect();
        let orderpipe: Vec<f64> = rounds.iter().map(|r| pick(&r[1])).collect();
        let (original_median, orderpipe_median) = (median(&original), median(&orderpipe));
        Compared {
            figure: figure.into(),
            unit: unit.into(),
            original,
            orderpipe,
            original_median,
            orderpipe_median,
            ratio: if original_median > 0.0 {
                orderpipe_median / original_median
            } else {
                0.0
            },
            goal: String::new(),
            met: false,
        }
    }

    fn at_least(mut self, goal: f64) -> Compared {
        self.goal = format!("≥ {goal}×");
        self.met = self.ratio >= goal;
        self
    }

    fn at_most(mut self, goal: f64) -> Compared {
        self.goal = format!("≤ {goal}×");
        self.met = self.ratio <= goal;
        self
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The whole run, as written to `against-original.json`.
#[derive(Debug, Serialize)]
struct Comparison {
    date: String,
    machine: String,
    build: String,
    /// From the servers' warm-up to the last round.
    load_seconds: f64,
    servers_warm_up: WarmUp,
    figures: Vec<Compared>,
    /// Per round, per side: CPU per drained order.
    drain_cpu: Vec<[String; 2]>,
}

impl Comparison {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## orderpipe against the original design (`cargo xtask bench --against-original{}`)\n\n\
             Run {} on {}; {}; load phase {:.0} s ({}). The original is \
             [`bench/original/`](bench/original) (Flask under gunicorn -w 4, one kafka-python \
             consumer, cassandra-driver, redis-py), on the same Kafka, Cassandra and Redis with \
             its own keyspace, topic and Redis prefix. Rounds alternate (original, orderpipe) × \
             {ROUNDS}, each side freshly deployed per round as one API and one consumer \
             process; each figure is the median of its rounds; ratio = orderpipe / original; \
             the goals are issue 19's.\n",
            if cfg!(debug_assertions) {
                ""
            } else {
                " --release"
            },
            self.date,
            self.machine,
            self.build,
            self.load_seconds,
            self.servers_warm_up.summary()
        );
        let _ = writeln!(
            out,
            "| figure | original | orderpipe | ratio | goal | met |\n|---|---|---|---|---|---|"
        );
        for f in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} {} | {} {} | {:.2}× | {} | {} |",
                f.figure,
                number(f.original_median),
                f.unit,
                number(f.orderpipe_median),
                f.unit,
                f.ratio,
                f.goal,
                if f.met { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(out, "\nEvery round (original / orderpipe, in run order):\n");
        for f in &self.figures {
            let list = |values: &[f64]| {
                values
                    .iter()
                    .map(|v| number(*v))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "- {}: {} / {} {}",
                f.figure,
                list(&f.original),
                list(&f.orderpipe),
                f.unit
            );
        }
        let _ = writeln!(
            out,
            "\nCPU per drained order, each round (consumer process, then each server):\n"
        );
        for (n, [original, orderpipe]) in self.drain_cpu.iter().enumerate() {
            let _ = writeln!(
                out,
                "- round {}: original: {original}; orderpipe: {orderpipe}",
                n + 1
            );
        }
        let _ = writeln!(
            out,
            "\nHow: consumer: {DRAIN_ORDERS} orders without items queued on a fresh topic, \
             then the consumer process started, rate between 10 % and 90 % processed (the \
             original's consumer prints its count every 100 orders; orderpipe's worker is read \
             from its metrics). POST → processed: {ONE_AT_A_TIME} orders one at a time, each \
             read every 2 ms (then every tenth of its age) until GET shows `processed`. GET \
             cache hit: wrk -c{CONNECTIONS} for {} s, random ids among {KNOWN_ORDERS} orders \
             whose views the consumer has cached. POST: wrk -c{CONNECTIONS} for {} s, an order \
             with two items, the consumer stopped.",
            WRK_FOR.as_secs(),
            WRK_FOR.as_secs()
        );
        out
    }
}

/// Steps 2 and 3 of a round, on a deployment whose API and consumer both run: the
/// POST → processed p50 (ms) and the cache-hit GET rate.
async fn latency_and_cache_hits(http: &reqwest::Client, base: &str) -> (f64, f64) {
    crate::warm_up(http, base).await;
    let mut latencies = Vec::with_capacity(ONE_AT_A_TIME);
    for _ in 0..ONE_AT_A_TIME {
        let at = Instant::now();
        let id = crate::post_orders(http, base, PLAIN_ORDER, 1).await[0];
        crate::wait_processed(http, base, id).await;
        latencies.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    let known = crate::post_orders(http, base, http::ORDER_BODY, KNOWN_ORDERS).await;
    futures::stream::iter(&known)
        .for_each_concurrent(CONNECTIONS as usize, |id| {
            crate::wait_for_status(http, base, *id, |status| status != "created")
        })
        .await;
    let ids = crate::write_ids(&known);
    let hit = http::wrk_get(base, &ids, CONNECTIONS, WRK_FOR);
    let _ = std::fs::remove_file(&ids);
    assert_eq!(hit.errors, 0, "every GET answered 200: {hit:?}");
    (median(&latencies), hit.rate)
}

fn wrk_post(base: &str) -> f64 {
    let post = http::wrk_post(base, CONNECTIONS, WRK_FOR);
    assert_eq!(post.errors, 0, "every POST answered 201: {post:?}");
    post.rate
}

async fn original_round(http: &reqwest::Client) -> Round {
    let original = Original::new(&crate::servers_config(Mode::Worker));
    original.create_schema();
    original.preload(DRAIN_ORDERS);
    let consumer = original.start_consumer();
    let meter = CpuMeter::start(&cpu::processes(Some(("consumer", consumer.pid()))));
    let drain = crate::drain_rate(DRAIN_ORDERS, || {
        let done = consumer.processed();
        async move { done }
    })
    .await;
    let drain_cpu = meter.per(DRAIN_ORDERS);
    let (api, base) = original.start_api().await;
    let (e2e_p50_ms, get_hit) = latency_and_cache_hits(http, &base).await;
    consumer.stop().await;
    let post = wrk_post(&base);
    api.stop().await;
    Round {
        drain,
        post,
        get_hit,
        e2e_p50_ms,
        drain_cpu,
    }
}

async fn orderpipe_round(http: &reqwest::Client) -> Round {
    let worker_config = crate::servers_config(Mode::Worker);
    {
        let backends = Backends::connect(&worker_config).await.expect("backends");
        crate::preload(&backends, DRAIN_ORDERS).await;
    }
    let worker = HostProcess::start(&worker_config, "vs-original-worker").await;
    let meter = CpuMeter::start(&cpu::processes(Some(("worker", worker.pid()))));
    let drain = crate::drain_rate(DRAIN_ORDERS, || async {
        crate::support::metrics::total_at(http, &worker.base, "orderpipe_events_processed_total")
            .await
            .unwrap_or(0.0) as u64
    })
    .await;
    let drain_cpu = meter.per(DRAIN_ORDERS);
    let mut api_config = worker_config.clone();
    api_config.mode = Mode::Api;
    let api = HostProcess::start(&api_config, "vs-original-api").await;
    let (e2e_p50_ms, get_hit) = latency_and_cache_hits(http, &api.base).await;
    worker.stop().await;
    let post = wrk_post(&api.base);
    api.stop().await;
    Round {
        drain,
        post,
        get_hit,
        e2e_p50_ms,
        drain_cpu,
    }
}

fn round_line(side: &str, round: &Round) -> String {
    format!(
        "{side}: consumer {:.0} orders/s, POST {:.0}/s, GET hit {:.0}/s, POST → processed p50 \
         {:.1} ms",
        round.drain, round.post, round.get_hit, round.e2e_p50_ms
    )
}

/// The dev-profile and release runs each keep their own section.
const MARKERS: Markers = if cfg!(debug_assertions) {
    Markers {
        begin: "<!-- bench-original:begin -->",
        end: "<!-- bench-original:end -->",
    }
} else {
    Markers {
        begin: "<!-- bench-original-release:begin -->",
        end: "<!-- bench-original-release:end -->",
    }
};

/// The whole comparison: the servers warmed up, the rounds, the report.
pub async fn run() {
    let started = Instant::now();
    let date = crate::report::run_date();
    let http = crate::http_client();

    step("servers warm-up: Kafka and Cassandra loops until their rates stop climbing");
    let servers_warm_up =
        servers_warm_up::warm_up(&crate::servers_config(Mode::Worker), CONNECTIONS).await;

    let mut rounds: Vec<[Round; 2]> = Vec::with_capacity(ROUNDS);
    for n in 1..=ROUNDS {
        step(&format!(
            "round {n} of {ROUNDS}: the original (gunicorn -w 4 + kafka-python consumer)"
        ));
        let original = original_round(&http).await;
        step(&round_line("original", &original));
        step(&format!(
            "round {n} of {ROUNDS}: orderpipe (API-only host + worker-only host)"
        ));
        let orderpipe = orderpipe_round(&http).await;
        step(&round_line("orderpipe", &orderpipe));
        rounds.push([original, orderpipe]);
    }

    let figures = vec![
        Compared::new(
            &format!("consumer: {DRAIN_ORDERS} queued orders drained"),
            "orders/s",
            &rounds,
            |r| r.drain,
        )
        .at_least(3.0),
        Compared::new(
            &format!("POST /api/orders, wrk -c{CONNECTIONS}"),
            "req/s",
            &rounds,
            |r| r.post,
        )
        .at_least(4.0),
        Compared::new(
            &format!("GET /api/orders/<id>, cache hit, wrk -c{CONNECTIONS}"),
            "req/s",
            &rounds,
            |r| r.get_hit,
        )
        .at_least(10.0),
        Compared::new(
            "POST → processed visible, one order at a time, p50",
            "ms",
            &rounds,
            |r| r.e2e_p50_ms,
        )
        .at_most(0.7),
    ];
    let comparison = Comparison {
        date,
        machine: machine(),
        build: if cfg!(debug_assertions) {
            "orderpipe's dev profile"
        } else {
            "orderpipe's release profile"
        }
        .into(),
        load_seconds: started.elapsed().as_secs_f64(),
        servers_warm_up,
        drain_cpu: rounds
            .iter()
            .map(|[o, p]| [o.drain_cpu.clone(), p.drain_cpu.clone()])
            .collect(),
        figures,
    };
    let dir = crate::repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let markdown = comparison.markdown();
    std::fs::write(
        dir.join("against-original.json"),
        serde_json::to_string_pretty(&comparison).expect("report serializes"),
    )
    .expect("against-original.json written");
    std::fs::write(dir.join("against-original.md"), &markdown).expect("against-original.md");
    write_benchmarks_section(&MARKERS, &markdown).expect("BENCHMARKS.md updated");
    println!("\n{markdown}");
    println!(
        "bench: report in {}/against-original.{{json,md}}; BENCHMARKS.md updated",
        dir.display()
    );
}
