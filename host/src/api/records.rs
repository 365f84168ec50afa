//! The record routes of every pipeline: `/api/<pipeline>` (e.g. `/api/orders`,
//! `/api/invoices`). A pipeline's routes only ever see its own records: a record of another
//! pipeline is answered 404 like an unknown id. The examples below say "order"; an invoice
//! is handled the same way on its own topic.
//!
//! `POST /api/orders` answers 201 only after Kafka acknowledged the order; it then stores
//! the new order (status `created`) before answering, so a GET right after never says 404.
//!
//! With an `Idempotency-Key` header, the key is first claimed in the store for a fresh order
//! id (a lightweight transaction, so one key gets one order id, whatever the concurrency).
//! A request whose key was claimed before gets that order id back (`Idempotent-Replayed:
//! true`): if the order is stored it is not published again; if it is not (the first
//! attempt got a 503, or is still in flight) its `created` event is published again. That
//! event's id is derived from the order id, so the worker records it once however often
//! it is published. Keys are scoped by pipeline: one key used on two pipelines makes two
//! records; with a customer's token, by customer too.
//!
//! Every route takes the request's [`Caller`] and applies `auth::roles`: a customer's new
//! record is owned by their token's subject (the body's `customer` is replaced), a record the
//! caller may not see is answered 404 like an unknown id, and an event kind the caller may
//! not post is answered 403.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ApiError, AppState, PipelineRoute};
use crate::auth::Caller;
use crate::auth::roles::Sight;
use crate::backend::{BackendError, IdempotencyClaim, RecordKey};
use crate::order::{
    CREATED_EVENT, DEFAULT_PIPELINE, HistoryEntry, Order, OrderRequest, OrderView, now_ms,
};
use crate::pipeline::message::EventMessage;

/// The longest event type accepted.
const MAX_EVENT_TYPE_BYTES: usize = 64;
/// The most line items one order may have.
const MAX_ITEMS: usize = 1_000;
/// The request header that makes `POST /api/orders` safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header marking an answer for a key that an earlier request claimed.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Records one page of `GET /api/<pipeline>` holds unless the client asks for fewer.
pub(super) const DEFAULT_LIST_LIMIT: usize = 20;
/// The most records one page of `GET /api/<pipeline>` holds.
pub(super) const MAX_LIST_LIMIT: usize = 100;

/// History entries one page holds unless the client asks for fewer (`limit`).
pub(super) const DEFAULT_HISTORY_LIMIT: usize = 100;
/// The most history entries one page holds.
pub(super) const MAX_HISTORY_LIMIT: usize = 1_000;

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than the limit".into())
        } else if super::edge::is_body_timeout(&rejection) {
            ApiError::RequestTimeout("the request body arrived too slowly".into())
        } else {
            ApiError::BadRequest(format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parses a JSON body, naming the offending field on a type error.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else if path == "." {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid field `{path}`: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))?;
    Ok(value)
}

pub(super) fn parse_order_id(pipeline: &PipelineRoute, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("{} id {text:?} is not a UUID", pipeline.entity)))
}

pub(super) fn not_found(pipeline: &PipelineRoute, order_id: Uuid) -> ApiError {
    ApiError::NotFound(format!("{} {order_id} not found", pipeline.entity))
}

/// The key a client's `Idempotency-Key` is claimed under: the key itself for the default
/// pipeline (as before pipelines existed), else prefixed by the pipeline's name and a space
/// (which no client key contains, so no two pipelines' keys can meet). A customer's key is
/// prefixed by `<pipeline>/<subject>` (no pipeline name holds a `/`), so two customers'
/// keys never meet either.
fn scoped_idempotency_key(pipeline: &PipelineRoute, owner: Option<&str>, key: &str) -> String {
    match owner {
        Some(owner) => format!("{}/{owner} {key}", pipeline.name),
        None if pipeline.name == DEFAULT_PIPELINE => key.to_owned(),
        None => format!("{} {key}", pipeline.name),
    }
}

