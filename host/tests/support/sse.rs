//! A plain Server-Sent Events reader for tests: one HTTP GET whose body is read as the SSE
//! text format (`event:`, `id:`, `data:` lines, a blank line ends an event, `:` starts a
//! comment such as a heartbeat). Every read is bounded, so a test stops by itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

/// One event as received.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    /// When the event's last byte arrived.
    pub received: Instant,
    /// Milliseconds since the Unix epoch at arrival (to compare with a recorded `at`).
    pub received_ms: i64,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// An open stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    /// Heartbeat (comment) blocks seen so far.
    pub heartbeats: usize,
    /// The `retry:` values seen, in milliseconds.
    pub retries: Vec<u64>,
}

/// A client without a whole-request timeout (a stream lasts), but with a connect timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// GETs `url` with an optional `Last-Event-ID`; the raw answer (for refusals).
pub async fn request(
    http: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(url).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    tokio::time::timeout(Duration::from_secs(15), request.send())
        .await
        .expect("the stream answers within 15 s")
        .expect("request")
}

impl SseStream {
    /// Opens a stream that must be answered 200 `text/event-stream`.
    pub async fn open(http: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> Self {
        let response = request(http, url, last_event_id).await;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            panic!("GET {url}: {status} {body}");
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "GET {url}: content type {content_type}"
        );
        Self {
            response,
            buffer: String::new(),
            heartbeats: 0,
            retries: Vec::new(),
        }
    }

    /// The next event within `within`; `None` if none came (or the stream ended).
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The next event, which must come within `within`.
    pub async fn next(&mut self, within: Duration) -> SseEvent {
        self.next_within(within)
            .await
            .unwrap_or_else(|| panic!("no event within {within:?}"))
    }

    /// Whether the server ended the stream within `within` (events before the end are
    /// skipped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let mut event = String::from("message");
        let mut id = None;
        let mut data: Vec<&str> = Vec::new();
        let mut fields = 0;
        for line in block.lines() {
            if line.is_empty() {
                continue;
            }
            if line.starts_with(':') {
                self.heartbeats += 1;
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match name {
                "event" => event = value.to_owned(),
                "id" => id = Some(value.to_owned()),
                "data" => data.push(value),
                "retry" => {
                    self.retries.push(value.parse().expect("retry is a number"));
                    continue;
                }
                _ => continue,
            }
            fields += 1;
        }
        (fields > 0).then(|| SseEvent {
            event,
            id,
            data: data.join("\n"),
            received: Instant::now(),
            received_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        })
    }
}
