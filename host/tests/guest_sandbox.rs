//! The TypeScript and Python hostile plugins (`plugins/testing/hostile-ts`, `hostile-py`)
//! against a host on the real servers: reading a file or the environment, opening a socket,
//! sending an HTTP request, an endless loop, a memory bomb, a log flood and a huge decision
//! are each refused or stopped, the reason recorded in the order's history, nothing a guest
//! keeps in its module state reaches the next event, and the host goes on deciding orders. The
//! Rust hostile plugin's twin of this is `pipeline/sandbox.rs`.
//!
//! Each test builds its plugin first with `orderpipe plugin build`, as an author would (the
//! toolchain comes from npm or PyPI into the plugin's folder on first use).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use orderpipe::config::Config;
use serde_json::{Value, json};

use support::TestHost;

/// How long one attack may take to be recorded: a 20 MB decision crosses the boundary twice,
/// a loop runs until its CPU budget is spent.
const RECORDED_WITHIN: Duration = Duration::from_secs(120);

/// The linear memory cap the memory bomb runs into.
const MEMORY_MIB: u32 = 64;
/// The CPU budget per event: room for the memory bomb to reach [`MEMORY_MIB`] first (the
/// default, 50,000,000, runs out after about 30 MiB of allocations in either engine).
const FUEL: u64 = 500_000_000;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// `orderpipe plugin build --dir plugins/testing/<plugin>`; returns the folder holding the
/// component (`dist/`).
fn build(plugin: &str) -> PathBuf {
    let project = repo_root().join("plugins/testing").join(plugin);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_orderpipe"))
        .args(["plugin", "build", "--dir"])
        .arg(&project)
        .env_remove("ORDERPIPE_CONFIG")
        .output()
        .expect("orderpipe runs");
    assert!(
        output.status.success(),
        "building {plugin} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "{plugin}: built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    project.join("dist")
}

/// What the history records for one attack: its outcome and text its reason holds.
type Recorded = (&'static str, &'static str);

/// Every attack, what it sends, the outcome the history must record and text its reason must
/// hold. How the sandbox answers the four reaches outward (`guest`: file, environment, socket,
/// HTTP) is the guest's own: a missing API the guest catches is a reject, a trap a failure.
/// A flood of 200 log lines runs into the log budget (the event goes on, the rest is dropped
/// and counted); a 2 MB attribute is handed over and refused by the host for its size. Last,
/// twice, the guest keeps the event's id in its module state and looks for an earlier one:
/// every event runs on a fresh instance, so neither finds anything (for Python, that state is
/// among the snapshot objects the build made immortal, written like any other memory).
fn attacks(guest: [Recorded; 6]) -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let [file, env, socket, http, flood, huge] = guest;
    vec![
        ("read_file", json!({}), file.0, file.1),
        ("read_env", json!({}), env.0, env.1),
        ("open_socket", json!({}), socket.0, socket.1),
        ("http_request", json!({}), http.0, http.1),
        ("loop", json!({}), "failed", "CPU budget of 500000000 fuel"),
        ("grow_memory", json!({}), "failed", "memory limit of 64 MiB"),
        ("log_flood", json!({"lines": 200}), flood.0, flood.1),
        (
            "huge_attribute",
            json!({"bytes": 2_000_000}),
            huge.0,
            huge.1,
        ),
        (
            "remember",
            json!({}),
            "unchanged",
            "remember: nothing from an earlier event",
        ),
        (
            "remember",
            json!({}),
            "unchanged",
            "remember: nothing from an earlier event",
        ),
    ]
}

/// Starts a host whose order plugin is `plugin` from `dir`, posts every attack on one order and
/// checks what its history recorded for each.
async fn attacks_are_contained(
    plugin: &str,
    mut config: Config,
    dir: PathBuf,
    attacks: Vec<(&str, Value, &str, &str)>,
) {
    config.plugins.dir = dir;
    config.plugins.limits.memory_mib = MEMORY_MIB;
    config.plugins.limits.fuel = FUEL;
    // The deadline far behind the budget, so the loop is stopped by fuel, as the reason says.
    config.plugins.limits.timeout_ms = 10_000;
    let mut host = TestHost::start(config).await;
    let order = host.create_order(None).await;
    let view = host.wait_for_version(order, 1, RECORDED_WITHIN).await;
    assert_eq!(view["status"], "processed", "{view}");

    for (seq, (kind, data, outcome, reason)) in attacks.iter().enumerate() {
        let started = Instant::now();
        host.post_event(order, kind, data.clone()).await;
        host.wait_for_version(order, seq as u64 + 2, RECORDED_WITHIN)
            .await;
        let history = host.history(order).await;
        let entry = &history[seq + 1];
        let recorded = entry["reason"].as_str().unwrap_or_default();
        println!(
            "{plugin} {kind}: {} in {:.1} s: {recorded:.160}",
            entry["outcome"],
            started.elapsed().as_secs_f64()
        );
        assert_eq!(entry["event_type"], *kind, "{entry}");
        assert_eq!(entry["outcome"], *outcome, "{kind}: {entry}");
        assert!(
            recorded.contains(reason),
            "{kind}: reason {recorded:.300} lacks {reason:?}"
        );
        assert!(!recorded.contains("ESCAPED"), "{kind} escaped: {recorded}");
    }

    let view = host.order(order).await;
    assert_eq!(
        view["status"], "processed",
        "no attack changed the status: {view}"
    );
    assert!(view["attributes"].get("blob").is_none(), "{view}");
    let flood_finished = attacks
        .iter()
        .any(|(kind, _, outcome, _)| *kind == "log_flood" && *outcome == "unchanged");
    if flood_finished {
        let dropped = host
            .metric(&format!(
                "orderpipe_plugin_log_dropped_total{{plugin=\"{plugin}\",version=\"0.1.0\"}}"
            ))
            .await;
        assert!(dropped > 0.0, "the log flood ran into the log budget");
    }

    // The host goes on: the next order is decided as usual.
    let next = host.create_order(None).await;
    let view = host.wait_for_version(next, 1, RECORDED_WITHIN).await;
    assert_eq!(view["status"], "processed", "{view}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_plugins_attacks_are_refused_or_stopped() {
    let dir = build("hostile-ts");
    attacks_are_contained(
        "hostile-ts",
        support::config("hostile-ts"),
        dir,
        attacks([
            ("rejected", "read_file denied: no file API"),
            ("rejected", "read_env denied: no process.env"),
            ("rejected", "open_socket denied: no socket API"),
            // QuickJS has no `fetch` at all.
            ("rejected", "http_request denied: fetch is absent"),
            ("unchanged", "log_flood: done"),
            ("failed", "attribute_value_bytes limit"),
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugins_attacks_are_refused_or_stopped() {
    let dir = build("hostile-py");
    // All real servers: the registry stores the ~18 MiB component in Cassandra in chunks.
    let config = support::config("hostile-py");
    attacks_are_contained(
        "hostile-py",
        config,
        dir,
        attacks([
            ("rejected", "read_file denied"),
            (
                "rejected",
                "read_env denied: LookupError: environment is empty",
            ),
            ("rejected", "open_socket denied"),
            ("rejected", "http_request denied"),
            ("unchanged", "log_flood: done"),
            ("failed", "attribute_value_bytes limit"),
        ]),
    )
    .await;
}
