//! Conversions between the WIT types of `wit/plugin.wit` and the host's own
//! ([`crate::order`]): the order and event going in, the decision coming out. A decision is
//! checked against the plugin's bounds ([`super::decision_bounds`]) before it is converted.

use serde_json::{Map, Value};

use super::bindings::wit;
use super::failure::{MAX_REASON_BYTES, PluginFailure, clamp};
use crate::order::{Decision, Event, Order};

fn to_wit_attributes(map: &Map<String, Value>) -> Vec<wit::Attribute> {
    map.iter()
        .map(|(key, value)| wit::Attribute {
            key: key.clone(),
            value: value.to_string(),
        })
        .collect()
}

pub(crate) fn to_wit_order(order: &Order) -> wit::Order {
    wit::Order {
        id: order.id.to_string(),
        status: order.status.clone(),
        version: order.version,
        customer: order.request.customer.clone(),
        items: order
            .request
            .items
            .iter()
            .map(|item| wit::LineItem {
                sku: item.sku.clone(),
                qty: item.qty,
                unit_price: item.unit_price,
            })
            .collect(),
        currency: order.request.currency.clone(),
        attributes: to_wit_attributes(&order.attributes),
        body: serde_json::to_string(&order.request).unwrap_or_else(|_| "{}".into()),
    }
}

pub(crate) fn to_wit_event(event: &Event) -> wit::Event {
    let data = if event.data.is_null() {
        "{}".to_owned()
    } else {
        event.data.to_string()
    };
    wit::Event {
        id: event.id.to_string(),
        kind: event.kind.clone(),
        data,
        at_ms: event.at_ms.max(0) as u64,
    }
}

/// The host's decision from the plugin's; fails when an attribute value is not JSON text.
pub(crate) fn from_wit_decision(decision: wit::Decision) -> Result<Decision, PluginFailure> {
    Ok(match decision {
        wit::Decision::Transition(t) => {
            let mut attributes = Map::new();
            for attribute in t.attributes {
                let value: Value = serde_json::from_str(&attribute.value).map_err(|e| {
                    PluginFailure::new(format!(
                        "attribute {:?} is not JSON text: {e}",
                        clamp(&attribute.key, 64)
                    ))
                })?;
                attributes.insert(attribute.key, value);
            }
            Decision::Transition {
                to: t.to,
                reason: clamp(&t.reason, MAX_REASON_BYTES),
                attributes,
            }
        }
        wit::Decision::NoChange(reason) => Decision::NoChange {
            reason: clamp(&reason, MAX_REASON_BYTES),
        },
        wit::Decision::Reject(reason) => Decision::Reject {
            reason: clamp(&reason, MAX_REASON_BYTES),
        },
    })
}
