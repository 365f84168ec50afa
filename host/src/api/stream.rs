//! Live order streams, as Server-Sent Events:
//!
//! - `GET /api/<pipeline>/<id>/stream`: first the order's current state (event `status`,
//!   `id:` its version), then each entry recorded for it (event `entry`, `id:` the version
//!   it moved the order to), on whichever host decided it. A client reconnecting with
//!   `Last-Event-ID: <version>` gets exactly the entries after that version (no `status`):
//!   the stream subscribes to the change feed first, then reads the missed entries from the
//!   store's history, then follows the feed, sending each version once, in order.
//! - `GET /api/<pipeline>/stream`: the entries of every order of the pipeline (or of one
//!   `customer`) from now on; ids are `<order id>:<version>`. Live only: it does not replay.
//!
//! The store is the truth and the feed a hint: a version jump, a subscriber that fell behind
//! the feed (or a feed that re-subscribed), and a periodic check read the store's history, so
//! a lost feed message delays an entry, never drops it. Each stream runs as a task that ends
//! when the client goes, the stream reaches `stream.max_lifetime_ms`, or the host stops; it
//! holds its place in [`super::stream_bounds`] meanwhile, and hears changes through
//! [`super::stream_hub`] (only its order's, for an order stream). This module never writes
//! anything.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::records::{history_json, not_found, parse_order_id, view_json};
use super::stream_bounds::StreamPermit;
use super::{ApiError, AppState, PipelineRoute};
use crate::backend::OrderStore;
use crate::backend::feed::{Change, ChangeSubscription, FeedItem};
use crate::order::{HistoryEntry, OrderView};
use crate::telemetry::Metrics;

/// The request header a reconnecting client names the last event it received with.
const LAST_EVENT_ID: &str = "last-event-id";
/// History entries read from the store per page while catching up.
const HISTORY_PAGE: usize = 100;
/// How often an order stream checks the store for entries the feed did not bring (a
/// publisher that failed): the longest such an entry waits.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Orders a pipeline stream remembers the last version of (to fill gaps from the store);
/// the oldest is forgotten past it.
const MAX_TRACKED_ORDERS: usize = 1_000;
/// Events waiting between a stream's task and its connection; a slow client fills it, then
/// the task falls behind the feed and catches up from the store.
const OUTBOX: usize = 16;
/// What the client is told to wait before reconnecting (the SSE `retry:` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// The heartbeat comment's text.
const HEARTBEAT: &str = "heartbeat";
/// Why a stream read the store's history: the feed said changes may have been missed (this
/// stream fell behind, or the feed re-subscribed) ...
const MISSED: &str = "missed";
/// ... a change's version jumped past the next one (a publication was lost) ...
const GAP: &str = "gap";
/// ... or the periodic check ([`RESYNC_INTERVAL`]).
const TICK: &str = "tick";

/// The client went away (or the stream must end): stop.
struct Gone;

/// `Last-Event-ID`: absent, or an order version.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
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

/// What to do with a change of version `version` when the client has `last`.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Already sent (a redelivery, or read from the store first): skip it.
    Duplicate,
    /// The very next version: send it.
    Next,
    /// Versions in between were missed: read them from the store.
    Gap,
}

fn step(last: u64, version: u64) -> Step {
    if version <= last {
        Step::Duplicate
    } else if version == last + 1 {
        Step::Next
    } else {
        Step::Gap
    }
}

/// The `status` event: the order as `GET /api/<pipeline>/<id>` shows it.
fn status_event(pipeline: &PipelineRoute, view: OrderView) -> Event {
    let id = view.version.to_string();
    Event::default()
        .event("status")
        .id(id)
        .data(view_json(pipeline, view).to_string())
}

