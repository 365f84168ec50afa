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
    fn refuses_garbage() {
        assert!(
            EventMessage::decode(b"not json")
                .unwrap_err()
                .contains("undecodable")
        );
    }
}