/// The record if the caller may see it; a record it may not see is answered like an unknown
/// id (404), so its existence does not leak.
fn seen_by(
    state: &AppState,
    pipeline: &PipelineRoute,
    caller: &Caller,
    order_id: Uuid,
    view: Option<OrderView>,
) -> Result<OrderView, ApiError> {
    let owner = view.as_ref().and_then(|view| view.customer.as_deref());
    let sight = state
        .auth
        .permissions
        .sight(caller, &pipeline.name, owner)?;
    match (view, sight) {
        (Some(view), Sight::Visible) => Ok(view),
        _ => Err(not_found(pipeline, order_id)),
    }
}

/// The `Idempotency-Key` header: absent, or 1 to 255 visible ASCII characters, once.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "invalid header `Idempotency-Key`: it may be given only once".into(),
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !bytes.iter().all(u8::is_ascii_graphic)
    {
        return Err(ApiError::BadRequest(format!(
            "invalid header `Idempotency-Key`: must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible \
             ASCII characters (no spaces)"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Writes `value` as JSON with every object's keys sorted, so equal requests hash equally
/// however their keys were ordered or spaced.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (n, (key, value)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(values) => {
            out.push('[');
            for (n, value) in values.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(value, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The SHA-256 (hex) of the parsed request in canonical JSON: an empty body and `{}` are the
/// same request, and so are two bodies differing only in spacing or key order.
fn request_hash(request: &OrderRequest) -> String {
    let value = serde_json::to_value(request).expect("an order request always serializes");
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

/// The id of an event posted with an `Idempotency-Key`: derived from the record, the caller
/// and the key, so every publication of it (a retry after a `503` or a timeout, concurrent
/// retries) is one event to the worker, which records an event id once. Two callers' keys
/// never meet (the caller's kind and name are part of it, length-prefixed).
fn keyed_event_id(order_id: Uuid, caller: &Caller, key: &str) -> Uuid {
    let scope = match caller {
        Caller::Anyone | Caller::Admin => String::new(),
        Caller::Customer { subject } => format!("customer/{subject}"),
        Caller::Service { name } => format!("service/{name}"),
    };
    let name = format!("orderpipe:event:{}:{scope}:{key}", scope.len());
    Uuid::new_v5(&order_id, name.as_bytes())
}

/// Publishes a record's event message on its pipeline's log; `what` names it in a `503`.
async fn publish(
    state: &AppState,
    pipeline: &PipelineRoute,
    message: &EventMessage,
    what: &str,
) -> Result<(), ApiError> {
    pipeline
        .events
        .publish(message.event.order_id, &message.encode())
        .await
        .map_err(|error| {
            state.metrics.backend_error(&error);
            unacknowledged(error, what)
        })
}

/// A publication Kafka did not acknowledge in time. Its outcome is unknown (a broker may have
/// written the message and failed before answering, and the worker would then process it),
/// so the `503` says so and how to retry without applying it twice.
fn unacknowledged(error: BackendError, what: &str) -> ApiError {
    match error {
        BackendError::Unavailable { backend, detail } => {
            tracing::warn!(backend, %detail, "publication not acknowledged; answering 503");
            ApiError::Unavailable(format!(
                "{backend} unavailable: the {what} may or may not have been accepted; retry \
                 with the same Idempotency-Key to have it applied once"
            ))
        }
        refused => refused.into(),
    }
}

/// Accepts a new record: answered once its event log acknowledged it.
#[utoipa::path(
    post,
    path = "/api/{pipeline}",
    tag = "records",
    params(
        ("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"),
        ("Idempotency-Key" = Option<String>, Header,
         description = "Makes the request safe to retry: 1–255 visible ASCII characters, kept 24 h"),
    ),
    request_body(content = OrderRequest, content_type = "application/json",
                 description = "Every field is optional; an empty body is a record too"),
    responses(
        (status = 201, description = "Accepted", body = super::openapi::Created),
        (status = 422, description = "The Idempotency-Key was used with another request", body = super::openapi::ErrorBody),
    )
)]
pub(super) async fn create_order(
    State(state): State<AppState>,
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let owner = state
        .auth
        .permissions
        .owner_of_new_record(&caller, &pipeline.name)?;
    let key = idempotency_key(&headers)?;
    let bytes = body_bytes(body)?;
    let mut request: OrderRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        OrderRequest::default()
    } else {
        parse_json(&bytes)?
    };
    // A customer's record is theirs, whatever the body says.
    if let Some(owner) = &owner {
        request.customer = Some(owner.clone());
    }
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "one {} has at most {MAX_ITEMS} items, this one has {}",
            pipeline.entity,
            request.items.len()
        )));
    }

    let Some(key) = key else {
        let order_id = Uuid::new_v4();
        let message = EventMessage::created(order_id, request.clone(), now_ms());
        accept_order(&state, &pipeline, message, request).await?;
        return Ok(created_answer(&pipeline, order_id, false));
    };

    // The key is claimed before anything is published: no claim, no order (an outage of
    // the store answers 503, never 201).
    let hash = request_hash(&request);
    let fresh_id = Uuid::new_v4();
    let claim = state
        .store
        .claim_idempotency_key(
            &scoped_idempotency_key(&pipeline, owner.as_deref(), &key),
            fresh_id,
            &hash,
        )
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?;
    let (order_id, replayed) = match claim {
        IdempotencyClaim::Claimed => (fresh_id, false),
        IdempotencyClaim::Existing {
            order_id,
            request_hash,
        } => {
            if request_hash != hash {
                return Err(ApiError::Unprocessable(format!(
                    "Idempotency-Key {key:?} was used with a different request"
                )));
            }
            // Stored means an earlier attempt was acknowledged: answer with it, publish
            // nothing. A failed lookup is treated as "not stored": publishing again is harmless.
            match find_order(&state, &pipeline, order_id).await {
                Ok(Some(_)) => {
                    tracing::info!(%order_id, "idempotent retry of a stored order");
                    return Ok(created_answer(&pipeline, order_id, true));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%order_id, %error, "could not look the order up"),
            }
            tracing::info!(%order_id, "idempotent retry of an order not stored yet; publishing it again");
            (order_id, true)
        }
    };
    let message = EventMessage::created_idempotently(order_id, request.clone(), now_ms());
    accept_order(&state, &pipeline, message, request).await?;
    Ok(created_answer(&pipeline, order_id, replayed))
}

