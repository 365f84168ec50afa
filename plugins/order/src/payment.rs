//! The `payment_received` event: `{"amount": number, "payment_id": optional string}`.
//!
//! A payment that covers the order's total pays an order awaiting payment. A payment id is
//! honoured once: the cache remembers which event used it (`payment:<id>` → event id, for a
//! day), so the same id on another event is a duplicate, while a redelivery of the same
//! event goes through again. If that check cannot be made (the cache fails) the payment is
//! rejected with the host's reason; the client may post it again.
//!
//! The check and the claim are two cache calls, not one atomic step: two events racing with
//! the same payment id could both pass. The host's WIT has no set-if-absent to close that.

use orderpipe_plugin_sdk::serde_json::Value;
use orderpipe_plugin_sdk::{Decision, Event, Order, cache, log};

use crate::created::order_total;
use crate::status::{AWAITING_PAYMENT, PAID};

/// How long a payment id stays claimed, in seconds.
pub const PAYMENT_ID_TTL_SECONDS: u32 = 86_400;

/// A payment as the client sent it.
#[derive(Debug, PartialEq)]
struct Payment {
    amount: f64,
    id: Option<String>,
}

pub fn decide(order: &Order, event: &Event) -> Decision {
    if order.status != AWAITING_PAYMENT {
        return Decision::reject(format!("payment not expected in status {}", order.status));
    }
    let payment = match parse(event) {
        Ok(payment) => payment,
        Err(reason) => return Decision::reject(reason),
    };
    let total = total_due(order);
    if cents(payment.amount) < cents(total) {
        return Decision::reject(format!(
            "amount {:.2} is less than the order total {total:.2}",
            payment.amount
        ));
    }
    if let Some(id) = &payment.id
        && let Err(reason) = claim(id, &event.id)
    {
        return Decision::reject(reason);
    }
    let by = payment
        .id
        .as_deref()
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    log::info(format!(
        "payment{by} of {:.2} received for a total of {total:.2}",
        payment.amount
    ));
    let decision = Decision::transition(
        PAID,
        format!("payment{by} of {:.2} received", payment.amount),
    )
    .with_attribute("paid_amount", &payment.amount);
    match &payment.id {
        Some(id) => decision.with_attribute("payment_id", id),
        None => decision,
    }
}

fn parse(event: &Event) -> Result<Payment, String> {
    let data: Value = event
        .data_json()
        .map_err(|error| format!("payment data is not valid JSON: {error}"))?;
    let Value::Object(data) = data else {
        return Err("payment data must be a JSON object".to_string());
    };
    let amount = match data.get("amount") {
        None | Some(Value::Null) => return Err("payment has no amount".to_string()),
        Some(Value::Number(amount)) => amount
            .as_f64()
            .ok_or_else(|| format!("amount {amount} is not a usable number"))?,
        Some(other) => return Err(format!("amount must be a number, got {other}")),
    };
    let id = match data.get("payment_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id.clone()),
        Some(other) => {
            return Err(format!(
                "payment_id must be a non-empty string, got {other}"
            ));
        }
    };
    Ok(Payment { amount, id })
}

/// The order's total: the `total` attribute set when it was priced, else recomputed.
fn total_due(order: &Order) -> f64 {
    match order.attribute::<f64>("total") {
        Ok(Some(total)) => total,
        Ok(None) => order_total(&order.items),
        Err(error) => {
            log::warn(format!(
                "order attribute total is not a number ({error}); recomputing it from the items"
            ));
            order_total(&order.items)
        }
    }
}

