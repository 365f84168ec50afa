//! orderpipe's default order workflow.
//!
//! An order with items waits for payment, is paid, then shipped; it may be cancelled until it
//! ships. An order without items is simply `processed`, and an order that cannot be priced is
//! `rejected`. Each event kind has its own module:
//!
//! - [`created`]: validate and price the order, file it under its customer;
//! - [`payment`]: accept a payment that covers the total, once per payment id;
//! - [`fulfilment`]: shipping and cancelling.
//!
//! # Host errors
//!
//! A failing host call never traps. Where the call guards money (the payment-id check in the
//! cache) the event is rejected with the host's reason, and the client may post it again;
//! where it is only bookkeeping (the per-customer record and the created-orders counter)
//! the error is logged and the decision stands.

pub mod created;
pub mod fulfilment;
pub mod payment;

#[cfg(feature = "export")]
use orderpipe_plugin_sdk::export_plugin;
use orderpipe_plugin_sdk::{Decision, Event, Order, OrderPlugin, PluginInfo, StateMachine};

pub const NAME: &str = "order";
pub const VERSION: &str = "0.1.0";

/// The statuses of the workflow.
pub mod status {
    pub const CREATED: &str = "created";
    pub const PROCESSED: &str = "processed";
    pub const AWAITING_PAYMENT: &str = "awaiting_payment";
    pub const REJECTED: &str = "rejected";
    pub const PAID: &str = "paid";
    pub const SHIPPED: &str = "shipped";
    pub const CANCELLED: &str = "cancelled";
}

pub struct OrderWorkflow;

impl OrderPlugin for OrderWorkflow {
    fn describe() -> PluginInfo {
        use status::*;
        let machine = StateMachine::new(CREATED)
            .edge(CREATED, PROCESSED)
            .edge(CREATED, AWAITING_PAYMENT)
            .edge(CREATED, REJECTED)
            .edge(AWAITING_PAYMENT, PAID)
            .edge(PAID, SHIPPED)
            .edge(AWAITING_PAYMENT, CANCELLED)
            .edge(PAID, CANCELLED);
        PluginInfo::new(NAME, VERSION, machine)
    }

    fn decide(order: Order, event: Event) -> Decision {
        match event.kind.as_str() {
            "created" => created::decide(&order),
            "payment_received" => payment::decide(&order, &event),
            "shipped" => fulfilment::ship(&order),
            "cancel_requested" => fulfilment::cancel(&order, &event),
            other => Decision::reject(format!("unknown event type {other}")),
        }
    }
}

#[cfg(feature = "export")]
export_plugin!(OrderWorkflow);

#[cfg(test)]
mod tests {
    use super::*;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, order};

    #[test]
    fn describes_the_order_state_machine() {
        let info = OrderWorkflow::describe();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("order", "0.1.0")
        );
        let machine = info.state_machine;
        assert_eq!(machine.initial, "created");
        assert_eq!(
            machine.states,
            [
                "created",
                "processed",
                "awaiting_payment",
                "rejected",
                "paid",
                "shipped",
                "cancelled"
            ]
        );
        let edges: Vec<(&str, &str)> = machine
            .transitions
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("created", "processed"),
                ("created", "awaiting_payment"),
                ("created", "rejected"),
                ("awaiting_payment", "paid"),
                ("paid", "shipped"),
                ("awaiting_payment", "cancelled"),
                ("paid", "cancelled"),
            ]
        );
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        let _host = FakeHost::new();
        let decision = OrderWorkflow::decide(order("paid"), event("refund_requested", "{}"));
        assert_eq!(
            decision,
            Decision::reject("unknown event type refund_requested")
        );
    }

    #[test]
    fn every_transition_the_plugin_makes_is_an_edge() {
        let _host = FakeHost::new();
        let machine = OrderWorkflow::describe().state_machine;
        let mut priced = order("awaiting_payment");
        priced
            .items
            .push(orderpipe_plugin_sdk::testing::item("A", 1, 2.0));
        let cases = [
            (order("created"), event("created", "{}")),
            (
                priced.clone(),
                event("payment_received", r#"{"amount": 2}"#),
            ),
            (order("paid"), event("shipped", "{}")),
            (order("paid"), event("cancel_requested", "{}")),
            (priced, event("cancel_requested", "{}")),
        ];
        for (order, event) in cases {
            let from = order.status.clone();
            let decision = OrderWorkflow::decide(order, event);
            let to = decision.transition_to().expect("a transition");
            assert!(machine.allows(&from, to), "{from} -> {to} is not an edge");
        }
    }
}
