//! The order routes.
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
//! it is published.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::backend::IdempotencyClaim;
use crate::order::{CREATED_EVENT, HistoryEntry, Order, OrderRequest, OrderView, now_ms};
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

/// The id of an idempotent order's `created` event: derived from the order id, so every
/// publication of it (retries after a 503, concurrent retries) is one event to the worker,
/// which records an event id once.
fn created_event_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"orderpipe:created")
}

pub(super) async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
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

    let Some(key) = key else {
        let order_id = Uuid::new_v4();
        let message = EventMessage::created(order_id, request.clone(), now_ms());
        accept_order(&state, message, request).await?;
        return Ok(created_answer(order_id, false));
    };

    // The key is claimed before anything is published: no claim, no order (an outage of
    // the store answers 503, never 201).
    let hash = request_hash(&request);
    let fresh_id = Uuid::new_v4();
    let claim = state
        .store
        .claim_idempotency_key(&key, fresh_id, &hash)
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
            match find_order(&state, order_id).await {
                Ok(Some(_)) => {
                    tracing::info!(%order_id, "idempotent retry of a stored order");
                    return Ok(created_answer(order_id, true));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%order_id, %error, "could not look the order up"),
            }
            tracing::info!(%order_id, "idempotent retry of an order not stored yet; publishing it again");
            (order_id, true)
        }
    };
    let mut message = EventMessage::created(order_id, request.clone(), now_ms());
    message.event.id = created_event_id(order_id);
    accept_order(&state, message, request).await?;
    Ok(created_answer(order_id, replayed))
}

/// Publishes an order's `created` event and, once Kafka acknowledged it, stores the order
/// and caches its view (both best effort: the worker stores it from the event anyway).
async fn accept_order(
    state: &AppState,
    message: EventMessage,
    request: OrderRequest,
) -> Result<(), ApiError> {
    let order_id = message.event.order_id;
    let now = message.event.at_ms;
    state
        .events
        .publish(order_id, &message.encode())
        .await
        .inspect_err(|e| state.metrics.backend_error(e))?;

    // Kafka holds the order now: it will be processed whatever happens below.
    let order = Order::new(order_id, request, now);
    if let Err(error) = state.store.store_accepted_order(&order).await {
        state.metrics.backend_error(&error);
        tracing::warn!(%order_id, %error, "order accepted but not yet stored; the worker will store it");
    }
    if let Err(error) = state.cache.put(&order.view()).await {
        state.metrics.backend_error(&error);
        state.metrics.cache_writes_skipped.inc();
    }
    state.metrics.orders_accepted.inc();
    tracing::info!(%order_id, "order accepted");
    Ok(())
}

/// `201 {"order_id", "message"}`, with `Idempotent-Replayed: true` when the order id comes
/// from an earlier request with the same `Idempotency-Key`.
fn created_answer(order_id: Uuid, replayed: bool) -> Response {
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "order_id": order_id, "message": "Order created successfully" })),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The order from the cache, else from the store (refilling the cache).
async fn find_order(state: &AppState, order_id: Uuid) -> Result<Option<OrderView>, ApiError> {
    match state.cache.get(order_id).await {
        Ok(Some(view)) => return Ok(Some(view)),
        Ok(None) => {}
        Err(error) => state.metrics.backend_error(&error),
    }
    find_order_in_store(state, order_id).await
}

/// The order from the store, refilling the cache.
async fn find_order_in_store(
    state: &AppState,
    order_id: Uuid,
) -> Result<Option<OrderView>, ApiError> {
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
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    // A hit answers with the cached JSON as it is: no decoding and encoding per request.
    match state.cache.get_json(order_id).await {
        Ok(Some(text)) => {
            return Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                text,
            )
                .into_response());
        }
        Ok(None) => {}
        Err(error) => state.metrics.backend_error(&error),
    }
    find_order_in_store(&state, order_id)
        .await?
        .map(|view| Json(view).into_response())
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

    #[test]
    fn created_event_id_is_derived_from_the_order_id() {
        let order_id = Uuid::new_v4();
        assert_eq!(created_event_id(order_id), created_event_id(order_id));
        assert_ne!(created_event_id(order_id), order_id);
        assert_ne!(created_event_id(order_id), created_event_id(Uuid::new_v4()));
    }
}
