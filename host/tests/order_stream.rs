//! Live order streams (Server-Sent Events) from the client's side: a change decided by one
//! host's worker reaches a client streaming from another host within a second (real Kafka,
//! Cassandra and Redis); a client reconnecting with `Last-Event-ID` gets exactly what it
//! missed; embedded backends stream within their one process; a client over its stream bound
//! is refused. Every read is bounded.

mod support;

use std::time::{Duration, Instant};

use orderpipe::config::{Config, Mode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::process::HostProcess;
use support::sse::{self, SseStream};
use support::{TestHost, config};
use uuid::Uuid;

/// Every test here is bounded by this.
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// How long a change may take from the deciding worker to a streaming client.
const DELIVERY_LIMIT_MS: i64 = 1_000;
/// How long the worker may take to decide an event (consumer start-up included).
const DECISION_LIMIT: Duration = Duration::from_secs(60);
/// How long a stream is watched to show that nothing more (no duplicate) arrives.
const QUIET: Duration = Duration::from_millis(1_500);

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TEST_LIMIT:?}"))
}

fn order_body(customer: &str) -> Value {
    json!({"customer": customer, "items": [{"sku": "A-1", "qty": 1, "unit_price": 10.0}], "currency": "EUR"})
}

fn payment(order_id: Uuid) -> Value {
    json!({"amount": 10.0, "payment_id": format!("pay-{order_id}")})
}

/// An embedded host (the default backends) on a data directory of its own.
fn embedded_config(data: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.backends.data_dir = data.path().to_path_buf();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.plugins.dir = support::plugins_dir();
    config.log.filter = "warn".into();
    config
}

