//! The composite tasks a developer and CI run: `test` (exactly what CI runs, via `.ci/run`),
//! `run` (the main job: the whole pipeline on port 5000), `soak` and `bench` (long, not in CI). Each is a sequence of steps that
//! stops at the first failure; the steps themselves live in `servers` and `plugins`.

use std::path::Path;
use std::process::Command;

use crate::{plugins, process, servers};

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(root);
    command
}

/// The environment of `cargo xtask servers env`, plus the absolute plugin folder.
fn with_server_env(command: &mut Command, plugins_dir: &Path) {
    for (key, value) in servers::ENV {
        command.env(key, value);
    }
    command.env("ORDERPIPE_PLUGINS__DIR", plugins_dir);
}

/// Servers up, plugins built, formatting and lints checked, the web page checked against its
/// sources and its browser suite run, the plugins' native unit tests,
/// every workspace test against the real servers with `cargo_args` passed through, the
/// TypeScript and Python `order` plugins built and tested (`guests --test`), a running host
/// hot-swapping `order` across the three languages, then
/// schemathesis against the API's OpenAPI document. cargo test's
/// output streams through unmodified and is the last thing printed: CI reads its closing lines.
pub fn test(cargo_args: &[String]) -> anyhow::Result<()> {
    servers::up(&servers::ALL)?;
    crate::step("removing the Kafka topics of earlier test runs");
    if let Err(error) = servers::kafka::prune_test_topics() {
        // Only slower if they stay; never a reason not to test.
        println!("    could not remove them: {error:#}");
    }
    let dist = plugins::build()?;
    let root = crate::repo_root();

    crate::step("cargo fmt --check (workspace and plugins)");
    process::run(cargo(&root).args(["fmt", "--all", "--check"]))?;
    process::run(cargo(&root.join("plugins")).args(["fmt", "--all", "--check"]))?;

    crate::step("cargo clippy -D warnings (workspace and plugins)");
    process::run(cargo(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    process::run(cargo(&root).args([
        "clippy",
        "--manifest-path",
        "plugins/Cargo.toml",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    // The page: its committed build matches its sources, and it works in a real browser.
    crate::web::command(&["--check".to_owned()])?;
    crate::web::command(&["test".to_owned()])?;

    crate::step("cargo test --manifest-path plugins/Cargo.toml (native unit tests)");
    process::run(cargo(&root).args(["test", "--manifest-path", "plugins/Cargo.toml"]))?;

    // `-p <crate>` narrows the run; cargo rejects it beside `--workspace`.
    let (cargo_flags, _) = cargo_args.split_at(
        cargo_args
            .iter()
            .position(|a| a == "--")
            .unwrap_or(cargo_args.len()),
    );
    let narrowed = cargo_flags
        .iter()
        .any(|a| a.starts_with("-p") || a == "--package" || a.starts_with("--package="));
    let mut command = cargo(&root);
    command.arg("test");
    if !narrowed {
        command.arg("--workspace");
    }
    command.args(cargo_args);
    with_server_env(&mut command, &dist);
    let shown: Vec<_> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    crate::step(&format!(
        "cargo {} (against the real servers)",
        shown.join(" ")
    ));
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("starting cargo test: {e}"))?;
    if !status.success() {
        // cargo has said what failed; exit with its code and print nothing after it.
        std::process::exit(status.code().unwrap_or(1));
    }
    // The TypeScript and Python `order` plugins, built from the registries with `orderpipe
    // plugin build`, their unit tests and the Rust plugin's fixtures through `plugin test`.
    crate::guests::command(&["--test".to_owned()])?;
    polyglot_hot_swap(&root, &dist)?;
    crate::schemathesis::run(&dist)
}

/// The tests the workspace run skips because the guests are built after it: a running host
/// hot-swaps `order` from Rust to the TypeScript and Python components just published, and
/// back, under a steady stream of orders (`host/tests/polyglot_hot_swap.rs`); the Python
/// component's invocations wait for room in the instance pool (`guest_instance_pool.rs`); a
/// TypeScript and a Python instance returned to its start decides as a new one
/// (`guest_instance_reset.rs`).
fn polyglot_hot_swap(root: &Path, dist: &Path) -> anyhow::Result<()> {
    let mut command = cargo(root);
    command.args([
        "test",
        "--package",
        "orderpipe",
        "--test",
        "polyglot_hot_swap",
        "--test",
        "guest_instance_pool",
        "--test",
        "guest_instance_reset",
        "--",
        "--ignored",
        "--nocapture",
    ]);
    with_server_env(&mut command, dist);
    crate::step(
        "cargo test --package orderpipe --test polyglot_hot_swap --test guest_instance_pool \
         --test guest_instance_reset -- --ignored (order hot-swapped Rust → TypeScript → Python \
         → Rust on the real servers; Python instances waiting for room in the instance pool; \
         TypeScript and Python instances returned to their start deciding as new ones)",
    );
    process::run(&mut command)
}

/// The configuration `run` serves with when the developer chose none: orders and invoices.
const EXAMPLE_CONFIG: &str = "orderpipe.example.toml";

/// The main job: the plugins built, then `orderpipe serve` on port 5000 in the foreground.
/// By default the host uses its embedded backends (data under `./data`), so nothing else
/// needs to be installed; `--servers` starts Kafka, Cassandra and Redis and uses them. It
/// serves the orders and invoices pipelines of `orderpipe.example.toml` unless `--config`,
/// `ORDERPIPE_CONFIG` or an `./orderpipe.toml` says otherwise.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let use_servers = args.iter().any(|a| a == "--servers");
    // The optimised build unless the developer asks for the dev one (quicker to rebuild after
    // a change, slower to serve: see README).
    let dev_build = args.iter().any(|a| a == "--dev");
    let host_args: Vec<&String> = args
        .iter()
        .filter(|a| *a != "--servers" && *a != "--dev")
        .collect();
    if use_servers {
        servers::up(&servers::PIPELINE)?;
    }
    let dist = plugins::build()?;
    let backends = if use_servers {
        "Kafka, Cassandra, Redis"
    } else {
        "embedded backends, data in ./data"
    };
    let profile = if dev_build { "" } else { " --release" };
    crate::step(&format!(
        "cargo run{profile} -p orderpipe -- serve ({backends}): http://127.0.0.1:5000 \
         (Ctrl-C stops it)"
    ));
    let root = crate::repo_root();
    let mut command = cargo(&root);
    command.arg("run");
    if !dev_build {
        command.arg("--release");
    }
    command
        .args(["--package", "orderpipe", "--", "serve"])
        .args(host_args);
    // Orders and invoices by default, unless the developer chose a configuration.
    let chosen = args
        .iter()
        .any(|a| a == "--config" || a.starts_with("--config="))
        || std::env::var_os("ORDERPIPE_CONFIG").is_some()
        || root.join("orderpipe.toml").exists();
    if !chosen {
        command.env("ORDERPIPE_CONFIG", root.join(EXAMPLE_CONFIG));
    }
    if use_servers {
        with_server_env(&mut command, &dist);
    } else {
        command.env("ORDERPIPE_PLUGINS__DIR", &dist);
    }
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("starting cargo run: {e}"))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// The soak (issue 9; not in CI): servers up, plugins built, then the ignored test
/// `host/tests/soak.rs` against the real servers. `--minutes N` (default 10) and `--rate R`
/// (orders per second; default: half the maximum sustained rate, which the test measures first)
/// reach it as `ORDERPIPE_SOAK_MINUTES` and `ORDERPIPE_SOAK_RATE`. It prints a line every 10 s
/// and writes its figures into `BENCHMARKS.md`.
pub fn soak(args: &[String]) -> anyhow::Result<()> {
    let mut minutes: Option<String> = None;
    let mut rate: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let slot = match name {
            "--minutes" => &mut minutes,
            "--rate" => &mut rate,
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: cargo xtask soak [--minutes N] [--rate R]"
            ),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?,
        };
        match value.parse::<f64>() {
            Ok(number) if number > 0.0 && number.is_finite() => *slot = Some(value),
            _ => anyhow::bail!("{name} needs a positive number, not {value:?}"),
        }
    }

    servers::up(&servers::PIPELINE)?;
    let dist = plugins::build()?;
    let root = crate::repo_root();
    let mut command = cargo(&root);
    command.args([
        "test",
        "--package",
        "orderpipe",
        "--test",
        "soak",
        "--",
        "--ignored",
        "--nocapture",
    ]);
    with_server_env(&mut command, &dist);
    command.env_remove("ORDERPIPE_SOAK_MINUTES");
    command.env_remove("ORDERPIPE_SOAK_RATE");
    if let Some(minutes) = &minutes {
        command.env("ORDERPIPE_SOAK_MINUTES", minutes);
    }
    if let Some(rate) = &rate {
        command.env("ORDERPIPE_SOAK_RATE", rate);
    }
    crate::step(&format!(
        "soak: {} min at {} (against the real servers; figures into BENCHMARKS.md)",
        minutes.as_deref().unwrap_or("10"),
        rate.as_deref()
            .map_or("half the measured maximum rate".to_owned(), |r| format!(
                "{r} orders/s"
            ))
    ));
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("starting cargo test: {e}"))?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// The benchmark: the host and the bench binary (an ignored test, built in the same profile
/// as the tests so nothing else is rebuilt; with `--release`, optimised, which costs a cold
/// release build of its own) build in the background while the servers come up, the plugins
/// build and `wrk` is installed when missing; then, once the servers' own rates have stopped
/// climbing, each figure beside its same-run baseline, in `target/bench/report.{json,md}` and
/// `BENCHMARKS.md`. With `--against-original`, the original design is installed into its
/// virtualenv too and the bench's `against_original` runs instead: orderpipe beside it, in
/// `target/bench/against-original.{json,md}` and its own section of `BENCHMARKS.md`. With
/// `--languages`, the TypeScript and Python order plugins are built too (`cargo xtask guests`)
/// and the bench's `languages` runs: the order plugin in each language side by side, in
/// `target/bench/languages.md` and its own section of `BENCHMARKS.md`.
pub fn bench(args: &[String]) -> anyhow::Result<()> {
    const USAGE: &str = "usage: cargo xtask bench [--release] [--against-original | --languages]";
    let (mut release, mut against_original, mut languages) = (false, false, false);
    for arg in args {
        match arg.as_str() {
            "--release" => release = true,
            "--against-original" => against_original = true,
            "--languages" => languages = true,
            other => anyhow::bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    anyhow::ensure!(
        !(against_original && languages),
        "--against-original and --languages are separate runs; {USAGE}"
    );
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let root = crate::repo_root();
    // The cold build is most of a first run; downloads and JVM start-up leave the cores idle.
    crate::step("building the host and the benchmark (in the background)");
    let mut build = cargo(&root)
        .args([
            "build",
            "--package",
            "orderpipe",
            "--bins",
            "--test",
            "bench",
        ])
        .args(profile)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting cargo build: {e}"))?;
    let prepared = prepare_bench().and_then(|dist| {
        let venv = against_original
            .then(crate::original::install)
            .transpose()?;
        if languages {
            // The TypeScript and Python order plugins, into the same plugins/dist/.
            crate::guests::command(&[])?;
        }
        Ok((dist, venv))
    });
    let (dist, venv) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let _ = build.kill();
            let _ = build.wait();
            return Err(error);
        }
    };
    crate::step("waiting for the host and benchmark build");
    let built = build
        .wait()
        .map_err(|e| anyhow::anyhow!("waiting for cargo build: {e}"))?;
    anyhow::ensure!(
        built.success(),
        "building the host and the benchmark failed ({built})"
    );
    // One test by its exact name: the bench binary's other ignored tests are profiling
    // targets and would otherwise run at the same time.
    let test = if against_original {
        crate::step(
            "bench --against-original: the servers warmed up (½-1 minute), then 3 alternating \
             rounds of the original and orderpipe, 3-5 minutes of load on loopback \
             (figures into BENCHMARKS.md)",
        );
        "against_original"
    } else if languages {
        crate::step(
            "bench --languages: the order plugin in Rust, TypeScript and Python: compile, \
             decisions fresh and reused, memory per instance, then 3 alternating rounds of a \
             worker draining 1,000 orders with each (figures into BENCHMARKS.md)",
        );
        "languages"
    } else {
        crate::step(
            "bench: the servers warmed up (½-1 minute, 2 on servers just started), then about \
             2½ minutes of load on loopback (figures into BENCHMARKS.md)",
        );
        "bench"
    };
    let mut command = cargo(&root);
    command
        .args(["test", "--package", "orderpipe", "--test", "bench"])
        .args(profile)
        .args(["--", "--ignored", "--nocapture", "--exact", test]);
    with_server_env(&mut command, &dist);
    if let Some(venv) = venv {
        command.env("ORDERPIPE_BENCH_ORIGINAL_VENV", venv);
    }
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("starting cargo test: {e}"))?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// What the benchmark needs beside its build: the servers up, the plugins built (their folder
/// is returned), `wrk` and `redis-benchmark` on the PATH.
fn prepare_bench() -> anyhow::Result<std::path::PathBuf> {
    servers::up(&servers::PIPELINE)?;
    let dist = plugins::build()?;
    if !process::on_path("wrk") {
        crate::step("installing wrk (the HTTP load generator) from Debian");
        process::require(
            "apt-get",
            "install wrk yourself so that `wrk` is on the PATH",
        )?;
        process::apt_install(&["wrk"])?;
    }
    process::require(
        "redis-benchmark",
        "install Debian's redis-tools (it ships with redis-server)",
    )?;
    Ok(dist)
}
