//! The `shipped` and `cancel_requested` events: a paid order ships; an order may be
//! cancelled while it awaits payment or is paid, never once it has shipped.

use orderpipe_plugin_sdk::serde_json::Value;
use orderpipe_plugin_sdk::{Decision, Event, Order};

use crate::status::{AWAITING_PAYMENT, CANCELLED, PAID, SHIPPED};

pub fn ship(order: &Order) -> Decision {
    match order.status.as_str() {
        PAID => Decision::transition(SHIPPED, "order shipped"),
        SHIPPED => Decision::reject("order already shipped"),
        other => Decision::reject(format!("shipping not expected in status {other}")),
    }
}

/// Cancels on request; a `{"reason": "..."}` in the event's data is kept in the history.
pub fn cancel(order: &Order, event: &Event) -> Decision {
    match order.status.as_str() {
        AWAITING_PAYMENT | PAID => {
            let why = event
                .data_json::<Value>()
                .ok()
                .and_then(|data| {
                    data.get("reason")
                        .and_then(Value::as_str)
                        .map(|why| format!(": {why}"))
                })
                .unwrap_or_default();
            Decision::transition(CANCELLED, format!("cancelled on request{why}"))
        }
        SHIPPED => Decision::reject("order already shipped"),
        CANCELLED => Decision::reject("order already cancelled"),
        other => Decision::reject(format!("cancel not allowed in status {other}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::OrderWorkflow;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, order};
    use orderpipe_plugin_sdk::{Decision, OrderPlugin};

    fn decide(status: &str, kind: &str, data: &str) -> Decision {
        OrderWorkflow::decide(order(status), event(kind, data))
    }

    #[test]
    fn paid_order_ships() {
        let _host = FakeHost::new();
        assert_eq!(
            decide("paid", "shipped", "{}"),
            Decision::transition("shipped", "order shipped")
        );
    }

    #[test]
    fn shipping_twice_is_rejected() {
        let _host = FakeHost::new();
        assert_eq!(
            decide("shipped", "shipped", "{}"),
            Decision::reject("order already shipped")
        );
    }

    #[test]
    fn unpaid_order_does_not_ship() {
        let _host = FakeHost::new();
        for status in [
            "created",
            "processed",
            "awaiting_payment",
            "rejected",
            "cancelled",
        ] {
            let decision = decide(status, "shipped", "{}");
            assert_eq!(
                decision,
                Decision::reject(format!("shipping not expected in status {status}"))
            );
        }
    }

    #[test]
    fn order_awaiting_payment_or_paid_can_be_cancelled() {
        let _host = FakeHost::new();
        for status in ["awaiting_payment", "paid"] {
            let decision = decide(status, "cancel_requested", "{}");
            assert_eq!(
                decision,
                Decision::transition("cancelled", "cancelled on request")
            );
        }
    }

    #[test]
    fn cancel_reason_is_kept() {
        let _host = FakeHost::new();
        let decision = decide(
            "paid",
            "cancel_requested",
            r#"{"reason": "changed my mind"}"#,
        );
        assert_eq!(decision.reason(), "cancelled on request: changed my mind");
        assert_eq!(
            decide("paid", "cancel_requested", "not json").reason(),
            "cancelled on request"
        );
    }

    #[test]
    fn shipped_order_cannot_be_cancelled() {
        let _host = FakeHost::new();
        assert_eq!(
            decide("shipped", "cancel_requested", "{}"),
            Decision::reject("order already shipped")
        );
    }

    #[test]
    fn cancel_in_other_statuses_is_rejected() {
        let _host = FakeHost::new();
        assert_eq!(
            decide("cancelled", "cancel_requested", "{}"),
            Decision::reject("order already cancelled")
        );
        for status in ["created", "processed", "rejected"] {
            let decision = decide(status, "cancel_requested", "{}");
            assert_eq!(
                decision,
                Decision::reject(format!("cancel not allowed in status {status}"))
            );
        }
    }
}
