//! Hot-swapping the order plugin on two running host processes through the admin API, and
//! rolling it back, under a steady stream of orders: both switch within 2 s, nothing is
//! lost or failed, and the history shows which version decided each order. Invalid uploads
//! are refused and change nothing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::Value;
use support::process::{HostProcess, log_digest};
use support::{ADMIN_TOKEN, TestHost, config, orderpipe_plugin};
use uuid::Uuid;

/// How soon every host must run a newly activated version.
const SWITCH_WITHIN: Duration = Duration::from_secs(2);

fn component(name: &str) -> Vec<u8> {
    let path = support::plugins_dir().join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask plugins`)", path.display()))
}

/// Waits until `host` reports `version` as its active order plugin; returns how long after
/// `since` that was.
async fn wait_for_version(host: &HostProcess, version: &str, since: Instant) -> Duration {
    support::wait_for_active(&host.base, "order", version, since, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_switch_to_a_new_version_and_back_without_losing_an_order() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.plugins.watch_interval_ms = 200;
    let a = HostProcess::start(&config, "swap-a").await;
    let b = HostProcess::start(&config, "swap-b").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // A steady stream of orders, alternating between the two hosts.
    let placed: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let stream = {
        let (placed, stop, http) = (placed.clone(), stop.clone(), http.clone());
        let bases = [a.base.clone(), b.base.clone()];
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let response = http
                    .post(format!("{}/api/orders", bases[n % 2]))
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(response.status(), StatusCode::CREATED);
                let answer: Value = response.json().await.unwrap();
                placed
                    .lock()
                    .unwrap()
                    .push(answer["order_id"].as_str().unwrap().parse().unwrap());
                n += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Upload v2 through host A, activate it through host B.
    let upload =
        support::upload_version(&http, &a.base, "order", ADMIN_TOKEN, component("order_v2"))
            .send()
            .await
            .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let uploaded: Value = upload.json().await.unwrap();
    assert_eq!(uploaded["version"], "0.2.0");
    assert_eq!(uploaded["sha256"].as_str().unwrap().len(), 64);

    let put_started = Instant::now();
    let v2_from = SystemTime::now();
    let activate = support::activate_version(&http, &b.base, "order", ADMIN_TOKEN, "0.2.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        activate.status(),
        StatusCode::OK,
        "{}",
        activate.text().await.unwrap()
    );
    // The version is active once the registry says so, when the PUT returns.
    let activated_at = Instant::now();
    let v2_everywhere = SystemTime::now() + SWITCH_WITHIN;
    println!(
        "PUT /active took {:?} (it compiles the version if this host had not yet)",
        put_started.elapsed()
    );
    let (to_v2_a, to_v2_b) = tokio::join!(
        wait_for_version(&a, "0.2.0", activated_at),
        wait_for_version(&b, "0.2.0", activated_at)
    );
    println!("switch to 0.2.0: host a {to_v2_a:?}, host b {to_v2_b:?}");
    assert!(
        to_v2_a <= SWITCH_WITHIN && to_v2_b <= SWITCH_WITHIN,
        "a {to_v2_a:?}, b {to_v2_b:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Roll back: activate the earlier version again.
    let v1_from = SystemTime::now();
    let rollback = support::activate_version(&http, &a.base, "order", ADMIN_TOKEN, "0.1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(rollback.status(), StatusCode::OK);
    let rolled_back_at = Instant::now();
    let v1_everywhere = SystemTime::now() + SWITCH_WITHIN;
    let (back_a, back_b) = tokio::join!(
        wait_for_version(&a, "0.1.0", rolled_back_at),
        wait_for_version(&b, "0.1.0", rolled_back_at)
    );
    println!("rollback to 0.1.0: host a {back_a:?}, host b {back_b:?}");
    assert!(
        back_a <= SWITCH_WITHIN && back_b <= SWITCH_WITHIN,
        "a {back_a:?}, b {back_b:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    stream.await.expect("the order stream never got a non-201");

    // Every order is processed exactly once, by the version that was active when it was
    // decided: 0.1.0 before the activation, 0.2.0 once both hosts switched, 0.1.0 again after
    // the rollback (during a switch window either version may decide).
    let checker = TestHost {
        host: None,
        config: config.clone(),
        base: a.base.clone(),
        http: http.clone(),
    };
    let placed = placed.lock().unwrap().clone();
    let (mut v1_before, mut v2_between, mut v1_after) = (0, 0, 0);
    for order_id in &placed {
        let view = checker
            .wait_for_version(*order_id, 1, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "processed", "{order_id}");
        let history = checker.history(*order_id).await;
        assert_eq!(history.len(), 1, "{order_id}: {history:?}");
        let entry = &history[0];
        assert_eq!(entry["outcome"], "transitioned");
        let version = entry["plugin_version"].as_str().unwrap();
        let reason = entry["reason"].as_str().unwrap();
        assert_eq!(version == "0.2.0", reason.starts_with("v2: "), "{entry}");
        let at = humantime::parse_rfc3339(entry["at"].as_str().unwrap()).unwrap();
        let may_be_v2 = at >= v2_from && at <= v1_everywhere;
        let may_be_v1 = at <= v2_everywhere || at >= v1_from;
        match version {
            "0.2.0" => {
                assert!(
                    may_be_v2,
                    "{order_id} decided by 0.2.0 outside its window: {entry}"
                );
                v2_between += 1;
            }
            "0.1.0" => {
                assert!(
                    may_be_v1,
                    "{order_id} decided by 0.1.0 while 0.2.0 was active everywhere: {entry}"
                );
                if at < v2_from {
                    v1_before += 1
                } else {
                    v1_after += 1
                }
            }
            other => panic!("unexpected version {other}"),
        }
    }
    println!(
        "{} orders: {v1_before} by 0.1.0 before, {v2_between} by 0.2.0, {v1_after} by 0.1.0 around and after the rollback",
        placed.len()
    );
    assert!(v1_before > 0 && v2_between > 0 && v1_after > 0);

    a.stop().await;
    b.stop().await;
}

/// With polling slowed to 30 s, both hosts still switch within 2 s of an activation and of a
/// rollback: the announcement made them look, and their logs and metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_switches_every_host_long_before_its_next_poll() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.plugins.watch_interval_ms = 30_000;
    let a = HostProcess::start(&config, "announce-a").await;
    let b = HostProcess::start(&config, "announce-b").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let upload =
        support::upload_version(&http, &a.base, "order", ADMIN_TOKEN, component("order_v2"))
            .send()
            .await
            .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);

    let mut times = Vec::new();
    for (version, through, announcements) in [("0.2.0", &b, 1.0), ("0.1.0", &a, 2.0)] {
        let activate =
            support::activate_version(&http, &through.base, "order", ADMIN_TOKEN, version)
                .send()
                .await
                .unwrap();
        assert_eq!(activate.status(), StatusCode::OK);
        let activated_at = Instant::now();
        let (on_a, on_b) = tokio::join!(
            wait_for_version(&a, version, activated_at),
            wait_for_version(&b, version, activated_at)
        );
        println!("switch to {version} with polling every 30 s: host a {on_a:?}, host b {on_b:?}");
        assert!(
            on_a <= SWITCH_WITHIN && on_b <= SWITCH_WITHIN,
            "a {on_a:?}, b {on_b:?}"
        );
        for host in [&a, &b] {
            let heard = host
                .metric("orderpipe_plugin_announcements_received_total{plugin=\"order\"}")
                .await;
            assert!(
                heard >= announcements,
                "{}: {heard} announcements",
                host.base
            );
            let switched = host
                .metric(
                    "orderpipe_plugin_switches_total{plugin=\"order\",trigger=\"announcement\"}",
                )
                .await;
            assert_eq!(switched, announcements, "{}", host.base);
        }
        times.push((on_a, on_b));
    }
    for host in [&a, &b] {
        let log = std::fs::read_to_string(&host.log).unwrap_or_default();
        let switches: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("switched plugin version"))
            .collect();
        assert_eq!(switches.len(), 2, "{}", log_digest(&host.log));
        assert!(
            switches.iter().all(|line| line.contains("announcement")),
            "{switches:?}"
        );
    }
    println!("announcement switch times (a, b): {times:?}");
    a.stop().await;
    b.stop().await;
}

/// With embedded backends (one process per data directory) the announcement stays inside the
/// process: the admin API's activation reaches the worker at once, not at the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_host_switches_on_its_own_announcement() {
    let data = tempfile::tempdir().unwrap();
    let mut config = orderpipe::config::Config::default();
    config.backends.data_dir = data.path().to_path_buf();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.plugins.dir = support::plugins_dir();
    config.plugins.watch_interval_ms = 30_000;
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.log.filter = "warn".into();
    let host = TestHost::start(config).await;
    let upload = support::upload_version(
        &host.http,
        &host.base,
        "order",
        ADMIN_TOKEN,
        component("order_v2"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let activate = support::activate_version(&host.http, &host.base, "order", ADMIN_TOKEN, "0.2.0")
        .send()
        .await
        .unwrap();
    assert_eq!(activate.status(), StatusCode::OK);
    let activated_at = Instant::now();
    let sample = "orderpipe_plugin_switches_total{plugin=\"order\",trigger=\"announcement\"}";
    while host.metric(sample).await < 1.0 {
        assert!(
            activated_at.elapsed() < SWITCH_WITHIN,
            "the embedded host did not switch within {SWITCH_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("embedded host switched after {:?}", activated_at.elapsed());
    let order = host.create_order(None).await;
    host.wait_for_version(order, 1, Duration::from_secs(30))
        .await;
    let history = host.history(order).await;
    assert_eq!(history[0]["plugin_version"], "0.2.0", "{history:?}");
}

/// A change nobody announced (written to the registry directly, as if the announcement was
/// lost) still reaches the host at its next poll, and the host says polling found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_an_announcement_is_found_by_polling() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.plugins.watch_interval_ms = 1_000;
    let host = HostProcess::start(&config, "unannounced").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let upload = support::upload_version(
        &http,
        &host.base,
        "order",
        ADMIN_TOKEN,
        component("order_v2"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let uploaded: Value = upload.json().await.unwrap();

    let store = orderpipe::backend::cassandra::CassandraStore::connect(&config.cassandra)
        .await
        .expect("Cassandra");
    let registry = orderpipe::backend::cassandra::registry::CassandraRegistry::new(
        store.session(),
        &config.cassandra.keyspace,
        &config.plugins.registry_scope,
    )
    .await
    .expect("registry");
    use orderpipe::backend::registry::{ActiveVersion, PluginRegistry as _};
    registry
        .set_active(&ActiveVersion {
            name: "order".into(),
            version: "0.2.0".into(),
            sha256: uploaded["sha256"].as_str().unwrap().to_owned(),
            activated_at_ms: orderpipe::order::now_ms(),
        })
        .await
        .expect("set_active");
    let written_at = Instant::now();
    let took = wait_for_version(&host, "0.2.0", written_at).await;
    println!("unannounced activation found by polling (every 1 s) after {took:?}");
    assert!(took <= Duration::from_millis(1_500), "{took:?}");
    assert_eq!(
        host.metric("orderpipe_plugin_switches_total{plugin=\"order\",trigger=\"polling\"}")
            .await,
        1.0
    );
    let log = std::fs::read_to_string(&host.log).unwrap_or_default();
    let switch = log
        .lines()
        .find(|line| line.contains("switched plugin version"))
        .unwrap_or_else(|| panic!("{}", log_digest(&host.log)));
    assert!(switch.contains("polling"), "{switch}");
    host.stop().await;
}

/// Sends an upload's headers declaring `length` bytes of body, and no body; returns the
/// answer's status code and text (bounded in time).
async fn oversized_upload(base: &str, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/plugins/order/versions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/wasm\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write headers");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s, before any body was sent")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// (what, body, token, content type, expected status, expected error text)
type UploadCase = (
    &'static str,
    Vec<u8>,
    Option<&'static str>,
    &'static str,
    StatusCode,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uploads_are_refused_and_change_nothing() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.plugins.max_component_bytes = 1024 * 1024;
    let host = TestHost::start(config).await;
    let before = host
        .http
        .get(host.url("/api/plugins/order"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    let before: Value = before.json().await.unwrap();
    assert_eq!(before["active"]["version"], "0.1.0");
    assert!(before["limits"]["fuel"].as_u64().is_some(), "{before}");

    let upload = |body: Vec<u8>, token: Option<&str>, content_type: &str| {
        let mut request = host
            .http
            .post(host.url("/api/plugins/order/versions"))
            .header("content-type", content_type.to_owned())
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let cases: Vec<UploadCase> = vec![
        (
            "no token",
            component("order_v2"),
            None,
            "application/wasm",
            StatusCode::UNAUTHORIZED,
            "Bearer",
        ),
        (
            // Refused before the body is read: the host must still read it (up to the upload
            // limit) before answering, or a client still writing sees a reset connection.
            "no token, half a megabyte still being sent",
            vec![0; 512 * 1024],
            None,
            "application/wasm",
            StatusCode::UNAUTHORIZED,
            "Bearer",
        ),
        (
            "wrong content type, half a megabyte still being sent",
            vec![0; 512 * 1024],
            Some(ADMIN_TOKEN),
            "application/octet-stream",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/wasm",
        ),
        (
            "wrong token",
            component("order_v2"),
            Some("nope"),
            "application/wasm",
            StatusCode::UNAUTHORIZED,
            "wrong",
        ),
        (
            "not wasm at all",
            b"hello".to_vec(),
            Some(ADMIN_TOKEN),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a valid WebAssembly component",
        ),
        (
            "an empty component (wrong world)",
            vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00],
            Some(ADMIN_TOKEN),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "orderpipe world",
        ),
        (
            "another plugin's component",
            component("hostile"),
            Some(ADMIN_TOKEN),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "says it is plugin \"hostile\"",
        ),
        (
            "an illegal state machine",
            component("bad_machine"),
            Some(ADMIN_TOKEN),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid state machine",
        ),
        (
            "wrong content type",
            component("order_v2"),
            Some(ADMIN_TOKEN),
            "application/json",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/wasm",
        ),
    ];
    for (what, body, token, content_type, status, needle) in cases {
        let response = upload(body, token, content_type)
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e:?}"));
        assert_eq!(response.status(), status, "{what}");
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{what}: {answer}");
    }
    // Over the size limit: the host refuses from the declared length without reading the
    // body and closes the connection, so a client still writing 2 MiB may see the connection
    // reset before it reads the answer. Declare the length, send no body, read the answer.
    let (status, answer) = oversized_upload(&host.base, 2 * 1024 * 1024).await;
    assert_eq!(status, 413, "over the size limit: {answer}");
    assert!(
        answer.contains("over the limit"),
        "over the size limit: {answer}"
    );

    // Activating a version that was never uploaded is refused too.
    let response = support::activate_version(&host.http, &host.base, "order", ADMIN_TOKEN, "9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let after: Value = host
        .http
        .get(host.url("/api/plugins/order"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, before, "a refused upload changed the registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deploys_lists_and_rolls_back() {
    let mut config = config("order");
    config.admin.token = Some(ADMIN_TOKEN.into());
    let host = TestHost::start(config).await;
    let v2 = support::plugins_dir().join("order_v2.wasm");

    let deployed = orderpipe_plugin(&host, &["deploy", "--component", v2.to_str().unwrap()]);
    assert!(deployed.contains("uploaded order 0.2.0"), "{deployed}");
    assert!(deployed.contains("activated order 0.2.0"), "{deployed}");

    let listed = orderpipe_plugin(&host, &["list"]);
    assert!(listed.contains("order (active 0.2.0)"), "{listed}");
    assert!(listed.contains("* 0.2.0"), "{listed}");
    assert!(listed.contains("fuel"), "limits are shown: {listed}");

    let rolled = orderpipe_plugin(&host, &["rollback", "order"]);
    assert!(rolled.contains("from 0.2.0 to 0.1.0"), "{rolled}");
    let after: Value = host
        .http
        .get(host.url("/api/plugins/order"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["active"]["version"], "0.1.0");
}
