//! `cargo xtask`: the developer's one entry point (std and anyhow only, so it builds in seconds).
//!
//! - `servers up|down [--only kafka,cassandra,redis]`: real Kafka (KRaft), Cassandra 5 and
//!   Redis on loopback (ports 19092, 19042, 16379), installed and started without Docker;
//!   idempotent, shared by every clone through `$ORDERPIPE_SERVERS_DIR`
//!   (default `~/.local/state/orderpipe/servers`).
//! - `servers status`, `servers kill <name>` (SIGKILL, for fault tests), `servers env` (the
//!   `ORDERPIPE_*` variables that reach them; `eval "$(cargo xtask servers env)"`).
//! - `plugins`: build the plugin workspace to components (wasm32-unknown-unknown with no WASI
//!   imports; wasm32-wasip2 for the hostile test plugin) into `plugins/dist/`.
//! - `guests [ts] [python] [--test]`: build the TypeScript and Python `order` plugins with
//!   `orderpipe plugin build` (dev build; toolchains from npm and PyPI into the projects'
//!   folders on first use) into `plugins/dist/order-ts.wasm` and `order-py.wasm`; `--test`
//!   also runs the SDKs' and plugins' unit tests and `plugin test` with the Rust plugin's
//!   fixtures. Needs `npm` and `python3`. CI runs it (`test`).
//! - `test [cargo test args]`: servers up, plugins, fmt and clippy, `web --check` and
//!   `web test`, every test, `guests --test`, the hot swap across languages
//!   (`host/tests/polyglot_hot_swap.rs`, which needs the guests), then `schemathesis`. CI
//!   runs this.
//! - `web [--check | test [--screenshot]]`: build the page (`web/`, npm) into `web/dist`,
//!   which the host embeds; `--check` fails when `web/dist` does not match a fresh build;
//!   `test` runs its Playwright suite in Debian's chromium against a real host, the servers
//!   and Keycloak (`--screenshot` also writes `docs/page.png`). CI runs both.
//! - `schemathesis`: fuzzes a fresh host (embedded backends) against its `/openapi.json` with
//!   schemathesis (pinned, installed into a virtualenv under `target/`), fixed seed, bounded
//!   examples; fails on any 5xx or non-conforming answer. About 30 s once built.
//! - `run [--servers] [--dev] [serve args]`: plugins, then `orderpipe serve` (release build;
//!   `--dev` the dev one) on port 5000; `--servers` starts the servers and uses them.
//! - `soak [--minutes N] [--rate R]`: servers up, plugins, then a long steady load on one host
//!   (default 10 minutes at half the measured maximum rate); checks that nothing is lost and
//!   that memory and descriptors stay flat, and writes the figures into `BENCHMARKS.md`.
//!   Not in CI.
//! - `bench [--release]`: the host builds while the servers come up, the plugins build and `wrk`
//!   is installed if missing; then the benchmark: POST, GET
//!   (cache hit and miss), consumer, plugin overhead, end-to-end latency and peak RSS, each
//!   beside a baseline measured in the same run; report in `target/bench/` and
//!   `BENCHMARKS.md`. About 3 minutes once built (dev profile, as the tests;
//!   `--release` builds optimised first). Not in CI.
//! - `bench --against-original [--release]`: instead, orderpipe beside the service it replaces
//!   (`bench/original/`: Flask under gunicorn -w 4 and a kafka-python consumer, installed into
//!   a virtualenv under `target/`) on the same servers, in alternating rounds: consumer drain,
//!   POST, cache-hit GET and POST → processed p50, each as original | orderpipe | ratio; report
//!   in `target/bench/against-original.{json,md}` and `BENCHMARKS.md`. 4–6 minutes once
//!   built.
//! - `bench --languages [--release]`: instead, the `order` plugin in Rust, TypeScript and
//!   Python side by side (the guests built first): component size, compile time, decisions
//!   fresh and reused, memory per instance, a worker's consumer throughput in alternating
//!   rounds; `target/bench/languages.md` and `BENCHMARKS.md`.
//!
//! This file only dispatches; `servers/` owns the servers, `plugins` the Rust plugin build,
//! `web` the page's build, check and browser suite,
//! `guests` the TypeScript and Python plugin builds, `tasks` the composite tasks and `process`
//! the process plumbing they share.

mod guests;
mod original;
mod plugins;
mod process;
mod schemathesis;
mod servers;
mod tasks;
mod web;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, bail};

fn main() {
    step_clock();
    if let Err(error) = dispatch() {
        // The cause chain on one line, without the backtrace RUST_BACKTRACE would add.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "servers" => servers::command(rest),
        "plugins" => plugins::build().map(|_| ()),
        "guests" => guests::command(rest),
        "test" => tasks::test(rest),
        "web" => web::command(rest),
        "schemathesis" => plugins::build().and_then(|dist| schemathesis::run(&dist)),
        "run" => tasks::run(rest),
        "soak" => tasks::soak(rest),
        "bench" => tasks::bench(rest),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => bail!("unknown command {other:?}; try `cargo xtask help`"),
    }
    .with_context(|| format!("cargo xtask {}", args.join(" ")))
}

/// Prints this file's module documentation.
fn print_help() {
    let help: Vec<&str> = include_str!("main.rs")
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .map(|line| line.trim_start_matches("//!").trim_start_matches(' '))
        .collect();
    println!("{}", help.join("\n"));
}

/// The repository root: the parent of this crate's folder.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where cargo builds (`CARGO_TARGET_DIR`, else `target/`); tools the tasks install live there.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds the host's dev binary (`cargo build -p orderpipe --bin orderpipe`), the one the
/// browser suite, the guests' `plugin build` and schemathesis run; `why` names the step.
pub fn build_dev_host(why: &str) -> anyhow::Result<PathBuf> {
    step(&format!("cargo build -p orderpipe ({why})"));
    process::run(
        std::process::Command::new(env!("CARGO"))
            .current_dir(repo_root())
            .args(["build", "--package", "orderpipe", "--bin", "orderpipe"]),
    )?;
    Ok(target_dir().join("debug/orderpipe"))
}

fn step_clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Prints a step header with the seconds since this xtask started: `==> [  1.2s] servers up`.
pub fn step(message: &str) {
    println!(
        "==> [{:>5.1}s] {message}",
        step_clock().elapsed().as_secs_f64()
    );
}
