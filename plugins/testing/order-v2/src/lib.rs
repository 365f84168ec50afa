//! Version 0.2.0 of the order workflow, for hot-swap tests. Never deploy it for real.
//!
//! It describes itself as `order` 0.2.0 with the same state machine as `order-plugin`, and
//! decides exactly as it does, except that a transition's reason starts with `"v2: "`, so a
//! test reading an order's history can tell which version decided each event. Rejections and
//! no-changes keep their reasons.

use order_workflow::OrderWorkflow;
use orderpipe_plugin_sdk::{
    Decision, Event, Order, OrderPlugin, PluginInfo, Transition, export_plugin,
};

/// The version this plugin describes itself with.
pub const VERSION: &str = "0.2.0";
/// What every transition's reason starts with.
pub const REASON_PREFIX: &str = "v2: ";

pub struct OrderWorkflowV2;

impl OrderPlugin for OrderWorkflowV2 {
    fn describe() -> PluginInfo {
        PluginInfo {
            version: VERSION.to_string(),
            ..OrderWorkflow::describe()
        }
    }

    fn decide(order: Order, event: Event) -> Decision {
        match OrderWorkflow::decide(order, event) {
            Decision::Transition(transition) => Decision::Transition(Transition {
                reason: format!("{REASON_PREFIX}{}", transition.reason),
                ..transition
            }),
            other => other,
        }
    }
}

export_plugin!(OrderWorkflowV2);

#[cfg(test)]
mod tests {
    use super::*;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};

    #[test]
    fn describes_itself_as_the_next_version_of_order() {
        let v1 = OrderWorkflow::describe();
        let v2 = OrderWorkflowV2::describe();
        assert_eq!((v2.name.as_str(), v2.version.as_str()), ("order", "0.2.0"));
        assert_eq!(v2.state_machine, v1.state_machine);
    }

    #[test]
    fn transitions_are_the_same_with_a_v2_reason() {
        let _host = FakeHost::new();
        let mut created = order("created");
        created.items.push(item("A", 2, 1.25));
        let decision = OrderWorkflowV2::decide(created, event("created", "{}"));
        assert_eq!(decision.transition_to(), Some("awaiting_payment"));
        assert_eq!(decision.reason(), "v2: awaiting payment of 2.50 USD");
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(2.5));
    }

    #[test]
    fn rejections_keep_their_reason() {
        let _host = FakeHost::new();
        let decision = OrderWorkflowV2::decide(order("shipped"), event("shipped", "{}"));
        assert_eq!(decision, Decision::reject("order already shipped"));
    }
}
