//! The order routes.
//!
//! `POST /api/orders` answers 201 only after Kafka acknowledged the order; it then stores
//! the new order (status `created`) before answering, so a GET right after never says 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::order::{CREATED_EVENT, HistoryEntry, Order, OrderRequest, OrderView, now_ms};
use crate::pipeline::message::EventMessage;

/// The longest event type accepted.
const MAX_EVENT_TYPE_BYTES: usize = 64;
/// The most line items one order may have.
const MAX_ITEMS: usize = 1_000;

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than the limit".into())
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

fn parse_order_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("order id {text:?} is not a UUID")))
}

pub(super) async fn create_order(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body_bytes(body)?;
    let request: OrderRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        OrderRequest::default()
    } else {
        parse_json(&bytes)?
    };
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "an order has at most {MAX_ITEMS} items, this one has {}",
            request.items.len()
        )));
    }

    let order_id = Uuid::new_v4();
    let now = now_ms();
    let message = EventMessage::created(order_id, request.clone(), now);
    state
        .events
        .publish(order_id, &message.encode())
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?;

    // Kafka holds the order now: it will be processed whatever happens below.
    let order = Order::new(order_id, request, now);
    if let Err(error) = state.store.create_order(&order).await {
        state.metrics.backend_error(&error);
        tracing::warn!(%order_id, %error, "order accepted but not yet stored; the worker will store it");
    }
    if let Err(error) = state.cache.put(&order.view()).await {
        state.metrics.backend_error(&error);
        state.metrics.cache_writes_skipped.inc();
    }
    state.metrics.orders_accepted.inc();
    tracing::info!(%order_id, "order accepted");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "order_id": order_id, "message": "Order created successfully" })),
    ))
}

/// The order from the cache, else from the store (refilling the cache).
async fn find_order(state: &AppState, order_id: Uuid) -> Result<Option<OrderView>, ApiError> {
    match state.cache.get(order_id).await {
        Ok(Some(view)) => return Ok(Some(view)),
        Ok(None) => {}
        Err(error) => state.metrics.backend_error(&error),
    }
    let Some(stored) = state.store.load_order(order_id).await? else {
        return Ok(None);
    };
    let view = stored.order.view();
    if let Err(error) = state.cache.put(&view).await {
        state.metrics.backend_error(&error);
        state.metrics.cache_writes_skipped.inc();
    }
    Ok(Some(view))
}

pub(super) async fn get_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    find_order(&state, order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("order {order_id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<serde_json::Map<String, Value>>,
}

pub(super) async fn post_event(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let order_id = parse_order_id(&order_id)?;
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
            "invalid field `type`: {CREATED_EVENT:?} is reserved for the order's creation"
        )));
    }
    if find_order(&state, order_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("order {order_id} not found")));
    }
    let data = Value::Object(request.data.unwrap_or_default());
    let message = EventMessage::event(order_id, kind.to_owned(), data, now_ms());
    state
        .events
        .publish(order_id, &message.encode())
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?;
    state.metrics.events_accepted.inc();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "order_id": order_id,
            "event_id": message.event.id,
            "message": "Event accepted",
        })),
    ))
}

fn history_json(entry: &HistoryEntry) -> Value {
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

pub(super) async fn get_history(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    let history = state.store.history(order_id).await?;
    if history.is_empty() && state.store.load_order(order_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("order {order_id} not found")));
    }
    Ok(Json(json!({
        "order_id": order_id,
        "history": history.iter().map(history_json).collect::<Vec<_>>(),
    })))
}
