//! `due_date_passed` (an issued invoice falls overdue) and `void_requested` (`{"reason":
//! optional string}`: a draft, issued or overdue invoice is cancelled; a paid one is not).

use orderpipe_plugin_sdk::serde_json::Value;
use orderpipe_plugin_sdk::{Decision, Event, Order, log};

use crate::payment;
use crate::status::{CREATED, ISSUED, OVERDUE, PAID, VOID};

/// The longest void reason kept in the history.
const MAX_REASON_CHARS: usize = 200;

pub fn overdue(invoice: &Order) -> Decision {
    match invoice.status.as_str() {
        ISSUED => Decision::transition(OVERDUE, "due date passed without full payment"),
        OVERDUE => Decision::no_change("invoice is already overdue"),
        other => Decision::reject(format!(
            "only an issued invoice can fall overdue (status {other})"
        )),
    }
}

pub fn void(invoice: &Order, event: &Event) -> Decision {
    match invoice.status.as_str() {
        CREATED | ISSUED | OVERDUE => {}
        PAID => return Decision::reject("invoice already paid; issue a credit note instead"),
        VOID => return Decision::reject("invoice is already void"),
        other => return Decision::reject(format!("cannot void an invoice in status {other}")),
    }
    let reason = match event.data_json::<Value>() {
        Ok(Value::Object(data)) => match data.get("reason") {
            Some(Value::String(reason)) if !reason.trim().is_empty() => {
                reason.chars().take(MAX_REASON_CHARS).collect()
            }
            _ => "void requested".to_string(),
        },
        _ => "void requested".to_string(),
    };
    // Bookkeeping only: what was paid before the void is named, if it can be read.
    let paid = match payment::recorded(&invoice.id) {
        Ok(payments) => payments.values().sum::<f64>(),
        Err(reason) => {
            log::warn(reason);
            0.0
        }
    };
    if paid > 0.0 {
        return Decision::transition(VOID, format!("{reason} ({paid:.2} already paid)"))
            .with_attribute("amount_paid", &paid);
    }
    Decision::transition(VOID, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvoiceWorkflow;
    use orderpipe_plugin_sdk::OrderPlugin;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, order};

    #[test]
    fn an_issued_invoice_falls_overdue_once() {
        let _host = FakeHost::new();
        let decision = InvoiceWorkflow::decide(order("issued"), event("due_date_passed", "{}"));
        assert_eq!(decision.transition_to(), Some("overdue"));
        let again = InvoiceWorkflow::decide(order("overdue"), event("due_date_passed", "{}"));
        assert_eq!(again, Decision::no_change("invoice is already overdue"));
        assert!(InvoiceWorkflow::decide(order("paid"), event("due_date_passed", "{}")).is_reject());
    }

    #[test]
    fn void_names_the_reason_and_what_was_paid() {
        let host = FakeHost::new();
        let invoice = order("overdue");
        host.store_put(payment::PAYMENTS, &invoice.id, r#"{"e1": 12.5}"#);
        let decision = InvoiceWorkflow::decide(
            invoice,
            event("void_requested", r#"{"reason": "customer went bust"}"#),
        );
        assert_eq!(decision.transition_to(), Some("void"));
        assert_eq!(decision.reason(), "customer went bust (12.50 already paid)");
        let mut unpaid = order("created");
        unpaid.id = "00000000-0000-4000-8000-000000000002".into();
        let decision = InvoiceWorkflow::decide(unpaid, event("void_requested", ""));
        assert_eq!(decision, Decision::transition("void", "void requested"));
    }

    #[test]
    fn a_paid_or_void_invoice_cannot_be_voided() {
        let _host = FakeHost::new();
        assert_eq!(
            InvoiceWorkflow::decide(order("paid"), event("void_requested", "{}")),
            Decision::reject("invoice already paid; issue a credit note instead")
        );
        assert!(InvoiceWorkflow::decide(order("void"), event("void_requested", "{}")).is_reject());
    }
}
