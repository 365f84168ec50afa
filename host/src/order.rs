//! The order domain: what a client posts, what the pipeline stores, what a plugin decides.
//!
//! These are plain Rust types shared by the API, the pipeline and the backends. Nothing in
//! here knows about Kafka, Cassandra, Redis or wasmtime; the plugin runtime translates them
//! to and from the WIT types at its edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use crate::config::DEFAULT_PIPELINE;

fn default_pipeline() -> String {
    DEFAULT_PIPELINE.to_owned()
}

/// The status every order has when the API accepts it, before any plugin has seen it.
pub const INITIAL_STATUS: &str = "created";

/// The event kind of the order's own creation.
pub const CREATED_EVENT: &str = "created";

/// The body of `POST /api/orders`. Every field is optional: an empty body is an order too,
/// as in the original Flask service.
/// (Its OpenAPI schema is derived from this type, so the document cannot drift from it.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// At most 1,000 lines.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Free-form attributes; plugins may add their own on transitions.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub sku: String,
    pub qty: i64,
    pub unit_price: f64,
}

/// An order (or any pipeline's record: an invoice is stored the same way) as the pipeline
/// stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: Uuid,
    /// The pipeline the record belongs to; other pipelines' routes never show it.
    pub pipeline: String,
    pub status: String,
    /// How many events were recorded for this order (0 for a new order).
    pub version: u64,
    pub request: OrderRequest,
    /// The client's attributes merged with every attribute a plugin set since.
    pub attributes: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Order {
    /// A brand-new order of the default `orders` pipeline, as the API accepts it.
    pub fn new(id: Uuid, request: OrderRequest, now_ms: i64) -> Self {
        Self::in_pipeline(DEFAULT_PIPELINE, id, request, now_ms)
    }

    /// A brand-new record of `pipeline`, as the API accepts it.
    pub fn in_pipeline(pipeline: &str, id: Uuid, request: OrderRequest, now_ms: i64) -> Self {
        let attributes = request.attributes.clone();
        Self {
            id,
            pipeline: pipeline.to_owned(),
            status: INITIAL_STATUS.to_owned(),
            version: 0,
            request,
            attributes,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// The JSON the API answers with, and the Redis cache holds.
    pub fn view(&self) -> OrderView {
        OrderView {
            order_id: self.id,
            pipeline: self.pipeline.clone(),
            status: self.status.clone(),
            version: self.version,
            customer: self.request.customer.clone(),
            items: self.request.items.clone(),
            currency: self.request.currency.clone(),
            attributes: self.attributes.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

/// An order as clients see it through `GET /api/orders/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: Uuid,
    /// The pipeline the record belongs to (views cached before pipelines: `orders`).
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    pub status: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default)]
    pub items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Something that happened to an order: its creation, or an event a client posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event; a redelivered message carries the same id.
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: String,
    #[serde(default)]
    pub data: Value,
    pub at_ms: i64,
}

/// What a plugin decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Transition {
        to: String,
        reason: String,
        attributes: Map<String, Value>,
    },
    NoChange {
        reason: String,
    },
    Reject {
        reason: String,
    },
}

/// How an event ended, as recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The status changed.
    Transitioned,
    /// The plugin accepted the event and kept the status.
    Unchanged,
    /// The plugin refused the event.
    Rejected,
    /// The plugin failed (trap, CPU or memory limit, illegal transition); status unchanged.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Transitioned => "transitioned",
            Outcome::Unchanged => "unchanged",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "transitioned" => Outcome::Transitioned,
            "unchanged" => Outcome::Unchanged,
            "rejected" => Outcome::Rejected,
            "failed" => Outcome::Failed,
            _ => return None,
        })
    }
}

/// One recorded event in an order's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// 1 for the first recorded event; equals the order's version after it.
    pub seq: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub outcome: Outcome,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub plugin: String,
    pub plugin_version: String,
    pub at_ms: i64,
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_cached_before_pipelines_is_an_order() {
        let legacy = r#"{"order_id":"5f0c5e4e-8a4e-4c39-9a55-0c4f9e9b1d11","status":"paid",
            "version":2,"created_at_ms":1,"updated_at_ms":2}"#;
        let view: OrderView = serde_json::from_str(legacy).unwrap();
        assert_eq!(view.pipeline, DEFAULT_PIPELINE);
    }

    #[test]
    fn a_new_record_belongs_to_its_pipeline() {
        let id = Uuid::new_v4();
        assert_eq!(
            Order::new(id, OrderRequest::default(), 0).pipeline,
            "orders"
        );
        let invoice = Order::in_pipeline("invoices", id, OrderRequest::default(), 0);
        assert_eq!(invoice.view().pipeline, "invoices");
    }
}