/// Publishes an order's `created` event and, once Kafka acknowledged it, stores the order
/// and caches its view (both best effort: the worker stores it from the event anyway).
async fn accept_order(
    state: &AppState,
    pipeline: &PipelineRoute,
    message: EventMessage,
    request: OrderRequest,
) -> Result<(), ApiError> {
    let order_id = message.event.order_id;
    let now = message.event.at_ms;
    publish(state, pipeline, &message, &pipeline.entity).await?;

    // Kafka holds the order now: it will be processed whatever happens below.
    let order = Order::in_pipeline(&pipeline.name, order_id, request, now);
    if let Err(error) = state.store.store_accepted_order(&order).await {
        state.metrics.backend_error(&error);
        tracing::warn!(%order_id, %error, "order accepted but not yet stored; the worker will store it");
    }
    if let Err(error) = state.cache.put(&order.view()).await {
        state.metrics.backend_error(&error);
        state.metrics.cache_writes_skipped.inc();
    }
    state.metrics.orders_accepted.inc();
    tracing::info!(pipeline = %pipeline.name, %order_id, "order accepted");
    Ok(())
}

/// `201 {"order_id", "message": "Order created successfully"}` (for invoices
/// `{"invoice_id", "message": "Invoice created successfully"}`), with `Idempotent-Replayed:
/// true` when the id comes from an earlier request with the same `Idempotency-Key`.
fn created_answer(pipeline: &PipelineRoute, order_id: Uuid, replayed: bool) -> Response {
    let mut answer = serde_json::Map::new();
    answer.insert(pipeline.id_field(), json!(order_id));
    answer.insert(
        "message".into(),
        json!(format!(
            "{} created successfully",
            capitalized(&pipeline.entity)
        )),
    );
    let mut response = (StatusCode::CREATED, Json(Value::Object(answer))).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `invoice` → `Invoice`.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The view as the pipeline's routes answer it: `order_id` named after the entity
/// (`invoice_id`), the pipeline tag left out (the route says it).
pub(super) fn view_json(pipeline: &PipelineRoute, view: OrderView) -> Value {
    let mut value = serde_json::to_value(view).expect("an order view always serializes");
    if let Value::Object(map) = &mut value {
        map.remove("pipeline");
        if let Some(id) = map.remove("order_id") {
            map.insert(pipeline.id_field(), id);
        }
    }
    value
}

/// The record from the cache, else from the store (refilling the cache); `None` when it does
/// not exist or belongs to another pipeline.
async fn find_order(
    state: &AppState,
    pipeline: &PipelineRoute,
    order_id: Uuid,
) -> Result<Option<OrderView>, ApiError> {
    match state.cache.get(order_id).await {
        Ok(Some(view)) => return Ok((view.pipeline == pipeline.name).then_some(view)),
        Ok(None) => {}
        Err(error) => state.metrics.backend_error(&error),
    }
    let Some(stored) = state.store.load_order(order_id).await? else {
        return Ok(None);
    };
    if stored.order.pipeline != pipeline.name {
        return Ok(None);
    }
    let view = stored.order.view();
    if let Err(error) = state.cache.put(&view).await {
        state.metrics.backend_error(&error);
        state.metrics.cache_writes_skipped.inc();
    }
    Ok(Some(view))
}

/// The record's current state (from the cache, else the store).
#[utoipa::path(
    get,
    path = "/api/{pipeline}/{order_id}",
    tag = "records",
    params(("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"), ("order_id" = Uuid, Path, description = "The record's id")),
    responses((status = 200, description = "The record", body = super::openapi::RecordView))
)]
pub(super) async fn get_order(
    State(state): State<AppState>,
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&pipeline, &order_id)?;
    let view = find_order(&state, &pipeline, order_id).await?;
    let view = seen_by(&state, &pipeline, &caller, order_id, view)?;
    Ok(Json(view_json(&pipeline, view)))
}

