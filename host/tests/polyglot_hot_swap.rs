//! One running host on the real servers hot-swaps its `order` plugin across languages under a
//! steady stream of orders: the Rust version (0.1.0), then the TypeScript port (0.1.0-ts), then
//! the Python port (0.1.0-py), then back to Rust. No order is lost or failed, every order gets
//! the same status and reason whichever language decided it, and each history entry names the
//! version that was active when it was decided.
//!
//! It deploys the components `cargo xtask guests` publishes (`plugins/dist/order-ts.wasm`,
//! `order-py.wasm`), so it is ignored by a plain `cargo test`: `cargo xtask test` runs it right
//! after `guests --test`. By hand, with the servers up and the guests built:
//! `cargo test -p orderpipe --test polyglot_hot_swap -- --ignored --nocapture` (it prints how
//! long each upload and switch took).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::process::{HostProcess, log_digest};
use support::{ADMIN_TOKEN, TestHost, config, wait_for_active};
use uuid::Uuid;

/// The stream's pace: about 20 orders a second.
const ORDER_EVERY: Duration = Duration::from_millis(50);
/// How long each version decides orders before the next one is activated.
const DECIDING_FOR: Duration = Duration::from_secs(4);
/// How long an upload may take: it is answered once the host has compiled the component, a
/// minute or more for a 12-18 MiB TypeScript or Python component with a dev build on a busy
/// 2-core machine (a few seconds in release).
const UPLOAD_WITHIN: Duration = Duration::from_secs(300);
/// How soon after an activation the host must run the new version (the activation itself
/// returns once the version is compiled on this host).
const SWITCH_WITHIN: Duration = Duration::from_secs(10);
/// Orders in flight when a switch is observed may still be decided by the version before it.
const SWITCH_SLACK: Duration = Duration::from_secs(1);
/// How long every placed order may take to be decided once the stream stops.
const ALL_DECIDED_WITHIN: Duration = Duration::from_secs(120);

/// The Rust `order` plugin's version, the one the host starts with.
const RUST: &str = "0.1.0";

/// An order with items (priced, then awaiting payment) or without (processed at once), and the
/// status and reason every language's `order` must decide for it.
fn order(n: usize) -> (Value, &'static str, &'static str) {
    if n.is_multiple_of(2) {
        (json!({}), "processed", "order has no items")
    } else {
        (
            json!({
                "customer": "ada",
                "items": [
                    {"sku": "A-1", "qty": 2, "unit_price": 9.99},
                    {"sku": "B-2", "qty": 1, "unit_price": 5}
                ],
                "currency": "EUR"
            }),
            "awaiting_payment",
            "awaiting payment of 24.98 EUR",
        )
    }
}

fn component(file: &str) -> Vec<u8> {
    let path = support::plugins_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `cargo xtask guests`; this test runs from `cargo xtask test`)",
            path.display()
        )
    })
}