/// Milliseconds since the epoch of an entry's RFC 3339 `at`.
fn at_ms(entry: &Value) -> i64 {
    let at = entry["at"].as_str().expect("at");
    humantime::parse_rfc3339(at)
        .expect("RFC 3339")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_decided_on_another_host_reaches_the_stream_within_a_second() {
    bounded("two-host stream", async {
        // Host A serves the API only; host B runs the only worker. Same Kafka, Cassandra, Redis.
        let mut api_config = config("order");
        api_config.mode = Mode::Api;
        let mut worker_config = api_config.clone();
        worker_config.mode = Mode::Worker;
        let mut a = TestHost::start(api_config).await;
        let mut b = TestHost::start(worker_config).await;
        let http = sse::client();

        let order_id = a.create_order(Some(&order_body("alice"))).await;
        let view = a.wait_for_version(order_id, 1, DECISION_LIMIT).await;
        let mut stream = SseStream::open(
            &http,
            &a.url(&format!("/api/orders/{order_id}/stream")),
            None,
        )
        .await;
        let status = stream.next(Duration::from_secs(5)).await;
        assert_eq!(status.event, "status");
        assert_eq!(status.id.as_deref(), Some("1"));
        assert_eq!(status.json()["status"], view["status"]);
        assert_eq!(status.json()["order_id"], order_id.to_string());
        assert_eq!(
            stream.retries,
            vec![1_000],
            "the first event says when to reconnect"
        );

        let mut latencies = Vec::new();
        for (n, (kind, data, status)) in [
            ("payment_received", payment(order_id), "paid"),
            ("shipped", json!({}), "shipped"),
        ]
        .into_iter()
        .enumerate()
        {
            let posted = Instant::now();
            a.post_event(order_id, kind, data).await;
            let event = stream.next(DECISION_LIMIT).await;
            let answer = event.json();
            let version = 2 + n as u64;
            assert_eq!(event.event, "entry");
            assert_eq!(event.id, Some(version.to_string()));
            assert_eq!(answer["version"], version);
            assert_eq!(answer["status"], status);
            assert_eq!(answer["entry"]["event_type"], kind);
            assert_eq!(answer["entry"]["plugin"], "order");
            assert!(answer["entry"]["plugin_version"].is_string(), "{answer}");
            assert!(answer["entry"]["reason"].is_string(), "{answer}");
            // Decided on B (its clock) → received by the client of A (same machine's clock).
            let delivery_ms = event.received_ms - at_ms(&answer["entry"]);
            latencies.push((delivery_ms, event.received.duration_since(posted)));
            assert!(
                delivery_ms < DELIVERY_LIMIT_MS,
                "entry {version} reached the client {delivery_ms} ms after B decided it"
            );
        }
        println!("decided on B → SSE client of A (ms), and POST → SSE event: {latencies:?}");
        // A decided nothing: B's worker did, and A streamed it.
        assert_eq!(
            a.metric(
                "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}"
            )
            .await,
            0.0
        );
        assert!(
            b.metric(
                "orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}"
            )
            .await
                >= 3.0
        );
        assert_eq!(
            a.metric("orderpipe_stream_events_sent_total{event=\"entry\"}")
                .await,
            2.0
        );
        assert!(stream.next_within(QUIET).await.is_none(), "nothing more");
        drop(stream);
        b.stop().await;
        a.stop().await;
    })
    .await;
}

/// The same across two `orderpipe serve` processes (API-only A, worker-only B), over more
/// entries, for the latency figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_api_and_worker_processes_stream_within_a_second() {
    bounded("two processes", async {
        let mut api_config = config("order");
        api_config.mode = Mode::Api;
        let mut worker_config = api_config.clone();
        worker_config.mode = Mode::Worker;
        let a = HostProcess::start(&api_config, "stream-api").await;
        let b = HostProcess::start(&worker_config, "stream-worker").await;
        let http = sse::client();
        let a_base = a.base.clone();
        let a_url = |path: &str| format!("{a_base}{path}");
        let post = |path: String, body: Value| {
            let request = http
                .post(a_url(&path))
                .header("content-type", "application/json")
                .body(body.to_string())
                .timeout(Duration::from_secs(15));
            async move {
                let response = request.send().await.expect("request");
                assert!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
                response.json::<Value>().await.expect("JSON")
            }
        };

        let mut delivery_ms = Vec::new();
        for _ in 0..5 {
            let created = post("/api/orders".into(), order_body("erin")).await;
            let order_id: Uuid = created["order_id"].as_str().unwrap().parse().unwrap();
            // The stream opens before B decides the order's creation: that entry streams too.
            let mut stream = SseStream::open(
                &http,
                &a_url(&format!("/api/orders/{order_id}/stream")),
                None,
            )
            .await;
            let status = stream.next(Duration::from_secs(5)).await;
            let mut last: u64 = status.id.as_deref().unwrap().parse().unwrap();
            post(
                format!("/api/orders/{order_id}/events"),
                json!({"type": "payment_received", "data": payment(order_id)}),
            )
            .await;
            post(
                format!("/api/orders/{order_id}/events"),
                json!({"type": "shipped"}),
            )
            .await;
            while last < 3 {
                let event = stream.next(DECISION_LIMIT).await;
                let answer = event.json();
                assert_eq!(event.event, "entry");
                assert_eq!(answer["version"], last + 1, "each version once, in order");
                last += 1;
                delivery_ms.push(event.received_ms - at_ms(&answer["entry"]));
            }
            assert_eq!(stream.next_within(Duration::from_millis(300)).await.map(|e| e.id), None);
        }
        delivery_ms.sort_unstable();
        println!(
            "decided by process B → SSE client of process A, {} entries (ms): median {}, max {}, all {delivery_ms:?}",
            delivery_ms.len(),
            delivery_ms[delivery_ms.len() / 2],
            delivery_ms[delivery_ms.len() - 1],
        );
        assert!(
            delivery_ms.iter().all(|ms| *ms < DELIVERY_LIMIT_MS),
            "{delivery_ms:?}"
        );
        assert_eq!(
            a.metric("orderpipe_events_processed_total{outcome=\"transitioned\",pipeline=\"orders\"}")
                .await,
            0.0,
            "A decides nothing"
        );
        b.stop().await;
        a.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_receives_exactly_the_entries_it_missed() {
    bounded("resume", async {
        let mut host = TestHost::start(config("order")).await;
        let http = sse::client();
        let order_id = host.create_order(Some(&order_body("bob"))).await;
        host.wait_for_version(order_id, 1, DECISION_LIMIT).await;
        let url = host.url(&format!("/api/orders/{order_id}/stream"));

        let mut first = SseStream::open(&http, &url, None).await;
        let status = first.next(Duration::from_secs(5)).await;
        assert_eq!(
            (status.event.as_str(), status.id.as_deref()),
            ("status", Some("1"))
        );
        drop(first);

        // While the client is away: two entries.
        host.post_event(order_id, "payment_received", payment(order_id))
            .await;
        host.post_event(order_id, "shipped", json!({})).await;
        host.wait_for_version(order_id, 3, DECISION_LIMIT).await;

        let mut resumed = SseStream::open(&http, &url, Some("1")).await;
        let missed = [
            resumed.next(Duration::from_secs(5)).await,
            resumed.next(Duration::from_secs(5)).await,
        ];
        let ids: Vec<_> = missed.iter().map(|e| e.id.clone().unwrap()).collect();
        assert_eq!(ids, ["2", "3"], "exactly the missed entries, in order");
        assert!(
            missed.iter().all(|e| e.event == "entry"),
            "no status when resuming"
        );
        assert_eq!(missed[0].json()["status"], "paid");
        assert_eq!(missed[1].json()["status"], "shipped");
        assert!(
            resumed.next_within(QUIET).await.is_none(),
            "nothing twice after the catch-up"
        );

        // Then live, without a gap or a duplicate.
        host.post_event(order_id, "cancel_requested", json!({}))
            .await;
        let live = resumed.next(DECISION_LIMIT).await;
        assert_eq!(
            (live.event.as_str(), live.id.as_deref()),
            ("entry", Some("4"))
        );
        assert_eq!(live.json()["entry"]["event_type"], "cancel_requested");
        assert!(resumed.next_within(QUIET).await.is_none(), "sent once");

        // A client that saw everything gets nothing but what comes next.
        let mut current = SseStream::open(&http, &url, Some("4")).await;
        assert!(current.next_within(QUIET).await.is_none());
        drop(current);

        // Unknown orders and bad ids are answered like the other routes.
        let unknown = sse::request(
            &http,
            &host.url(&format!("/api/orders/{}/stream", Uuid::new_v4())),
            None,
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let body: Value = unknown.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("not found"),
            "{body}"
        );
        let bad = sse::request(&http, &url, Some("yesterday")).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_host_streams_its_own_changes_in_process() {
    bounded("embedded stream", async {
        let data = tempfile::tempdir().unwrap();
        let mut host = TestHost::start(embedded_config(&data)).await;
        let http = sse::client();

        // A customer's stream, opened before anything happens: alice's entries only.
        let mut alice_stream =
            SseStream::open(&http, &host.url("/api/orders/stream?customer=alice"), None).await;
        let alice = host.create_order(Some(&order_body("alice"))).await;
        let bob = host.create_order(Some(&order_body("bob"))).await;

        let mut stream = SseStream::open(
            &http,
            &host.url(&format!("/api/orders/{alice}/stream")),
            None,
        )
        .await;
        let status = stream.next(Duration::from_secs(5)).await;
        assert_eq!(status.event, "status");
        let mut last: u64 = status.id.unwrap().parse().unwrap();
        host.post_event(alice, "payment_received", payment(alice))
            .await;
        host.post_event(bob, "payment_received", payment(bob)).await;
        loop {
            let event = stream.next(Duration::from_secs(10)).await;
            assert_eq!(event.event, "entry");
            let version: u64 = event.id.as_deref().unwrap().parse().unwrap();
            assert_eq!(version, last + 1, "each version once, in order");
            last = version;
            if event.json()["status"] == "paid" {
                break;
            }
        }
        assert!(stream.next_within(QUIET).await.is_none());

        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = alice_stream.next(Duration::from_secs(10)).await;
            assert_eq!(event.event, "entry");
            let answer = event.json();
            assert_eq!(answer["order_id"], alice.to_string(), "only alice's orders");
            assert_eq!(event.id, Some(format!("{alice}:{}", answer["version"])));
            seen.push(answer["status"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.last().map(String::as_str), Some("paid"));
        assert!(
            alice_stream.next_within(QUIET).await.is_none(),
            "never bob's"
        );

        let unknown = sse::request(
            &http,
            &host.url(&format!("/api/orders/{}/stream", Uuid::new_v4())),
            None,
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_stream_bound_is_refused_until_one_closes() {
    bounded("stream bound", async {
        let data = tempfile::tempdir().unwrap();
        let mut config = embedded_config(&data);
        config.stream.max_per_client = 2;
        // Short heartbeats: a closed client is noticed at the next one at the latest.
        config.stream.heartbeat_ms = 200;
        config.stream.max_lifetime_ms = 5_000;
        let mut host = TestHost::start(config).await;
        let http = sse::client();
        let order_id = host.create_order(None).await;
        // Decided before the streams open, so the pipeline stream below stays quiet.
        host.wait_for_version(order_id, 1, DECISION_LIMIT).await;
        let url = host.url(&format!("/api/orders/{order_id}/stream"));

        let first = SseStream::open(&http, &url, None).await;
        let mut second = SseStream::open(&http, &host.url("/api/orders/stream"), None).await;
        assert_eq!(host.metric("orderpipe_streams_open").await, 2.0);
        let refused = sse::request(&http, &url, None).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("stream.max_per_client"),
            "{body}"
        );

        // Closing one frees its place.
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        while host.metric("orderpipe_streams_open").await > 1.0 {
            assert!(
                Instant::now() < deadline,
                "the closed stream was not released"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut third = SseStream::open(&http, &url, None).await;
        assert_eq!(third.next(Duration::from_secs(5)).await.event, "status");

        // Heartbeats keep a quiet stream alive, and a stream ends at its lifetime.
        assert!(
            second
                .next_within(Duration::from_millis(700))
                .await
                .is_none()
        );
        assert!(second.heartbeats >= 2, "{} heartbeats", second.heartbeats);
        assert!(
            third.ends_within(Duration::from_secs(8)).await,
            "the stream ends after stream.max_lifetime_ms"
        );
        host.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_among_many_changing_orders_gets_its_own_once_in_order() {
    bounded("a stream among many", async {
        let data = tempfile::tempdir().unwrap();
        let mut config = embedded_config(&data);
        // A buffer of one change: a stream falls behind whenever two changes of any order are
        // recorded before it reads the first (then it reads the store). Whether that happens
        // here depends on scheduling; api::stream::follow's unit test makes it happen for sure.
        config.stream.buffer = 1;
        let mut host = TestHost::start(config).await;
        let http = sse::client();
        let watched = host.create_order(Some(&order_body("carol"))).await;
        host.wait_for_version(watched, 1, DECISION_LIMIT).await;
        let mut stream = SseStream::open(
            &http,
            &host.url(&format!("/api/orders/{watched}/stream")),
            None,
        )
        .await;
        assert_eq!(
            stream.next(Duration::from_secs(5)).await.id.as_deref(),
            Some("1")
        );

        // Many other orders change at the same time as the watched one.
        let host_ref = &host;
        let others = futures::future::join_all((0..20).map(|_| async move {
            let id = host_ref.create_order(Some(&order_body("dave"))).await;
            host_ref
                .post_event(id, "payment_received", payment(id))
                .await;
            id
        }));
        let watched_events = async {
            host_ref
                .post_event(watched, "payment_received", payment(watched))
                .await;
            host_ref.post_event(watched, "shipped", json!({})).await;
            host_ref
                .post_event(watched, "cancel_requested", json!({}))
                .await;
        };
        futures::future::join(others, watched_events).await;

        let mut ids = Vec::new();
        while ids.len() < 3 {
            let event = stream.next(Duration::from_secs(30)).await;
            assert_eq!(event.event, "entry");
            assert_eq!(event.json()["order_id"], watched.to_string());
            ids.push(event.id.unwrap());
        }
        assert_eq!(ids, ["2", "3", "4"], "every version once, in order");
        assert!(stream.next_within(QUIET).await.is_none(), "no duplicate");
        host.stop().await;
    })
    .await;
}