/// The `entry` event: one recorded entry and the status it left the order in.
fn entry_event(
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
fn lagged_event() -> Event {
    Event::default().event("lagged").data(
        json!({"message": "this stream fell behind; orders it had not sent before may have \
                changed: read them again"})
        .to_string(),
    )
}

/// The sending side of one stream.
struct Outbox {
    sender: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    first: bool,
}

impl Outbox {
    async fn send(&mut self, name: &'static str, event: Event) -> Result<(), Gone> {
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
    fn caught_up(&self, cause: &'static str) {
        self.metrics
            .stream_catch_ups
            .with_label_values(&[cause])
            .inc();
    }
}

/// How a stream's entry ids are written.
#[derive(Clone, Copy)]
enum Ids {
    /// `<version>`: one order's stream.
    Version,
    /// `<order id>:<version>`: a pipeline's stream.
    OrderAndVersion,
}

/// Sends the entries of `order_id` after `*last` from the store's history, advancing `*last`.
/// A store outage is logged and left for the next catch-up.
async fn catch_up(
    store: &dyn OrderStore,
    pipeline: &PipelineRoute,
    order_id: Uuid,
    last: &mut u64,
    ids: Ids,
    out: &mut Outbox,
) -> Result<(), Gone> {
    loop {
        let page = match store.history_page(order_id, *last, HISTORY_PAGE).await {
            Ok(page) => page,
            Err(error) => {
                out.metrics.backend_error(&error);
                tracing::warn!(%order_id, %error, "a stream could not read the history; trying again later");
                return Ok(());
            }
        };
        let full = page.len() == HISTORY_PAGE;
        for entry in &page {
            if entry.seq <= *last {
                continue;
            }
            out.send(
                "entry",
                entry_event(pipeline, order_id, entry, id(ids, order_id, entry.seq)),
            )
            .await?;
            *last = entry.seq;
        }
        if !full {
            return Ok(());
        }
    }
}

fn id(ids: Ids, order_id: Uuid, version: u64) -> String {
    match ids {
        Ids::Version => version.to_string(),
        Ids::OrderAndVersion => format!("{order_id}:{version}"),
    }
}

/// What a stream follows changes with: the store, the feed, the client.
struct Follower {
    store: Arc<dyn OrderStore>,
    pipeline: PipelineRoute,
    subscription: ChangeSubscription,
    out: Outbox,
}

/// A stream about to run: its follower, its place and its end conditions.
struct StreamTask {
    follower: Follower,
    permit: StreamPermit,
    lifetime: Duration,
    shutdown: tokio_util::sync::CancellationToken,
}

impl StreamTask {
    /// Runs `body` until it ends, the client goes, the lifetime is over or the host stops;
    /// the stream's place is freed then.
    fn spawn<F, Fut>(self, body: F)
    where
        F: FnOnce(Follower) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Gone>> + Send + 'static,
    {
        let StreamTask {
            follower,
            permit,
            lifetime,
            shutdown,
        } = self;
        let closed = follower.out.sender.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = body(follower) => {}
                () = tokio::time::sleep(lifetime) => {}
                () = shutdown.cancelled() => {}
                () = closed.closed() => {}
            }
            drop(permit);
        });
    }
}

/// Follows one order: status (or the missed entries), then its entries as they are recorded.
async fn follow_order(
    mut task: Follower,
    order_id: Uuid,
    start: Option<OrderView>,
    mut last: u64,
) -> Result<(), Gone> {
    let store = task.store.clone();
    match start {
        Some(view) => {
            task.out
                .send("status", status_event(&task.pipeline, view))
                .await?
        }
        None => {
            catch_up(
                &*store,
                &task.pipeline,
                order_id,
                &mut last,
                Ids::Version,
                &mut task.out,
            )
            .await?
        }
    }
    let mut resync = tokio::time::interval_at(
        tokio::time::Instant::now() + RESYNC_INTERVAL,
        RESYNC_INTERVAL,
    );
    loop {
        // Why the store must be read now, if it must.
        let cause = tokio::select! {
            item = task.subscription.next() => match item {
                None => return Ok(()),
                Some(FeedItem::MayHaveMissed) => MISSED,
                Some(FeedItem::Change(change))
                    if change.order_id == order_id && change.pipeline == task.pipeline.name =>
                {
                    match step(last, change.version) {
                        Step::Duplicate => continue,
                        Step::Next => {
                            let id = change.version.to_string();
                            let event = entry_event(&task.pipeline, order_id, &change.entry, id);
                            task.out.send("entry", event).await?;
                            last = change.version;
                            continue;
                        }
                        Step::Gap => GAP,
                    }
                }
                Some(FeedItem::Change(_)) => continue,
            },
            _ = resync.tick() => TICK,
        };
        task.out.caught_up(cause);
        catch_up(
            &*store,
            &task.pipeline,
            order_id,
            &mut last,
            Ids::Version,
            &mut task.out,
        )
        .await?;
    }
}

/// The last version a pipeline stream sent of each order it sent, at most
/// [`MAX_TRACKED_ORDERS`] (the oldest forgotten first).
#[derive(Default)]
struct Tracked {
    last: HashMap<Uuid, u64>,
    arrival: VecDeque<Uuid>,
}

impl Tracked {
    fn last(&self, order_id: Uuid) -> Option<u64> {
        self.last.get(&order_id).copied()
    }

    fn sent(&mut self, order_id: Uuid, version: u64) {
        if self.last.insert(order_id, version).is_none() {
            self.arrival.push_back(order_id);
            if self.arrival.len() > MAX_TRACKED_ORDERS
                && let Some(oldest) = self.arrival.pop_front()
            {
                self.last.remove(&oldest);
            }
        }
    }
}

