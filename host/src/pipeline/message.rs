//! The message format on the event log: one JSON object per event, keyed by order id.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::order::{CREATED_EVENT, Event, OrderRequest};

/// One event on the event log. A `created` event carries the order itself, so the worker
/// can process it even if the API's own write to the store did not happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderRequest>,
}

impl EventMessage {
    pub fn created(order_id: Uuid, request: OrderRequest, at_ms: i64) -> Self {
        Self {
            event: Event {
                id: Uuid::new_v4(),
                order_id,
                kind: CREATED_EVENT.to_owned(),
                data: Value::Object(Default::default()),
                at_ms,
            },
            order: Some(request),
        }
    }

    /// The `created` event of an order posted with an `Idempotency-Key`. Its id is derived
    /// from the order id, so every publication of it (the API publishes it again when a retry
    /// finds the order not stored yet) is one event to the worker, which records an event id
    /// once.
    pub fn created_idempotently(order_id: Uuid, request: OrderRequest, at_ms: i64) -> Self {
        let mut message = Self::created(order_id, request, at_ms);
        message.event.id = idempotent_created_event_id(order_id);
        message
    }

    /// Whether this is a `created` event that was published once only (an order posted
    /// without an `Idempotency-Key`): the first event of its order, and the only `created`
    /// one, so where no worker handled it before, the order it describes is the whole state
    /// its decision needs.
    pub fn is_created_published_once(&self) -> bool {
        self.event.kind == CREATED_EVENT
            && self.order.is_some()
            && self.event.id != idempotent_created_event_id(self.event.order_id)
    }

    pub fn event(order_id: Uuid, kind: String, data: Value, at_ms: i64) -> Self {
        Self {
            event: Event {
                id: Uuid::new_v4(),
                order_id,
                kind,
                data,
                at_ms,
            },
            order: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event message always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("undecodable message: {e}"))
    }
}

/// The id of an idempotent order's `created` event ([`EventMessage::created_idempotently`]).
fn idempotent_created_event_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"orderpipe:created")
}

/// What goes to the dead-letter topic: the reason and the original message. Every
/// pipeline's dead letters share the one dead-letter topic; `pipeline` and `topic` say where
/// the message came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    /// The pipeline whose worker gave up on the message.
    #[serde(default)]
    pub pipeline: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The original payload as text (lossy when it was not UTF-8).
    pub payload: String,
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_created_message() {
        let request = OrderRequest {
            customer: Some("ada".into()),
            ..Default::default()
        };
        let message = EventMessage::created(Uuid::new_v4(), request, 42);
        assert_eq!(EventMessage::decode(&message.encode()).unwrap(), message);
    }

    #[test]
    fn an_idempotent_created_event_id_is_derived_from_the_order_id() {
        let order_id = Uuid::new_v4();
        let first = EventMessage::created_idempotently(order_id, OrderRequest::default(), 1);
        let retry = EventMessage::created_idempotently(order_id, OrderRequest::default(), 2);
        assert_eq!(first.event.id, retry.event.id);
        assert_ne!(first.event.id, order_id);
        let other = EventMessage::created_idempotently(Uuid::new_v4(), OrderRequest::default(), 1);
        assert_ne!(first.event.id, other.event.id);
    }

    #[test]
    fn only_a_keyless_created_event_is_published_once() {
        let order_id = Uuid::new_v4();
        assert!(
            EventMessage::created(order_id, OrderRequest::default(), 1).is_created_published_once()
        );
        assert!(
            !EventMessage::created_idempotently(order_id, OrderRequest::default(), 1)
                .is_created_published_once(),
            "published again when a retry finds the order not stored"
        );
        let paid = EventMessage::event(order_id, "paid".into(), Value::Null, 1);
        assert!(!paid.is_created_published_once());
    }

    #[test]
    fn refuses_garbage() {
        assert!(
            EventMessage::decode(b"not json")
                .unwrap_err()
                .contains("undecodable")
        );
    }
}