/// The body of `POST …/<id>/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventRequest {
    /// The event type (not `created`, which is the record's own creation).
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    kind: String,
    /// What the plugin needs to decide it, e.g. `{"amount": 24.98}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Map<String, Value>>,
}

/// Publishes an event for the record; the worker has its plugin decide it. With an
/// `Idempotency-Key`, the event's id is derived from the record, the caller and the key
/// ([`keyed_event_id`]): a retry is the same event, recorded once, and answered with the same
/// `event_id`. The first publication the worker meets is the one recorded; a retry should
/// repeat the request as it was.
#[utoipa::path(
    post,
    path = "/api/{pipeline}/{order_id}/events",
    tag = "records",
    params(
        ("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"),
        ("order_id" = Uuid, Path, description = "The record's id"),
        ("Idempotency-Key" = Option<String>, Header,
         description = "Makes the request safe to retry: the same key on the same record is one event, applied once"),
    ),
    request_body(content = EventRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted", body = super::openapi::EventAccepted),
        (status = 409, description = "The record has reached `http.max_events_per_order`", body = super::openapi::ErrorBody),
    )
)]
pub(super) async fn post_event(
    State(state): State<AppState>,
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let order_id = parse_order_id(&pipeline, &order_id)?;
    let key = idempotency_key(&headers)?;
    let bytes = body_bytes(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "an event needs a JSON body: {\"type\": \"...\", \"data\": {...}}".into(),
        ));
    }
    let request: EventRequest = parse_json(&bytes)?;
    let kind = request.kind.trim();
    if kind.is_empty() || kind.len() > MAX_EVENT_TYPE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "invalid field `type`: must be 1 to {MAX_EVENT_TYPE_BYTES} characters"
        )));
    }
    if kind == CREATED_EVENT {
        return Err(ApiError::BadRequest(format!(
            "invalid field `type`: {CREATED_EVENT:?} is reserved for the {}'s creation",
            pipeline.entity
        )));
    }
    let view = find_order(&state, &pipeline, order_id).await?;
    let view = seen_by(&state, &pipeline, &caller, order_id, view)?;
    state
        .auth
        .permissions
        .may_post(&caller, &pipeline.name, kind)?;
    // The version counts the events recorded so far; events still on their way are not
    // counted, so the cap may be passed by the few in flight, never by more.
    let cap = state.http.max_events_per_order;
    if view.version >= cap {
        return Err(ApiError::Conflict(format!(
            "{} {order_id} has reached the limit of {cap} events (http.max_events_per_order)",
            pipeline.entity
        )));
    }
    let data = Value::Object(request.data.unwrap_or_default());
    let mut message = EventMessage::event(order_id, kind.to_owned(), data, now_ms());
    if let Some(key) = &key {
        message.event.id = keyed_event_id(order_id, &caller, key);
    }
    publish(&state, &pipeline, &message, "event").await?;
    state.metrics.events_accepted.inc();
    let mut answer = serde_json::Map::new();
    answer.insert(pipeline.id_field(), json!(order_id));
    answer.insert("event_id".into(), json!(message.event.id));
    answer.insert("message".into(), json!("Event accepted"));
    Ok((StatusCode::ACCEPTED, Json(Value::Object(answer))))
}