/// Follows every order of the pipeline (of one customer, when asked) from now on.
async fn follow_pipeline(mut task: Follower, customer: Option<String>) -> Result<(), Gone> {
    let store = task.store.clone();
    let mut tracked = Tracked::default();
    let wanted = |change: &Change| {
        change.pipeline == task.pipeline.name
            && customer
                .as_deref()
                .is_none_or(|customer| change.customer.as_deref() == Some(customer))
    };
    loop {
        match task.subscription.next().await {
            None => return Ok(()),
            Some(FeedItem::MayHaveMissed) => {
                task.out.caught_up(MISSED);
                let orders: Vec<(Uuid, u64)> =
                    tracked.last.iter().map(|(id, last)| (*id, *last)).collect();
                for (order_id, mut last) in orders {
                    catch_up(
                        &*store,
                        &task.pipeline,
                        order_id,
                        &mut last,
                        Ids::OrderAndVersion,
                        &mut task.out,
                    )
                    .await?;
                    tracked.sent(order_id, last);
                }
                task.out.send("lagged", lagged_event()).await?;
            }
            Some(FeedItem::Change(change)) if wanted(&change) => {
                let order_id = change.order_id;
                let step = tracked
                    .last(order_id)
                    .map_or(Step::Next, |last| step(last, change.version));
                match step {
                    Step::Duplicate => {}
                    Step::Next => {
                        task.out
                            .send(
                                "entry",
                                entry_event(
                                    &task.pipeline,
                                    order_id,
                                    &change.entry,
                                    id(Ids::OrderAndVersion, order_id, change.version),
                                ),
                            )
                            .await?;
                        tracked.sent(order_id, change.version);
                    }
                    Step::Gap => {
                        task.out.caught_up(GAP);
                        let mut last = tracked.last(order_id).unwrap_or_default();
                        catch_up(
                            &*store,
                            &task.pipeline,
                            order_id,
                            &mut last,
                            Ids::OrderAndVersion,
                            &mut task.out,
                        )
                        .await?;
                        tracked.sent(order_id, last);
                    }
                }
            }
            Some(FeedItem::Change(_)) => {}
        }
    }
}

/// The SSE answer reading what a stream task sends, with heartbeats.
fn sse_answer(state: &AppState, receiver: mpsc::Receiver<Event>) -> Response {
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    let heartbeat = Duration::from_millis(state.streams.config.heartbeat_ms);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text(HEARTBEAT))
        .into_response();
    // Tells a buffering proxy (nginx) to pass events through as they come.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// A stream's place, its feed subscription and its outbox; the answer's receiving side.
async fn open(
    state: &AppState,
    pipeline: &PipelineRoute,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    order: Option<Uuid>,
) -> Result<(StreamTask, mpsc::Receiver<Event>), ApiError> {
    let permit = state
        .streams
        .admit(peer.map(|Extension(ConnectInfo(peer))| peer.ip()))?;
    // Subscribed before anything is read from the store: what is recorded from now on
    // comes through the feed, what was recorded before is in the store.
    let subscription = state.stream_hub.subscribe(order).await;
    let (sender, receiver) = mpsc::channel(OUTBOX);
    let task = StreamTask {
        follower: Follower {
            store: state.store.clone(),
            pipeline: pipeline.clone(),
            subscription,
            out: Outbox {
                sender,
                metrics: state.metrics.clone(),
                first: true,
            },
        },
        permit,
        lifetime: Duration::from_millis(state.streams.config.max_lifetime_ms),
        shutdown: state.streams.shutdown.clone(),
    };
    Ok((task, receiver))
}

/// Streams one record's state and history as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/api/{pipeline}/{order_id}/stream",
    tag = "records",
    params(
        ("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"),
        ("order_id" = Uuid, Path, description = "The record's id"),
        ("Last-Event-ID" = Option<u64>, Header,
         description = "Resume after this version: only the entries recorded after it are sent"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `status` (the record; `id` = its version) unless resuming, then `entry` per recorded entry (`id` = the version it made). Heartbeat comments every `stream.heartbeat_ms`; the stream ends after `stream.max_lifetime_ms` (reconnect with `Last-Event-ID`).",
         content_type = "text/event-stream", body = String),
    )
)]
pub(super) async fn order_stream(
    State(state): State<AppState>,
    Extension(pipeline): Extension<PipelineRoute>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&pipeline, &order_id)?;
    let after = last_event_id(&headers)?;
    let (task, receiver) = open(&state, &pipeline, peer, Some(order_id)).await?;
    let order = match state
        .store
        .load_order(order_id)
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?
    {
        Some(stored) if stored.order.pipeline == pipeline.name => stored.order,
        _ => return Err(not_found(&pipeline, order_id)),
    };
    let (start, last) = match after {
        Some(after) => (None, after),
        None => (Some(order.view()), order.version),
    };
    task.spawn(move |task| follow_order(task, order_id, start, last));
    Ok(sse_answer(&state, receiver))
}

