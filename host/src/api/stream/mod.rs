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
//! holds its place in [`bounds`] meanwhile, and hears changes through
//! [`hub`] (only its order's, for an order stream). Nothing here writes.
//!
//! - this file: the two routes, taking a place, subscribing, the SSE answer;
//! - [`events`]: the events' text, ids and `Last-Event-ID`;
//! - [`follow`]: following the feed and catching up from the store;
//! - [`hub`]: the host's one feed subscription, fanned out per order;
//! - [`bounds`]: how many streams may be open.

mod bounds;
mod events;
mod follow;
mod hub;

pub use bounds::StreamBounds;
pub use hub::StreamHub;

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
use tokio::sync::mpsc;
use uuid::Uuid;

use self::events::{Outbox, last_event_id};
use self::follow::{Follower, StreamTask, follow_order, follow_pipeline};
use super::records::{not_found, parse_order_id};
use super::{ApiError, AppState, PipelineRoute};
use crate::auth::Caller;
use crate::auth::roles::Sight;

/// Events waiting between a stream's task and its connection; a slow client fills it, then
/// the task falls behind the feed and catches up from the store.
const OUTBOX: usize = 16;
/// The heartbeat comment's text.
const HEARTBEAT: &str = "heartbeat";

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
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
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
    // A record the caller may not see is answered like an unknown id, as GET does.
    let owner = order.view().customer;
    let sight = state
        .auth
        .permissions
        .sight(&caller, &pipeline.name, owner.as_deref())?;
    if sight != Sight::Visible {
        return Err(not_found(&pipeline, order_id));
    }
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
    /// Only the records of this customer (their `customer` field). A customer signed in
    /// always gets their own records only, whatever this says.
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
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<PipelineStreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    })?;
    let customer = match &caller {
        Caller::Customer { subject } => Some(subject.clone()),
        // A service without access to this pipeline is refused here (403).
        _ => {
            state
                .auth
                .permissions
                .sight(&caller, &pipeline.name, None)?;
            query.customer
        }
    };
    let (task, receiver) = open(&state, &pipeline, peer, None).await?;
    task.spawn(move |task| follow_pipeline(task, customer));
    Ok(sse_answer(&state, receiver))
}
