//! The HTTP edge as a hostile client meets it, on a live host (real Kafka, Cassandra and
//! Redis; port 0): slow request heads and idle connections are closed, connections over the cap
//! wait, slow bodies get 408,
//! an unauthenticated or oversized upload is answered before its body is sent, invented
//! methods add no metric series, a client over its rate gets 429 while others are served,
//! and history pages through 1,000 events up to the per-order cap.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestHost, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test here is bounded by this.
const TEST_LIMIT: Duration = Duration::from_secs(240);
const TOKEN: &str = "http-edge-admin-token";

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TEST_LIMIT:?}"))
}

/// Reads from `stream` until the peer closes it (or `limit` passes); returns what was read
/// and when the connection ended (`None`: still open after `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&received).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), None),
        }
    }
}

/// Reads one HTTP answer's head (up to the blank line) within `limit`.
async fn read_head(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut byte),
        )
        .await
        .expect("an answer within the limit")
        .expect("read");
        assert_eq!(read, 1, "connection closed before an answer: {received:?}");
        received.push(byte[0]);
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_and_idle_connections_are_closed_within_the_timeout() {
    bounded("slow heads", async {
        let mut config = config("order");
        config.http.header_read_timeout_ms = 1_000;
        let host = TestHost::start(config).await;
        let addr = host.host.as_ref().expect("running").addr();

        // Half a request head, then nothing.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
        let closed = closed.expect("the slow client is disconnected");
        println!("slow-header client disconnected after {closed:?} (timeout 1 s)");
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_millis(2_500),
            "{closed:?}"
        );

        // A kept-alive connection that goes quiet after one answer.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let closed = closed.expect("the idle connection is closed");
        println!("idle kept-alive connection closed after {closed:?} (timeout 1 s)");
        assert!(closed < Duration::from_millis(2_500), "{closed:?}");

        // A client that keeps up is served as before.
        let (status, _) = host.get("/healthz").await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    bounded("connection cap", async {
        let mut config = config("order");
        config.http.max_connections = 2;
        let host = TestHost::start(config).await;
        let addr = host.host.as_ref().expect("running").addr();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        for stream in [&mut first, &mut second] {
            stream.write_all(request).await.unwrap();
            let (head, _) = read_head(stream, Duration::from_secs(5)).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        // The third connection is accepted by the kernel but not served while two are open.
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(request).await.unwrap();
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(700), third.read(&mut byte)).await;
        assert!(
            waited.is_err(),
            "a third connection was served over the cap of 2"
        );
        drop(first);
        let (head, took) = read_head(&mut third, Duration::from_secs(5)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        println!("the third connection was served {took:?} after the first closed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408() {
    bounded("slow body", async {
        let mut config = config("order");
        config.http.body_read_timeout_ms = 1_000;
        let host = TestHost::start(config).await;
        let addr = host.host.as_ref().expect("running").addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"customer\":",
            )
            .await
            .unwrap();
        let (head, took) = read_head(&mut stream, Duration::from_secs(10)).await;
        println!("stalled body answered after {took:?} (timeout 1 s)");
        assert!(head.starts_with("HTTP/1.1 408"), "{head}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_whole_request_timeout_gets_408() {
    bounded("request timeout", async {
        let mut config = config("order");
        config.http.request_timeout_ms = 1_000;
        config.http.body_read_timeout_ms = 30_000;
        let host = TestHost::start(config).await;
        let addr = host.host.as_ref().expect("running").addr();
        // A body trickling in, a byte every 300 ms: within the pause allowed, not the total.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n",
            )
            .await
            .unwrap();
        let started = Instant::now();
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
            }
        });
        let mut received = Vec::new();
        let mut buffer = [0u8; 1024];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer))
                .await
                .expect("an answer")
                .expect("read");
            assert!(n > 0, "closed without an answer");
            received.extend_from_slice(&buffer[..n]);
        }
        let took = started.elapsed();
        trickle.abort();
        let answer = String::from_utf8_lossy(&received);
        println!("trickling request answered after {took:?} (request timeout 1 s)");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
    })
    .await;
}

