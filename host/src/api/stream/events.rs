//! The text a stream sends: its events (`status`, `entry`, `lagged`), their ids, the
//! `Last-Event-ID` a reconnecting client sends back, and the [`Outbox`] every event goes
//! through (counted, the first one carrying `retry:`). Nothing here reads the store or the feed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::Event;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::super::records::{history_json, view_json};
use super::super::{ApiError, PipelineRoute};
use crate::order::{HistoryEntry, OrderView};
use crate::telemetry::Metrics;

/// The request header a reconnecting client names the last event it received with.
pub(super) const LAST_EVENT_ID: &str = "last-event-id";
/// What the client is told to wait before reconnecting (the SSE `retry:` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The client went away (or the stream must end): stop.
pub(super) struct Gone;

/// `Last-Event-ID`: absent, or an order version.
pub(super) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid header `Last-Event-ID`: use the `id` of the last event received (an \
                 order version)"
                    .into(),
            )
        })
}

/// The `status` event: the order as `GET /api/<pipeline>/<id>` shows it.
pub(super) fn status_event(pipeline: &PipelineRoute, view: OrderView) -> Event {
    let id = view.version.to_string();
    Event::default()
        .event("status")
        .id(id)
        .data(view_json(pipeline, view).to_string())
}

/// The `entry` event: one recorded entry and the status it left the order in.
pub(super) fn entry_event(
    pipeline: &PipelineRoute,
    order_id: Uuid,
    entry: &HistoryEntry,
    id: String,
) -> Event {
    let mut data = serde_json::Map::new();
    data.insert(pipeline.id_field(), json!(order_id));
    data.insert("version".into(), json!(entry.seq));
    data.insert("status".into(), json!(entry.to));
    data.insert("entry".into(), history_json(entry));
    Event::default()
        .event("entry")
        .id(id)
        .data(Value::Object(data).to_string())
}

/// The `lagged` event of a pipeline stream: changes of orders it did not know may be lost.
pub(super) fn lagged_event() -> Event {
    Event::default().event("lagged").data(
        json!({"message": "this stream fell behind; orders it had not sent before may have \
                changed: read them again"})
        .to_string(),
    )
}

/// The sending side of one stream.
pub(super) struct Outbox {
    pub(super) sender: mpsc::Sender<Event>,
    pub(super) metrics: Arc<Metrics>,
    /// Whether nothing was sent yet (the first event carries `retry:`).
    pub(super) first: bool,
}

impl Outbox {
    pub(super) async fn send(&mut self, name: &'static str, event: Event) -> Result<(), Gone> {
        let event = if std::mem::take(&mut self.first) {
            event.retry(RECONNECT_AFTER)
        } else {
            event
        };
        self.sender.send(event).await.map_err(|_| Gone)?;
        self.metrics
            .stream_events_sent
            .with_label_values(&[name])
            .inc();
        Ok(())
    }

    /// Counts a catch-up from the store, by cause.
    pub(super) fn caught_up(&self, cause: &'static str) {
        self.metrics
            .stream_catch_ups
            .with_label_values(&[cause])
            .inc();
    }
}

/// How a stream's entry ids are written.
#[derive(Clone, Copy)]
pub(super) enum Ids {
    /// `<version>`: one order's stream.
    Version,
    /// `<order id>:<version>`: a pipeline's stream.
    OrderAndVersion,
}

pub(super) fn id(ids: Ids, order_id: Uuid, version: u64) -> String {
    match ids {
        Ids::Version => version.to_string(),
        Ids::OrderAndVersion => format!("{order_id}:{version}"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::order::Outcome;
    use axum::http::HeaderValue;
    use axum::response::IntoResponse as _;
    use axum::response::sse::Sse;
    use std::convert::Infallible;

    /// An event log nothing is published to: framing needs none.
    struct NoLog;

    #[async_trait::async_trait]
    impl crate::backend::EventLog for NoLog {
        async fn publish(&self, _: Uuid, _: &[u8]) -> crate::backend::BackendResult<()> {
            Ok(())
        }
        async fn publish_dead_letter(
            &self,
            _: Option<Uuid>,
            _: &[u8],
        ) -> crate::backend::BackendResult<()> {
            Ok(())
        }
        async fn ping(&self) -> crate::backend::BackendResult<()> {
            Ok(())
        }
    }

    pub(crate) fn pipeline() -> PipelineRoute {
        PipelineRoute {
            name: "orders".into(),
            entity: "order".into(),
            events: Arc::new(NoLog),
        }
    }

    pub(crate) fn entry(seq: u64) -> HistoryEntry {
        HistoryEntry {
            seq,
            event_id: Uuid::nil(),
            event_type: "payment_received".into(),
            outcome: Outcome::Transitioned,
            from: "created".into(),
            to: "paid".into(),
            reason: "paid in full".into(),
            plugin: "order".into(),
            plugin_version: "1.2.0".into(),
            at_ms: 0,
        }
    }

    /// The text an event is sent as.
    pub(crate) async fn framed(event: Event) -> String {
        let response =
            Sse::new(futures::stream::iter([Ok::<_, Infallible>(event)])).into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_entry_is_framed_with_its_version_as_id() {
        let order_id = Uuid::nil();
        let text = framed(entry_event(&pipeline(), order_id, &entry(3), "3".into())).await;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("event: entry"));
        assert_eq!(lines.next(), Some("id: 3"));
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["order_id"], json!(order_id));
        assert_eq!(data["version"], 3);
        assert_eq!(data["status"], "paid");
        assert_eq!(data["entry"]["plugin_version"], "1.2.0");
        assert_eq!(data["entry"]["reason"], "paid in full");
        assert_eq!(lines.next(), Some(""), "an event ends with a blank line");
    }

    #[tokio::test]
    async fn the_status_event_is_the_record_as_get_shows_it() {
        let order = crate::order::Order::new(Uuid::nil(), Default::default(), 0);
        let text = framed(status_event(&pipeline(), order.view())).await;
        assert!(text.starts_with("event: status\nid: 0\ndata: {"), "{text}");
        assert!(text.contains("\"order_id\""), "{text}");
        assert!(!text.contains("\"pipeline\""), "{text}");
    }

    #[test]
    fn last_event_id_is_a_version() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).unwrap(), None);
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("7"));
        assert_eq!(last_event_id(&headers).unwrap(), Some(7));
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("seven"));
        assert!(matches!(
            last_event_id(&headers),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn the_first_event_tells_the_client_when_to_reconnect() {
        let (sender, mut receiver) = mpsc::channel(2);
        let mut out = Outbox {
            sender,
            metrics: Arc::new(Metrics::new()),
            first: true,
        };
        let _ = out.send("lagged", lagged_event()).await;
        let _ = out.send("lagged", lagged_event()).await;
        let first = framed(receiver.recv().await.unwrap()).await;
        let second = framed(receiver.recv().await.unwrap()).await;
        assert!(first.contains("retry: 1000"), "{first}");
        assert!(!second.contains("retry:"), "{second}");
    }
}