/// `GET /api/<pipeline>/stream` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PipelineStreamQuery {
    /// Only the records of this customer (their `customer` field). With authentication, the
    /// caller's own records instead.
    customer: Option<String>,
}

/// Streams the entries of every record of the pipeline as Server-Sent Events, from now on.
#[utoipa::path(
    get,
    path = "/api/{pipeline}/stream",
    tag = "records",
    params(
        ("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"),
        PipelineStreamQuery,
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `entry` per recorded entry of any record (`id` = `<record id>:<version>`), `lagged` when the stream fell behind. Live only: it does not replay on reconnection. Heartbeat comments every `stream.heartbeat_ms`; the stream ends after `stream.max_lifetime_ms`.",
         content_type = "text/event-stream", body = String),
    )
)]
pub(super) async fn pipeline_stream(
    State(state): State<AppState>,
    Extension(pipeline): Extension<PipelineRoute>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<PipelineStreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    })?;
    let (task, receiver) = open(&state, &pipeline, peer, None).await?;
    task.spawn(move |task| follow_pipeline(task, query.customer));
    Ok(sse_answer(&state, receiver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Outcome;

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

    fn pipeline() -> PipelineRoute {
        PipelineRoute {
            name: "orders".into(),
            entity: "order".into(),
            events: Arc::new(NoLog),
        }
    }

    fn entry(seq: u64) -> HistoryEntry {
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
    async fn framed(event: Event) -> String {
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
    fn resuming_skips_what_was_sent_and_reads_gaps_from_the_store() {
        assert_eq!(step(3, 2), Step::Duplicate);
        assert_eq!(step(3, 3), Step::Duplicate);
        assert_eq!(step(3, 4), Step::Next);
        assert_eq!(step(3, 6), Step::Gap);
        assert_eq!(step(0, 1), Step::Next);
    }

    #[tokio::test]
    async fn a_stream_behind_the_feed_reads_what_it_missed_from_the_store() {
        use crate::backend::embedded::{EmbeddedStore, InProcessFeed};
        use crate::backend::feed::ChangeFeed as _;
        use crate::order::Order;

        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let mut order = Order::new(Uuid::new_v4(), Default::default(), 0);
        store.create_order(&order).await.unwrap();
        let start = order.view();
        // A buffer of one change, and a stream that has not read any yet.
        let feed = InProcessFeed::new(1);
        let subscription = feed.subscribe().await;
        let record = async |order: &mut Order| {
            let entry = entry(order.version + 1);
            order.version += 1;
            order.status = entry.to.clone();
            store
                .record_event(order, order.version - 1, &entry)
                .await
                .unwrap();
            feed.publish(&Change::recorded(order, &entry))
                .await
                .unwrap();
        };
        for _ in 0..4 {
            record(&mut order).await;
        }
        let metrics = Arc::new(Metrics::new());
        let (sender, mut receiver) = mpsc::channel(16);
        let follower = Follower {
            store: store.clone(),
            pipeline: pipeline(),
            subscription,
            out: Outbox {
                sender,
                metrics: metrics.clone(),
                first: true,
            },
        };
        let task = tokio::spawn(follow_order(follower, order.id, Some(start), 0));
        let mut ids = Vec::new();
        for _ in 0..5 {
            let event = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
                .await
                .unwrap()
                .unwrap();
            ids.push(framed(event).await.lines().nth(1).unwrap().to_owned());
        }
        // Then live again, through the feed.
        record(&mut order).await;
        let live = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        ids.push(framed(live).await.lines().nth(1).unwrap().to_owned());
        assert_eq!(ids, ["id: 0", "id: 1", "id: 2", "id: 3", "id: 4", "id: 5"]);
        assert_eq!(
            metrics.stream_catch_ups.with_label_values(&[MISSED]).get(),
            1
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), receiver.recv())
                .await
                .is_err(),
            "nothing twice"
        );
        task.abort();
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

    #[test]
    fn a_pipeline_stream_remembers_a_bounded_number_of_orders() {
        let mut tracked = Tracked::default();
        let first = Uuid::new_v4();
        tracked.sent(first, 1);
        for _ in 0..MAX_TRACKED_ORDERS {
            tracked.sent(Uuid::new_v4(), 1);
        }
        assert_eq!(tracked.last.len(), MAX_TRACKED_ORDERS);
        assert_eq!(tracked.last(first), None, "the oldest is forgotten");
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
