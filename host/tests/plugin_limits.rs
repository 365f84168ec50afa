//! Limits per plugin through the admin API, on two running host processes: a small CPU
//! budget set on one host makes every host fail the plugin's orders with the CPU-budget
//! reason, restoring the default makes the next orders pass; invalid limits are refused with
//! `422` (malformed JSON `400`, no token `401`) and change nothing; the CLI shows and sets
//! them.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::process::HostProcess;
use support::{ADMIN_TOKEN, TestHost, config, orderpipe_plugin};
use uuid::Uuid;

/// How soon every host must apply new limits (the same promise as for a new version).
const APPLIED_WITHIN: Duration = Duration::from_secs(2);
const SWITCHED_BY_ANNOUNCEMENT: &str =
    "orderpipe_plugin_switches_total{plugin=\"order\",trigger=\"announcement\"}";

async fn put_limits(http: &reqwest::Client, host: &HostProcess, body: &str) -> (StatusCode, Value) {
    let response = http
        .put(host.url("/api/plugins/order/limits"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("PUT limits");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn plugin(http: &reqwest::Client, host: &HostProcess) -> Value {
    let response = http
        .get(host.url("/api/plugins/order"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("GET plugin");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// Places `count` empty orders, alternating hosts, and returns each order's single history
/// entry once it is recorded.
async fn decided_orders(checker: &TestHost, hosts: [&HostProcess; 2], count: usize) -> Vec<Value> {
    let mut ids: Vec<Uuid> = Vec::new();
    for n in 0..count {
        let response = checker
            .http
            .post(hosts[n % 2].url("/api/orders"))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::CREATED);
        let answer: Value = response.json().await.expect("JSON");
        ids.push(answer["order_id"].as_str().unwrap().parse().unwrap());
    }
    let mut entries = Vec::new();
    for id in ids {
        checker
            .wait_for_version(id, 1, Duration::from_secs(60))
            .await;
        let history = checker.history(id).await;
        assert_eq!(history.len(), 1, "{id}: {history:?}");
        entries.push(history[0].clone());
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_budget_set_on_one_host_applies_on_every_host_and_can_be_restored() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    // Slow polling: only the announcement can make the hosts apply limits within 2 s.
    config.plugins.watch_interval_ms = 30_000;
    config.plugins.max_memory_mib = 128;
    config.worker.plugin_attempts = 1;
    let a = HostProcess::start(&config, "limits-a").await;
    let b = HostProcess::start(&config, "limits-b").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let checker = TestHost {
        host: None,
        config: config.clone(),
        base: a.base.clone(),
        http: http.clone(),
    };

    let before = plugin(&http, &a).await;
    assert_eq!(before["limits"]["fuel"], 50_000_000, "{before}");
    assert_eq!(before["limit_sources"]["fuel"], "default", "{before}");
    for entry in decided_orders(&checker, [&a, &b], 4).await {
        assert_eq!(entry["outcome"], "transitioned", "{entry}");
    }

    // A budget far too small for any decision, set through host A.
    let (status, answer) = put_limits(&http, &a, r#"{"fuel": 1000}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["limits"]["fuel"], 1000);
    assert_eq!(answer["limit_sources"]["fuel"], "override");
    assert_eq!(answer["limit_sources"]["memory_mib"], "default");
    let set_at = Instant::now();
    let (on_a, on_b) = tokio::join!(
        a.wait_for_metric(SWITCHED_BY_ANNOUNCEMENT, 1.0, set_at, APPLIED_WITHIN),
        b.wait_for_metric(SWITCHED_BY_ANNOUNCEMENT, 1.0, set_at, APPLIED_WITHIN),
    );
    println!("fuel 1000 applied: host a {on_a:?}, host b {on_b:?}");
    for host in [&a, &b] {
        assert_eq!(plugin(&http, host).await["limits"]["fuel"], 1000);
    }
    let listed: Value = http
        .get(b.url("/api/plugins"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = listed["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "order"))
        .unwrap_or_else(|| panic!("order is listed: {listed}"));
    assert_eq!(order["limits"]["fuel"], 1000, "{listed}");
    assert_eq!(order["limit_sources"]["fuel"], "override", "{listed}");
    assert_eq!(listed["default_limits"]["fuel"], 50_000_000, "{listed}");

    // Every order fails, on whichever host decides it, with the CPU-budget reason.
    for entry in decided_orders(&checker, [&a, &b], 8).await {
        assert_eq!(entry["outcome"], "failed", "{entry}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("exceeded its CPU budget of 1000 fuel"),
            "{entry}"
        );
    }

    // Invalid changes are refused and change nothing.
    let refused = [
        (
            r#"{"fuel": 0}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "fuel must be between 1 and",
        ),
        (
            r#"{"memory_mib": 129}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugins.max_memory_mib",
        ),
        (
            r#"{"timeout_ms": 3600000}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "timeout_ms must be between",
        ),
        (
            r#"{"cpu": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (r#"{"fuel": -1}"#, StatusCode::UNPROCESSABLE_ENTITY, "fuel"),
        (
            r#"{"fuel": "lots"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "fuel",
        ),
        ("{}", StatusCode::UNPROCESSABLE_ENTITY, "at least one"),
        ("not json", StatusCode::BAD_REQUEST, "malformed JSON"),
    ];
    for (body, expected, needle) in refused {
        let (status, answer) = put_limits(&http, &b, body).await;
        assert_eq!(status, expected, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{body}: {answer}");
    }
    let no_token = http
        .put(a.url("/api/plugins/order/limits"))
        .json(&json!({"fuel": 50_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let unknown = http
        .put(a.url("/api/plugins/no_such_plugin/limits"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"fuel": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unchanged = plugin(&http, &a).await;
    assert_eq!(unchanged["limits"]["fuel"], 1000, "{unchanged}");
    assert_eq!(
        unchanged["limit_sources"],
        answer_sources_after_fuel_override()
    );

    // Back to the default: the next orders pass again on every host.
    let (status, answer) = put_limits(&http, &b, r#"{"fuel": null}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["limits"]["fuel"], 50_000_000);
    assert_eq!(answer["limit_sources"]["fuel"], "default");
    let restored_at = Instant::now();
    let (on_a, on_b) = tokio::join!(
        a.wait_for_metric(SWITCHED_BY_ANNOUNCEMENT, 2.0, restored_at, APPLIED_WITHIN),
        b.wait_for_metric(SWITCHED_BY_ANNOUNCEMENT, 2.0, restored_at, APPLIED_WITHIN),
    );
    println!("default fuel restored: host a {on_a:?}, host b {on_b:?}");
    for entry in decided_orders(&checker, [&a, &b], 8).await {
        assert_eq!(entry["outcome"], "transitioned", "{entry}");
    }
    a.stop().await;
    b.stop().await;
}

/// Every limit's source: `fuel` overridden, every other limit the default.
fn answer_sources_after_fuel_override() -> Value {
    let mut sources = serde_json::Map::new();
    for name in orderpipe::plugin_limits::LIMIT_NAMES {
        let source = if *name == "fuel" {
            "override"
        } else {
            "default"
        };
        sources.insert((*name).to_owned(), json!(source));
    }
    assert!(sources.contains_key("decision_bytes") && sources.contains_key("log_lines"));
    Value::Object(sources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_sets_and_resets_a_plugins_limits() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.plugins.limits_for.insert(
        "order".into(),
        orderpipe::backend::registry::LimitOverrides {
            timeout_ms: Some(1_500),
            ..Default::default()
        },
    );
    let host = TestHost::start(config).await;

    let shown = orderpipe_plugin(&host, &["limits", "order"]);
    assert!(shown.contains("fuel 50000000 (default)"), "{shown}");
    assert!(shown.contains("timeout_ms 1500 (config)"), "{shown}");

    let set = orderpipe_plugin(
        &host,
        &["limits", "order", "--host-calls", "5", "--memory-mib", "32"],
    );
    assert!(set.contains("host_calls 5 (override)"), "{set}");
    assert!(set.contains("memory_mib 32 (override)"), "{set}");
    let listed = orderpipe_plugin(&host, &["list"]);
    assert!(listed.contains("host_calls 5 (override)"), "{listed}");
    assert!(listed.contains("default limits per invocation"), "{listed}");

    let reset = orderpipe_plugin(&host, &["limits", "order", "--reset", "host_calls"]);
    assert!(reset.contains("host_calls 100 (default)"), "{reset}");
    assert!(reset.contains("memory_mib 32 (override)"), "{reset}");

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_orderpipe"))
        .args([
            "plugin", "limits", "order", "--fuel", "0", "--url", &host.base,
        ])
        .env("ORDERPIPE_ADMIN__TOKEN", ADMIN_TOKEN)
        .output()
        .expect("orderpipe runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("fuel must be between"),
        "{stderr}"
    );
}
