//! HTTP load with `wrk` (Debian's, installed by `cargo xtask bench`), the no-op axum
//! handler it is compared with, and `redis-benchmark` for the cache baseline.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// The order every POST sends: two lines, a customer, a currency.
pub const ORDER_BODY: &str = r#"{"customer":"bench","currency":"EUR","items":[{"sku":"A-1","qty":2,"unit_price":9.99},{"sku":"B-2","qty":1,"unit_price":5.0}]}"#;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub requests: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors plus answers outside 2xx/3xx.
    pub errors: u64,
}

/// The Lua glue: what to send, and a `done` hook printing the summary as one JSON line.
const REPORT_LUA: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"errors\":%d,\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"#;

fn post_lua() -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = '{ORDER_BODY}'\nwrk.headers[\"Content-Type\"] = \
         \"application/json\"\n{REPORT_LUA}"
    )
}

fn get_lua(ids_file: &Path) -> String {
    format!(
        "local ids = {{}}\nfor line in io.lines(\"{}\") do ids[#ids + 1] = line end\n\
         math.randomseed(os.time())\n\
         request = function()\n  return wrk.format(\"GET\", \"/api/orders/\" .. ids[math.random(#ids)])\nend\n{REPORT_LUA}",
        ids_file.display()
    )
}

/// Runs `wrk` with `connections` connections for `duration` against `url` with `script`.
pub fn wrk(url: &str, script: &str, connections: u32, duration: Duration) -> WrkResult {
    let dir = std::env::temp_dir().join(format!("orderpipe-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script_path = dir.join(format!("{}.lua", uuid::Uuid::new_v4().simple()));
    std::fs::write(&script_path, script).expect("wrk script");
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&script_path)
        .arg(url)
        .output()
        .expect("wrk runs (cargo xtask bench installs it: apt-get install wrk)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no summary: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let summary: Value = serde_json::from_str(line).expect("wrk summary is JSON");
    let get = |key: &str| summary[key].as_f64().unwrap_or(0.0);
    WrkResult {
        requests: get("requests") as u64,
        rate: get("requests") / (get("duration_us") / 1e6),
        p50_ms: get("p50_us") / 1000.0,
        p99_ms: get("p99_us") / 1000.0,
        errors: get("errors") as u64,
    }
}

pub fn wrk_post(base: &str, connections: u32, duration: Duration) -> WrkResult {
    wrk(
        &format!("{base}/api/orders"),
        &post_lua(),
        connections,
        duration,
    )
}

pub fn wrk_get(base: &str, ids_file: &Path, connections: u32, duration: Duration) -> WrkResult {
    wrk(base, &get_lua(ids_file), connections, duration)
}

/// GETs that walk the ids in order, each of wrk's two threads from its own half, so every
/// id is asked for once until the run has asked for them all (cache misses, on a host whose
/// cache has never seen these orders).
fn get_each_once_lua(ids_file: &Path) -> String {
    format!(
        "local threads = 0\nsetup = function(thread) thread:set(\"tid\", threads); threads = threads + 1 end\n\
         local ids = {{}}\nfor line in io.lines(\"{}\") do ids[#ids + 1] = line end\n\
         local i = 0\n\
         request = function()\n  i = i + 1\n  local at = ((tid or 0) * math.floor(#ids / 2) + i - 1) % #ids + 1\n  \
         return wrk.format(\"GET\", \"/api/orders/\" .. ids[at])\nend\n{REPORT_LUA}",
        ids_file.display()
    )
}

pub fn wrk_get_each_once(
    base: &str,
    ids_file: &Path,
    connections: u32,
    duration: Duration,
) -> WrkResult {
    wrk(base, &get_each_once_lua(ids_file), connections, duration)
}

/// An axum server in this process whose `POST /api/orders` answers what the real one does,
/// without doing anything: the ceiling for the HTTP layer on this machine.
pub async fn serve_noop() -> String {
    async fn created() -> (StatusCode, axum::Json<Value>) {
        (
            StatusCode::CREATED,
            axum::Json(json!({
                "order_id": "00000000-0000-0000-0000-000000000000",
                "message": "Order created successfully",
            })),
        )
    }
    let app = Router::new().route("/api/orders", post(created));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// `redis-benchmark` GET (no pipelining) with `connections` clients: requests per second.
pub fn redis_benchmark_get(port: u16, connections: u32, requests: u32) -> f64 {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &connections.to_string(),
            "-n",
            &requests.to_string(),
            "-P",
            "1",
            "-r",
            "1000",
            "-t",
            "get",
            "--csv",
        ])
        .output()
        .expect("redis-benchmark runs (Debian's redis-tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|rps| rps.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("redis-benchmark printed no GET figure: {stdout}"))
}