/// When a version was asked to decide, and until when it may have (`None`: to the end).
struct Window {
    version: &'static str,
    from: SystemTime,
    until: Option<SystemTime>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs plugins/dist/order-ts.wasm and order-py.wasm; `cargo xtask test` runs it after `guests`"]
async fn a_running_host_swaps_order_from_rust_to_typescript_to_python_and_back_losing_nothing() {
    let started = Instant::now();
    // Read first: a missing component fails the test before any host starts.
    let ports = [("order-ts.wasm", "0.1.0-ts"), ("order-py.wasm", "0.1.0-py")]
        .map(|(file, version)| (component(file), version));
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.http.upload_timeout_ms = UPLOAD_WITHIN.as_millis() as u64;
    let host = HostProcess::start(&config, "polyglot").await;
    let http = reqwest::Client::builder()
        .timeout(UPLOAD_WITHIN)
        .build()
        .unwrap();
    wait_for_active(&host.base, "order", RUST, Instant::now(), SWITCH_WITHIN).await;

    // The steady stream: one order every ORDER_EVERY, until stopped. A POST the host does not
    // accept is an order lost, kept to be reported.
    let placed: Arc<Mutex<Vec<(Uuid, usize)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let stream = {
        let (placed, refused, stop, http) =
            (placed.clone(), refused.clone(), stop.clone(), http.clone());
        let url = host.url("/api/orders");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ORDER_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0usize;
            while !stop.is_cancelled() {
                tick.tick().await;
                let (body, _, _) = order(n);
                let answer = match http.post(&url).json(&body).send().await {
                    Ok(response) if response.status() == StatusCode::CREATED => {
                        response.json::<Value>().await.ok()
                    }
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        refused.lock().unwrap().push(format!("{status}: {text}"));
                        None
                    }
                    Err(error) => {
                        refused.lock().unwrap().push(error.to_string());
                        None
                    }
                };
                if let Some(id) = answer
                    .as_ref()
                    .and_then(|a| a["order_id"].as_str())
                    .and_then(|id| id.parse().ok())
                {
                    placed.lock().unwrap().push((id, n));
                }
                n += 1;
            }
        })
    };
    tokio::time::sleep(DECIDING_FOR).await;

    // Hand the stream to each port in turn, then back to Rust. Each port is uploaded while the
    // version before it decides (the host compiles it off the event path), then activated.
    // Each window runs from the activation request to the next switch seen.
    let mut windows = vec![Window {
        version: RUST,
        from: SystemTime::UNIX_EPOCH,
        until: None,
    }];
    let mut timings = Vec::new();
    let [typescript, python] = ports;
    for (upload, version) in [
        (Some(typescript.0), typescript.1),
        (Some(python.0), python.1),
        (None, RUST),
    ] {
        if let Some(bytes) = upload {
            let size = bytes.len();
            let upload_started = Instant::now();
            let upload = support::upload_version(&http, &host.base, "order", ADMIN_TOKEN, bytes)
                .send()
                .await
                .expect("upload");
            let status = upload.status();
            let uploaded: Value = upload.json().await.unwrap_or(Value::Null);
            assert_eq!(
                status,
                StatusCode::CREATED,
                "uploading {version}: {uploaded}"
            );
            assert_eq!(uploaded["version"], version, "{uploaded}");
            timings.push(format!(
                "upload {version} ({:.1} MiB): {:.1} s",
                size as f64 / (1024.0 * 1024.0),
                upload_started.elapsed().as_secs_f64()
            ));
        }
        let from = SystemTime::now();
        let activate_started = Instant::now();
        let activate = support::activate_version(&http, &host.base, "order", ADMIN_TOKEN, version)
            .send()
            .await
            .expect("activate");
        let status = activate.status();
        let text = activate.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "activating {version}: {text}");
        let put_took = activate_started.elapsed();
        let switched = wait_for_active(
            &host.base,
            "order",
            version,
            activate_started,
            SWITCH_WITHIN,
        )
        .await;
        // The version before may decide orders already taken until the switch was seen.
        windows.last_mut().expect("a window").until = Some(SystemTime::now() + SWITCH_SLACK);
        windows.push(Window {
            version,
            from,
            until: None,
        });
        timings.push(format!(
            "activate {version}: PUT {:.1} s, running after {:.1} s",
            put_took.as_secs_f64(),
            switched.as_secs_f64()
        ));
        tokio::time::sleep(DECIDING_FOR).await;
    }
    stop.cancel();
    stream.await.expect("the order stream ran to its end");
    let refused = refused.lock().unwrap().clone();
    let placed = placed.lock().unwrap().clone();
    println!("{}", timings.join("\n"));
    assert!(
        refused.is_empty(),
        "{} of {} orders were not accepted: {refused:?}",
        refused.len(),
        refused.len() + placed.len()
    );

    // Every order accepted is decided exactly once, as every language decides it, by a
    // version that was active then.
    let checker = TestHost {
        host: None,
        config: config.clone(),
        base: host.base.clone(),
        http: http.clone(),
    };
    let deadline = Instant::now() + ALL_DECIDED_WITHIN;
    let mut decided: Vec<(&'static str, usize)> = windows.iter().map(|w| (w.version, 0)).collect();
    for (order_id, n) in &placed {
        let (_, status, reason) = order(*n);
        let within = deadline.saturating_duration_since(Instant::now());
        let view = checker.wait_for_version(*order_id, 1, within).await;
        assert_eq!(view["status"], status, "{order_id}: {view}");
        let history = checker.history(*order_id).await;
        assert_eq!(history.len(), 1, "{order_id}: {history:?}");
        let entry = &history[0];
        assert_eq!(entry["outcome"], "transitioned", "{order_id}: {entry}");
        assert_eq!(entry["reason"], reason, "{order_id}: {entry}");
        let version = entry["plugin_version"].as_str().unwrap_or_default();
        let at = humantime::parse_rfc3339(entry["at"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{order_id}: {e}: {entry}"));
        let window = windows
            .iter()
            .position(|w| {
                w.version == version && at >= w.from && w.until.is_none_or(|until| at <= until)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{order_id} decided by {version:?} outside the times it was active: {entry}\n{}",
                    log_digest(&host.log)
                )
            });
        decided[window].1 += 1;
    }
    println!(
        "{} orders in {:.1} s, decided per activation: {decided:?}",
        placed.len(),
        started.elapsed().as_secs_f64()
    );
    for (version, count) in &decided {
        assert!(*count > 0, "{version} decided no order: {decided:?}");
    }
    // Not one invocation failed, not even one retried into a success.
    for version in [RUST, "0.1.0-ts", "0.1.0-py"] {
        let sample = |result: &str| {
            format!(
                "orderpipe_plugin_invocations_total{{plugin=\"order\",result=\"{result}\",version=\"{version}\"}}"
            )
        };
        let ok = host.metric(&sample("ok")).await;
        let failed = host.metric(&sample("failed")).await;
        assert!(
            ok > 0.0 && failed == 0.0,
            "{version}: {ok} invocations ok, {failed} failed"
        );
        // A fresh instance for every one of them: a new one (each start-up measured) or the
        // last one returned to its start (the default), never one that kept its state; and
        // each language's instances do get returned.
        let instances = |origin: &str| {
            format!(
                "orderpipe_plugin_instances_total{{origin=\"{origin}\",plugin=\"order\",version=\"{version}\"}}"
            )
        };
        let new = host.metric(&instances("new")).await;
        let returned = host.metric(&instances("returned")).await;
        let reused = host.metric(&instances("reused")).await;
        let started = host
            .metric(&format!(
                "orderpipe_plugin_instantiation_seconds_count{{plugin=\"order\",version=\"{version}\"}}"
            ))
            .await;
        assert_eq!(
            (new + returned, reused),
            (ok, 0.0),
            "{version}: a new or returned instance per invocation ({new} new, {returned} returned)"
        );
        assert_eq!(
            started, new,
            "{version}: each new instance's start-up measured"
        );
        assert!(
            returned > 0.0,
            "{version}: no instance was returned to its start"
        );
    }
    host.stop().await;
}