pub(super) fn history_json(entry: &HistoryEntry) -> Value {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(entry.at_ms.max(0) as u64);
    json!({
        "seq": entry.seq,
        "event_id": entry.event_id,
        "event_type": entry.event_type,
        "outcome": entry.outcome,
        "from": entry.from,
        "to": entry.to,
        "at": humantime::format_rfc3339_millis(at).to_string(),
        "reason": entry.reason,
        "plugin": entry.plugin,
        "plugin_version": entry.plugin_version,
    })
}

/// `GET …/<id>/history` query: `limit` entries after the `cursor` of the previous page.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// Entries on this page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(value_type = Option<String>, pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

/// A page's `limit` query parameter: `default` when absent, else a whole number from 1 to
/// `max`, or a 400 naming the problem. Shared by every paged route.
fn page_limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<usize>()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid query parameter `limit`: must be a whole number from 1 to {max} \
                 (got {text:?})"
            ))
        })
}

impl HistoryQuery {
    /// (after this sequence number, at most this many entries), or a 400 naming the problem.
    fn page(&self) -> Result<(u64, usize), ApiError> {
        let limit = page_limit(
            self.limit.as_deref(),
            DEFAULT_HISTORY_LIMIT,
            MAX_HISTORY_LIMIT,
        )?;
        let after = match self.cursor.as_deref() {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid query parameter `cursor`: use the `next_cursor` of the previous \
                     page (got {text:?})"
                ))
            })?,
        };
        Ok((after, limit))
    }
}