/// Amounts compare in whole cents, so 12.499999 pays 12.50 but 12.49 does not.
fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Claims `payment_id` for `event_id`, or says why the payment must be refused.
fn claim(payment_id: &str, event_id: &str) -> Result<(), String> {
    let key = format!("payment:{payment_id}");
    let unchecked = |error: orderpipe_plugin_sdk::HostError| {
        log::warn(format!(
            "payment {payment_id} could not be checked: {}",
            error.reason()
        ));
        format!(
            "payment {payment_id} could not be checked for duplicates: {}",
            error.reason()
        )
    };
    match cache::get(&key).map_err(unchecked)? {
        Some(owner) if owner == event_id => {
            log::info(format!(
                "payment {payment_id} seen again on its own event {event_id}: a redelivery"
            ));
            Ok(())
        }
        Some(owner) => {
            log::warn(format!(
                "payment {payment_id} was already used by event {owner}"
            ));
            Err(format!("duplicate payment {payment_id}"))
        }
        None => cache::set(&key, event_id, Some(PAYMENT_ID_TTL_SECONDS)).map_err(unchecked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderWorkflow;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};
    use orderpipe_plugin_sdk::{Attribute, HostError, OrderPlugin};

    /// An order awaiting payment of 12.50.
    fn awaiting_payment() -> Order {
        let mut order = order("awaiting_payment");
        order.items = vec![item("A", 5, 2.5)];
        order
            .attributes
            .push(Attribute::json("total", &12.5).unwrap());
        order
            .attributes
            .push(Attribute::json("currency", "USD").unwrap());
        order
    }

    fn pay(order: Order, data: &str) -> Decision {
        OrderWorkflow::decide(order, event("payment_received", data))
    }

    #[test]
    fn payment_covering_the_total_pays_the_order() {
        let _host = FakeHost::new();
        let decision = pay(awaiting_payment(), r#"{"amount": 12.5}"#);
        assert_eq!(decision.transition_to(), Some("paid"));
        assert_eq!(decision.reason(), "payment of 12.50 received");
        assert_eq!(
            decision.attribute::<f64>("paid_amount").unwrap(),
            Some(12.5)
        );
    }

    #[test]
    fn overpayment_pays_the_order() {
        let _host = FakeHost::new();
        assert_eq!(
            pay(awaiting_payment(), r#"{"amount": 20}"#).transition_to(),
            Some("paid")
        );
    }

    #[test]
    fn short_payment_is_rejected() {
        let _host = FakeHost::new();
        let decision = pay(awaiting_payment(), r#"{"amount": 5}"#);
        assert_eq!(
            decision,
            Decision::reject("amount 5.00 is less than the order total 12.50")
        );
        let decision = pay(awaiting_payment(), r#"{"amount": 12.49}"#);
        assert_eq!(
            decision,
            Decision::reject("amount 12.49 is less than the order total 12.50")
        );
    }

    #[test]
    fn missing_amount_is_rejected() {
        let _host = FakeHost::new();
        assert_eq!(
            pay(awaiting_payment(), "{}"),
            Decision::reject("payment has no amount")
        );
        assert_eq!(
            pay(awaiting_payment(), ""),
            Decision::reject("payment has no amount")
        );
        assert_eq!(
            pay(awaiting_payment(), r#"{"amount": null}"#),
            Decision::reject("payment has no amount")
        );
    }

    #[test]
    fn non_numeric_amount_is_rejected() {
        let _host = FakeHost::new();
        let decision = pay(awaiting_payment(), r#"{"amount": "12.50"}"#);
        assert_eq!(
            decision,
            Decision::reject("amount must be a number, got \"12.50\"")
        );
    }

    #[test]
    fn malformed_payment_data_is_rejected() {
        let _host = FakeHost::new();
        assert!(
            pay(awaiting_payment(), "{")
                .reason()
                .starts_with("payment data is not valid JSON")
        );
        assert_eq!(
            pay(awaiting_payment(), "[1]"),
            Decision::reject("payment data must be a JSON object")
        );
        let decision = pay(awaiting_payment(), r#"{"amount": 20, "payment_id": 7}"#);
        assert_eq!(
            decision,
            Decision::reject("payment_id must be a non-empty string, got 7")
        );
    }

    #[test]
    fn payment_in_another_status_is_rejected() {
        let _host = FakeHost::new();
        for status in [
            "created",
            "processed",
            "rejected",
            "paid",
            "shipped",
            "cancelled",
        ] {
            let mut order = awaiting_payment();
            order.status = status.into();
            let decision = pay(order, r#"{"amount": 20}"#);
            assert_eq!(
                decision,
                Decision::reject(format!("payment not expected in status {status}"))
            );
        }
    }

    #[test]
    fn total_is_recomputed_when_the_attribute_is_missing_or_broken() {
        let _host = FakeHost::new();
        let mut order = awaiting_payment();
        order.attributes.clear();
        assert_eq!(
            pay(order.clone(), r#"{"amount": 12}"#).reason(),
            "amount 12.00 is less than the order total 12.50"
        );
        order.attributes.push(Attribute {
            key: "total".into(),
            value: "\"lots\"".into(),
        });
        assert_eq!(
            pay(order, r#"{"amount": 12.5}"#).transition_to(),
            Some("paid")
        );
    }

    #[test]
    fn payment_id_is_claimed_for_a_day() {
        let host = FakeHost::new();
        let decision = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        assert_eq!(decision.reason(), "payment (p-1) of 12.50 received");
        assert_eq!(
            decision
                .attribute::<String>("payment_id")
                .unwrap()
                .as_deref(),
            Some("p-1")
        );
        assert_eq!(host.cache_get("payment:p-1").as_deref(), Some("event-1"));
        assert_eq!(host.cache_ttl("payment:p-1"), Some(PAYMENT_ID_TTL_SECONDS));
    }

    #[test]
    fn payment_id_used_by_another_event_is_a_duplicate() {
        let host = FakeHost::new();
        host.cache_set("payment:p-1", "event-0");
        let decision = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        assert_eq!(decision, Decision::reject("duplicate payment p-1"));
        assert_eq!(host.cache_get("payment:p-1").as_deref(), Some("event-0"));
    }

    #[test]
    fn redelivered_payment_event_is_accepted_again() {
        let host = FakeHost::new();
        let first = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        let again = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        assert_eq!(first, again);
        assert_eq!(again.transition_to(), Some("paid"));
        assert_eq!(host.cache_get("payment:p-1").as_deref(), Some("event-1"));
    }

    #[test]
    fn short_payment_does_not_claim_its_id() {
        let host = FakeHost::new();
        pay(awaiting_payment(), r#"{"amount": 1, "payment_id": "p-1"}"#);
        assert_eq!(host.cache_get("payment:p-1"), None);
        assert_eq!(host.calls(), 0);
    }

    #[test]
    fn payment_without_id_makes_no_host_call() {
        let host = FakeHost::new();
        assert_eq!(
            pay(awaiting_payment(), r#"{"amount": 12.5}"#).transition_to(),
            Some("paid")
        );
        assert_eq!(host.calls(), 0);
    }

    #[test]
    fn unavailable_cache_rejects_a_payment_with_an_id() {
        let host = FakeHost::new();
        host.fail_with(HostError::Unavailable("redis timed out".into()));
        let decision = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        assert_eq!(
            decision,
            Decision::reject(
                "payment p-1 could not be checked for duplicates: unavailable: redis timed out"
            )
        );
    }

    #[test]
    fn failing_claim_rejects_the_payment() {
        let host = FakeHost::new();
        host.set_quota(1);
        let decision = pay(
            awaiting_payment(),
            r#"{"amount": 12.5, "payment_id": "p-1"}"#,
        );
        assert!(decision.is_reject());
        assert!(
            decision.reason().contains("quota-exceeded"),
            "{}",
            decision.reason()
        );
    }
}