/// Uploads `order_v2.wasm` to a host whose common request timeout is 1 ms and whose upload
/// timeout is `upload_timeout_ms`; the answer's status and how long it took.
async fn upload_with_timeout(upload_timeout_ms: u64) -> (StatusCode, Value, Duration) {
    let mut config = config("order");
    config.admin.token = Some(TOKEN.into());
    config.http.request_timeout_ms = 1;
    config.http.upload_timeout_ms = upload_timeout_ms;
    let host = TestHost::start(config).await;
    let component = std::fs::read(support::plugins_dir().join("order_v2.wasm"))
        .expect("plugins/dist/order_v2.wasm (cargo xtask plugins)");
    let started = Instant::now();
    let answer = support::upload_version(&host.http, &host.base, "order", TOKEN, component)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_upload_has_its_own_timeout_for_the_compilation() {
    bounded("upload timeout", async {
        // The compilation takes far longer than the 1 ms every other request gets.
        let (status, body, took) = upload_with_timeout(120_000).await;
        assert_eq!(status, StatusCode::CREATED, "{body} after {took:?}");
        // Past its own limit an upload is answered 408, naming the limit.
        let (status, body, took) = upload_with_timeout(5).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body} after {took:?}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("5 ms"),
            "{body}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_or_oversized_uploads_are_answered_before_the_body_is_sent() {
    bounded("uploads", async {
        let mut config = config("order");
        config.admin.token = Some(TOKEN.into());
        let host = TestHost::start(config).await;
        let addr = host.host.as_ref().expect("running").addr();
        let declared = 30 * 1024 * 1024;
        for (what, auth, status, needle) in [
            ("no token", String::new(), 401, "Bearer"),
            (
                "wrong token",
                "Authorization: Bearer not-the-admin-token\r\n".to_owned(),
                401,
                "wrong",
            ),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /api/plugins/order/versions HTTP/1.1\r\nHost: x\r\n{auth}\
                 Content-Type: application/wasm\r\nContent-Length: {declared}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            // Not a byte of the body is sent: the answer must come from the headers alone.
            let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            println!("{what}: {:?}", answer.lines().next());
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{what}: {answer}"
            );
            assert!(
                answer.to_lowercase().contains("connection: close"),
                "{what}: {answer}"
            );
            assert!(answer.contains(needle), "{what}: {answer}");
        }

        // With the token, a declared length over the upload limit is refused the same way,
        // and so is one over the common limit on a small admin route.
        for (path, method, length) in [
            ("/api/plugins/order/versions", "POST", 64 * 1024 * 1024u64),
            ("/api/plugins/order/limits", "PUT", 10 * 1024 * 1024),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/wasm\r\nContent-Length: {length}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
            assert!(answer.contains("\"error\""), "{path}: {answer}");
        }

        // The record routes refuse a declared length over `http.max_body_bytes` the same way.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 31457280\r\n\r\n",
            )
            .await
            .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("over the limit of 65536 bytes"), "{answer}");

        // A client that sends its whole (refused) body still gets its answer, and its next
        // request on the same client is served.
        let refused = host
            .http
            .post(host.url("/api/plugins/order/versions"))
            .header("content-type", "application/wasm")
            .body(vec![0u8; 512 * 1024])
            .send()
            .await
            .expect("an answer, not a reset");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let (status, _) = host.get("/healthz").await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

/// The `http_requests_total` series `/metrics` shows now.
async fn request_series(host: &TestHost) -> BTreeSet<String> {
    host.metrics_text()
        .await
        .lines()
        .filter(|line| line.starts_with("orderpipe_http_requests_total{"))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_add_no_metric_series() {
    bounded("invented methods", async {
        let host = TestHost::start(config("order")).await;
        let invent = |n: usize| {
            let method = reqwest::Method::from_bytes(format!("FOO{n}").as_bytes()).unwrap();
            host.http.request(method, host.url("/healthz")).send()
        };
        let bar = |path: String| {
            let method = reqwest::Method::from_bytes(b"BAR").unwrap();
            host.http.request(method, host.url(&path)).send()
        };
        // One request of each shape first, so every series that can appear exists.
        let first = invent(0).await.unwrap();
        assert_eq!(first.status(), StatusCode::METHOD_NOT_ALLOWED);
        bar("/random/0".into()).await.unwrap();
        let _ = host.get("/no/such/route").await;
        request_series(&host).await;
        let before = request_series(&host).await;
        for n in 1..=50 {
            invent(n).await.unwrap();
            bar(format!("/random/{n}")).await.unwrap();
        }
        let after = request_series(&host).await;
        assert_eq!(before, after, "new series appeared");
        assert!(
            after
                .iter()
                .all(|series| !series.contains("FOO") && !series.contains("/random"))
        );
        assert!(
            after
                .iter()
                .any(|s| s.contains("method=\"other\"") && s.contains("status=\"4xx\"")),
            "{after:?}"
        );
        println!(
            "{} series after 100 requests with invented methods and paths",
            after.len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_with_retry_after_while_others_are_served() {
    bounded("rate limit", async {
        let mut config = config("order");
        config.http.rate_limit_per_second = 2;
        config.http.rate_limit_burst = 5;
        let host = TestHost::start(config).await;
        let client = |ip: [u8; 4]| {
            reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        };
        let (greedy, other) = (client([127, 0, 0, 1]), client([127, 0, 0, 2]));
        let mut limited = None;
        for n in 0..20 {
            let response = greedy.get(host.url("/healthz")).send().await.unwrap();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some((n, response));
                break;
            }
            assert_eq!(response.status(), StatusCode::OK);
        }
        let (n, response) = limited.expect("the greedy client is limited");
        assert_eq!(n, 5, "the burst is 5");
        let retry_after: u64 = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("too many requests"),
            "{answer}"
        );
        println!("request {n} answered 429, Retry-After: {retry_after}");

        // Another client is served meanwhile, up to its own burst.
        for _ in 0..5 {
            let response = other.get(host.url("/healthz")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        // The greedy client is served again once it waited as told.
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        let response = greedy.get(host.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_1000_events_and_the_cap_is_enforced() {
    bounded("history", async {
        const EVENTS: u64 = 1_000;
        let mut config = config("order");
        // The order's `created` event counts too.
        config.http.max_events_per_order = EVENTS + 1;
        let host = TestHost::start(config).await;
        let order_id = host.create_order(None).await;
        host.wait_for_version(order_id, 1, Duration::from_secs(60))
            .await;
        let url = host.url(&format!("/api/orders/{order_id}/events"));
        let mut posted = futures::stream::iter(0..EVENTS)
            .map(|n| {
                let request = host
                    .http
                    .post(&url)
                    .json(&json!({"type": format!("note_{n}"), "data": {"n": n}}))
                    .send();
                async move { request.await.map(|r| r.status()) }
            })
            .buffer_unordered(8);
        let mut accepted = 0;
        while let Some(status) = posted.next().await {
            assert_eq!(status.unwrap(), StatusCode::ACCEPTED);
            accepted += 1;
        }
        assert_eq!(accepted, EVENTS);
        host.wait_for_version(order_id, EVENTS + 1, Duration::from_secs(180))
            .await;

        // Past the cap: a clear 409 naming it.
        let (status, answer) = host
            .post_raw(
                &format!("/api/orders/{order_id}/events"),
                json!({"type": "one_too_many"}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("limit of 1001 events"),
            "{answer}"
        );

        // Pages of 300: 300, 300, 300, 101, each after the previous one's cursor.
        let mut seqs = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/orders/{order_id}/history?limit=300");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = host.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            pages += 1;
            let entries = page["history"].as_array().unwrap();
            seqs.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(pages, 4);
        assert_eq!(seqs, (1..=EVENTS + 1).collect::<Vec<_>>());

        // The default page and the bounds of `limit` and `cursor`.
        let (status, page) = host.get(&format!("/api/orders/{order_id}/history")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["history"].as_array().unwrap().len(), 100);
        assert_eq!(page["next_cursor"], "100");
        for bad in ["limit=0", "limit=1001", "limit=ten", "cursor=abc"] {
            let (status, answer) = host
                .get(&format!("/api/orders/{order_id}/history?{bad}"))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
            assert!(answer["error"].is_string(), "{bad}: {answer}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    bounded("openapi", async {
        let mut config = config("order");
        config.admin.token = Some(TOKEN.into());
        let host = TestHost::start(config).await;
        let (status, document) = host.get("/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            document["openapi"].as_str().unwrap().starts_with("3.1"),
            "{document}"
        );
        let schemes = &document["components"]["securitySchemes"]["admin_token"];
        assert_eq!(schemes["scheme"], "bearer", "{document}");
        let paths = document["paths"].as_object().expect("paths");
        for expected in [
            "/api/orders",
            "/api/orders/{order_id}",
            "/api/orders/{order_id}/events",
            "/api/orders/{order_id}/history",
            "/api/orders/{order_id}/stream",
            "/api/orders/stream",
            "/api/plugins/{name}/versions",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(expected), "{expected} is not documented");
        }
        let mut operations = 0;
        for (path, item) in paths {
            assert!(!path.contains("{pipeline}"), "{path} was not expanded");
            let concrete = path
                .replace("{order_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{name}", "order");
            for (method, operation) in item.as_object().unwrap() {
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let mut request = host.http.request(method.clone(), host.url(&concrete));
                if operation.get("security").is_some() {
                    request = request.bearer_auth(TOKEN);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                // A live stream never ends by itself: its answer's head is enough.
                let streaming = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                let answer: Value = if streaming {
                    assert_eq!(status, StatusCode::OK, "{method} {path}");
                    Value::Null
                } else {
                    response.json().await.unwrap_or(Value::Null)
                };
                let error = answer["error"].as_str().unwrap_or_default();
                assert!(
                    !error.starts_with("no route for") && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed: {status} {answer}"
                );
                for status in ["400", "404", "408", "413", "429", "503"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} does not document {status}"
                    );
                }
                operations += 1;
            }
        }
        println!("{operations} documented operations, every one routed");
    })
    .await;
}