/// One page of the record's history, oldest first.
#[utoipa::path(
    get,
    path = "/api/{pipeline}/{order_id}/history",
    tag = "records",
    params(("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"), ("order_id" = Uuid, Path, description = "The record's id"), HistoryQuery),
    responses((status = 200, description = "A page of the history", body = super::openapi::HistoryPage))
)]
pub(super) async fn get_history(
    State(state): State<AppState>,
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    Path(order_id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&pipeline, &order_id)?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    })?;
    let (after, limit) = query.page()?;
    let stored = state.store.load_order(order_id).await?;
    match &stored {
        Some(stored) if stored.order.pipeline != pipeline.name => {
            return Err(not_found(&pipeline, order_id));
        }
        _ => {}
    }
    if caller != Caller::Anyone {
        let view = stored.as_ref().map(|stored| stored.order.view());
        seen_by(&state, &pipeline, &caller, order_id, view)?;
    }
    let history = state.store.history_page(order_id, after, limit).await?;
    if history.is_empty() && stored.is_none() {
        return Err(not_found(&pipeline, order_id));
    }
    // A full page may have a next one; the cursor is the last sequence number it holds.
    let next_cursor = (history.len() == limit)
        .then(|| history.last().map(|entry| entry.seq.to_string()))
        .flatten();
    let mut answer = serde_json::Map::new();
    answer.insert(pipeline.id_field(), json!(order_id));
    answer.insert(
        "history".into(),
        Value::Array(history.iter().map(history_json).collect()),
    );
    answer.insert("next_cursor".into(), json!(next_cursor));
    Ok(Json(Value::Object(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn accepts_visible_ascii_idempotency_keys() {
        assert_eq!(idempotency_key(&headers(&[])).unwrap(), None);
        let key = "order-2024/01:abc_DEF.~!";
        assert_eq!(
            idempotency_key(&headers(&[key.as_bytes()]))
                .unwrap()
                .as_deref(),
            Some(key)
        );
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES);
        assert!(idempotency_key(&headers(&[longest.as_bytes()])).is_ok());
    }

    #[test]
    fn refuses_bad_idempotency_keys() {
        let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        for bad in [
            &[b"".as_slice()][..],
            &[b"has space"],
            &[b"tab\there"],
            &["caf\u{e9}".as_bytes()],
            &[too_long.as_bytes()],
            &[b"one", b"two"],
        ] {
            let error = idempotency_key(&headers(bad)).unwrap_err();
            assert!(
                matches!(&error, ApiError::BadRequest(text) if text.contains("Idempotency-Key")),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn request_hash_ignores_spacing_and_key_order() {
        let a: OrderRequest = parse_json(
            br#"{"customer":"ada","items":[{"sku":"A","qty":2,"unit_price":9.99}],"attributes":{"b":1,"a":{"y":2,"x":1}}}"#,
        )
        .unwrap();
        let b: OrderRequest = parse_json(
            br#"{ "attributes": {"a": {"x": 1, "y": 2}, "b": 1},
                  "items": [{"unit_price": 9.990, "qty": 2, "sku": "A"}], "customer": "ada" }"#,
        )
        .unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_eq!(request_hash(&a).len(), 64);
        assert_eq!(
            request_hash(&OrderRequest::default()),
            request_hash(&parse_json(b"{}").unwrap())
        );
        let c: OrderRequest = parse_json(br#"{"customer":"bob"}"#).unwrap();
        assert_ne!(request_hash(&a), request_hash(&c));
    }

    /// An event log these unit tests never publish to.
    struct Unused;

    #[async_trait::async_trait]
    impl crate::backend::EventLog for Unused {
        async fn publish(&self, _: Uuid, _: &[u8]) -> crate::backend::BackendResult<()> {
            unreachable!("not published in unit tests")
        }
        async fn publish_dead_letter(
            &self,
            _: Option<Uuid>,
            _: &[u8],
        ) -> crate::backend::BackendResult<()> {
            unreachable!("not published in unit tests")
        }
        async fn ping(&self) -> crate::backend::BackendResult<()> {
            Ok(())
        }
    }

    fn route(name: &str, entity: &str) -> PipelineRoute {
        PipelineRoute {
            name: name.into(),
            entity: entity.into(),
            events: std::sync::Arc::new(Unused),
        }
    }

    #[test]
    fn idempotency_keys_are_scoped_by_pipeline_except_the_default_one() {
        assert_eq!(
            scoped_idempotency_key(&route("orders", "order"), None, "k1"),
            "k1"
        );
        assert_eq!(
            scoped_idempotency_key(&route("invoices", "invoice"), None, "k1"),
            "invoices k1"
        );
        assert_eq!(
            scoped_idempotency_key(&route("orders", "order"), Some("alice"), "k1"),
            "orders/alice k1"
        );
        // No client key contains a space, so an orders key can never look like a scoped one.
        assert!(idempotency_key(&headers(&[b"invoices k1"])).is_err());
    }

    #[test]
    fn answers_name_the_entity() {
        let invoices = route("invoices", "invoice");
        let id = Uuid::new_v4();
        let view = Order::in_pipeline("invoices", id, OrderRequest::default(), 0).view();
        let value = view_json(&invoices, view);
        assert_eq!(value["invoice_id"], json!(id));
        assert!(value.get("order_id").is_none() && value.get("pipeline").is_none());
        assert_eq!(capitalized("invoice"), "Invoice");
        let orders = route("orders", "order");
        let view = Order::new(id, OrderRequest::default(), 0).view();
        let value = view_json(&orders, view);
        assert_eq!(value["order_id"], json!(id));
        assert!(value.get("pipeline").is_none());
    }

    #[test]
    fn a_keyed_event_id_is_one_per_record_caller_and_key() {
        let order_id = Uuid::new_v4();
        let alice = Caller::Customer {
            subject: "alice".into(),
        };
        let id = keyed_event_id(order_id, &alice, "k1");
        assert_eq!(id, keyed_event_id(order_id, &alice, "k1"), "a retry");
        let created = EventMessage::created_idempotently(order_id, OrderRequest::default(), 1);
        assert_ne!(id, created.event.id);
        let others = [
            keyed_event_id(Uuid::new_v4(), &alice, "k1"),
            keyed_event_id(order_id, &alice, "k2"),
            keyed_event_id(order_id, &Caller::Admin, "k1"),
            keyed_event_id(
                order_id,
                &Caller::Service {
                    name: "alice".into(),
                },
                "k1",
            ),
            // The scope is length-prefixed: a subject with the separator cannot pose as a key.
            keyed_event_id(
                order_id,
                &Caller::Customer {
                    subject: "alice:k".into(),
                },
                "1",
            ),
        ];
        for other in others {
            assert_ne!(other, id);
        }
        assert_eq!(
            keyed_event_id(order_id, &Caller::Admin, "k1"),
            keyed_event_id(order_id, &Caller::Anyone, "k1"),
            "without auth, and for the admin, keys are the record's alone"
        );
    }

    #[tokio::test]
    async fn an_unacknowledged_publication_says_its_outcome_is_unknown() {
        let error = unacknowledged(
            BackendError::unavailable("kafka", "Message timed out at broker 127.0.0.1:19092"),
            "event",
        );
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = serde_json::from_slice::<Value>(&body).unwrap()["error"].to_string();
        assert!(
            text.starts_with("\"kafka unavailable: the event may"),
            "{text}"
        );
        assert!(text.contains("same Idempotency-Key"), "{text}");
        assert!(
            !text.contains("127.0.0.1"),
            "the driver's message stays in the log: {text}"
        );
        // A refusal is not an outage: no retry advice.
        let refused = unacknowledged(BackendError::Invalid("too large".into()), "event");
        assert!(matches!(refused, ApiError::Internal(_)), "{refused:?}");
    }
}

/// `GET /api/<pipeline>` query: `limit` records after the `cursor` of the previous page;
/// `customer` names whose records to list for callers that are not themselves a customer.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordsQuery {
    /// Records on this page (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(value_type = Option<String>, pattern = "^-?[0-9]+\\.[0-9a-f-]{36}$")]
    cursor: Option<String>,
    /// Whose records: required without a customer's token (`mode = "none"`, admins,
    /// services); ignored with one (a customer lists their own).
    customer: Option<String>,
}

impl RecordsQuery {
    /// (before this key, at most this many records), or a 400 naming the problem.
    fn page(&self) -> Result<(Option<RecordKey>, usize), ApiError> {
        let limit = page_limit(self.limit.as_deref(), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
        let before = match self.cursor.as_deref() {
            None => None,
            Some(text) => Some(parse_record_cursor(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid query parameter `cursor`: use the `next_cursor` of the previous \
                     page (got {text:?})"
                ))
            })?),
        };
        Ok((before, limit))
    }
}

/// `<created at ms>.<id>`: where the next page of a customer's list starts.
fn record_cursor(key: &RecordKey) -> String {
    format!("{}.{}", key.created_at_ms, key.id)
}

fn parse_record_cursor(text: &str) -> Option<RecordKey> {
    let (created_at_ms, id) = text.split_once('.')?;
    Some(RecordKey {
        created_at_ms: created_at_ms.parse().ok()?,
        id: Uuid::parse_str(id).ok()?,
    })
}

/// The longest `customer` accepted in a list query.
const MAX_CUSTOMER_BYTES: usize = 256;

/// The caller's records, newest first (a customer's own; others name the customer).
#[utoipa::path(
    get,
    path = "/api/{pipeline}",
    tag = "records",
    params(("pipeline" = String, Path, description = "The pipeline (`orders`, `invoices`, …)"), RecordsQuery),
    responses((status = 200, description = "A page of records, newest first", body = super::openapi::RecordPage))
)]
pub(super) async fn list_records(
    State(state): State<AppState>,
    Extension(pipeline): Extension<Arc<PipelineRoute>>,
    caller: Caller,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    })?;
    let (before, limit) = query.page()?;
    let customer = match &caller {
        Caller::Customer { subject } => subject.clone(),
        _ => match query.customer.as_deref() {
            Some(customer) if !customer.is_empty() && customer.len() <= MAX_CUSTOMER_BYTES => {
                customer.to_owned()
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `customer` (1 to {MAX_CUSTOMER_BYTES} bytes) is required \
                     to list {} without a customer's token",
                    pipeline.name
                )));
            }
        },
    };
    // A service without access to this pipeline is refused whoever it asks about.
    state
        .auth
        .permissions
        .sight(&caller, &pipeline.name, Some(&customer))?;
    let keys = state
        .store
        .customer_records(&pipeline.name, &customer, before, limit)
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?;
    let mut records = Vec::with_capacity(keys.len());
    let mut seen = std::collections::HashSet::new();
    for key in &keys {
        if !seen.insert(key.id) {
            continue;
        }
        if let Some(view) = find_order(&state, &pipeline, key.id).await?
            && view.customer.as_deref() == Some(customer.as_str())
        {
            records.push(view_json(&pipeline, view));
        }
    }
    let next_cursor = (keys.len() == limit)
        .then(|| keys.last().map(record_cursor))
        .flatten();
    Ok(Json(
        json!({ "records": records, "next_cursor": next_cursor }),
    ))
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn record_cursors_round_trip_and_refuse_garbage() {
        let key = RecordKey {
            created_at_ms: 1_700_000_000_123,
            id: Uuid::new_v4(),
        };
        assert_eq!(parse_record_cursor(&record_cursor(&key)), Some(key));
        for bad in ["", "12", "x.y", "12.not-a-uuid", ".abc"] {
            assert_eq!(parse_record_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_limits_are_bounded() {
        let query = |limit: &str| RecordsQuery {
            limit: Some(limit.into()),
            ..RecordsQuery::default()
        };
        assert_eq!(
            RecordsQuery::default().page().unwrap(),
            (None, DEFAULT_LIST_LIMIT)
        );
        assert_eq!(query("100").page().unwrap().1, 100);
        for bad in ["0", "101", "-1", "ten"] {
            assert!(query(bad).page().is_err(), "{bad}");
        }
    }
}
