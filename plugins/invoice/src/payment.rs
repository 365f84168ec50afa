//! The `payment_received` event: `{"amount": number, "payment_id": optional string}`.
//!
//! An issued or overdue invoice collects payments until they cover its total; then it is
//! `paid`. Each payment is recorded in the plugin's store (table [`PAYMENTS`], keyed by the
//! invoice id, valued `{"<event id>": amount, ...}`), so partial payments add up across
//! events. Keying by event id makes deciding the same event again (after a version race or
//! a retried outage) overwrite its own entry instead of counting it twice. A payment that
//! does not settle the invoice is accepted without a status change, the outstanding amount
//! named in the history. If the row cannot be read or written the payment is rejected with
//! the host's reason; the client may post it again.

use std::collections::BTreeMap;

use orderpipe_plugin_sdk::serde_json::{self, Value};
use orderpipe_plugin_sdk::{Decision, Event, Order, log, store};

use crate::status::{ISSUED, OVERDUE, PAID};
use crate::{cents, invoice_total};

/// Store table of payments per invoice.
pub const PAYMENTS: &str = "payments";
/// The most payments one invoice records: the row must stay small (a hostile client could
/// otherwise grow it without bound).
pub const MAX_PAYMENTS: usize = 100;

/// Payments recorded for one invoice: event id → amount.
pub type Payments = BTreeMap<String, f64>;

pub fn decide(invoice: &Order, event: &Event) -> Decision {
    if invoice.status != ISSUED && invoice.status != OVERDUE {
        return Decision::reject(format!("payment not expected in status {}", invoice.status));
    }
    let (amount, payment_id) = match parse(event) {
        Ok(payment) => payment,
        Err(reason) => return Decision::reject(reason),
    };
    let mut payments = match recorded(&invoice.id) {
        Ok(payments) => payments,
        Err(reason) => return Decision::reject(reason),
    };
    if !payments.contains_key(&event.id) && payments.len() >= MAX_PAYMENTS {
        return Decision::reject(format!("an invoice takes at most {MAX_PAYMENTS} payments"));
    }
    payments.insert(event.id.clone(), amount);
    if let Err(reason) = record(&invoice.id, &payments) {
        return Decision::reject(reason);
    }
    let total = total_due(invoice);
    let paid = cents(payments.values().sum::<f64>()) as f64 / 100.0;
    let by = payment_id
        .as_deref()
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    log::info(format!(
        "payment{by} of {amount:.2} received: {paid:.2} of {total:.2} paid"
    ));
    if cents(paid) >= cents(total) {
        let decision = Decision::transition(
            PAID,
            format!("payment{by} of {amount:.2} received; paid in full ({paid:.2} of {total:.2})"),
        )
        .with_attribute("amount_paid", &paid);
        return match payment_id {
            Some(id) => decision.with_attribute("last_payment_id", &id),
            None => decision,
        };
    }
    Decision::no_change(format!(
        "partial payment{by} of {amount:.2} received; {paid:.2} of {total:.2} paid, {:.2} outstanding",
        (cents(total) - cents(paid)) as f64 / 100.0
    ))
}

/// The payments recorded for `invoice_id` (none yet: empty), or why they cannot be read.
pub fn recorded(invoice_id: &str) -> Result<Payments, String> {
    let row = store::get(PAYMENTS, invoice_id).map_err(|error| {
        format!(
            "payments of invoice {invoice_id} could not be read: {}",
            error.reason()
        )
    })?;
    match row {
        None => Ok(Payments::new()),
        Some(text) => serde_json::from_str(&text).map_err(|error| {
            log::error(format!("payments row of {invoice_id} is corrupt: {error}"));
            format!("payments of invoice {invoice_id} are unreadable: {error}")
        }),
    }
}

fn record(invoice_id: &str, payments: &Payments) -> Result<(), String> {
    let text = serde_json::to_string(payments).map_err(|error| error.to_string())?;
    store::put(PAYMENTS, invoice_id, &text).map_err(|error| {
        format!(
            "payment of invoice {invoice_id} could not be recorded: {}",
            error.reason()
        )
    })
}

fn parse(event: &Event) -> Result<(f64, Option<String>), String> {
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
            .filter(|amount| amount.is_finite() && *amount > 0.0)
            .ok_or_else(|| format!("amount {amount} must be a positive number"))?,
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
    Ok((amount, id))
}

/// The invoice's total: the `total` attribute set when it was issued, else its lines.
fn total_due(invoice: &Order) -> f64 {
    match invoice.attribute::<f64>("total") {
        Ok(Some(total)) => total,
        _ => invoice_total(&invoice.items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvoiceWorkflow;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};
    use orderpipe_plugin_sdk::{Attribute, HostError, OrderPlugin};

    /// An issued invoice of 100.00.
    fn issued() -> Order {
        let mut invoice = order("issued");
        invoice.items = vec![item("consulting", 4, 25.0)];
        invoice
            .attributes
            .push(Attribute::json("total", &100.0).unwrap());
        invoice
    }

    fn pay(invoice: Order, event_id: &str, data: &str) -> Decision {
        let mut event = event("payment_received", data);
        event.id = event_id.into();
        InvoiceWorkflow::decide(invoice, event)
    }

    #[test]
    fn a_payment_covering_the_total_pays_the_invoice() {
        let _host = FakeHost::new();
        let decision = pay(issued(), "e1", r#"{"amount": 100, "payment_id": "wire-1"}"#);
        assert_eq!(decision.transition_to(), Some("paid"));
        assert_eq!(
            decision.reason(),
            "payment (wire-1) of 100.00 received; paid in full (100.00 of 100.00)"
        );
        assert_eq!(
            decision.attribute::<f64>("amount_paid").unwrap(),
            Some(100.0)
        );
    }

    #[test]
    fn partial_payments_add_up_in_the_store() {
        let host = FakeHost::new();
        let first = pay(issued(), "e1", r#"{"amount": 30}"#);
        assert_eq!(
            first,
            Decision::no_change(
                "partial payment of 30.00 received; 30.00 of 100.00 paid, 70.00 outstanding"
            )
        );
        let second = pay(issued(), "e2", r#"{"amount": 69.99}"#);
        assert_eq!(second.transition_to(), None, "{second:?}");
        let mut overdue = issued();
        overdue.status = "overdue".into();
        let third = pay(overdue, "e3", r#"{"amount": 0.01}"#);
        assert_eq!(third.transition_to(), Some("paid"));
        let row = host
            .store_get(PAYMENTS, &issued().id)
            .expect("payments row");
        let payments: Payments = serde_json::from_str(&row).unwrap();
        assert_eq!(payments.len(), 3);
    }

    #[test]
    fn deciding_the_same_event_again_does_not_count_it_twice() {
        let _host = FakeHost::new();
        pay(issued(), "e1", r#"{"amount": 60}"#);
        let again = pay(issued(), "e1", r#"{"amount": 60}"#);
        assert_eq!(
            again,
            Decision::no_change(
                "partial payment of 60.00 received; 60.00 of 100.00 paid, 40.00 outstanding"
            )
        );
    }

    #[test]
    fn payments_outside_issued_or_overdue_and_bad_amounts_are_rejected() {
        let _host = FakeHost::new();
        let mut draft = issued();
        draft.status = "created".into();
        assert_eq!(
            pay(draft, "e1", r#"{"amount": 100}"#),
            Decision::reject("payment not expected in status created")
        );
        assert_eq!(
            pay(issued(), "e1", r#"{"amount": -5}"#),
            Decision::reject("amount -5 must be a positive number")
        );
        assert_eq!(
            pay(issued(), "e1", r#"{}"#),
            Decision::reject("payment has no amount")
        );
    }

    #[test]
    fn a_store_outage_rejects_the_payment() {
        let host = FakeHost::new();
        host.fail_with(HostError::Unavailable("store down".into()));
        let decision = pay(issued(), "e1", r#"{"amount": 100}"#);
        assert!(decision.is_reject(), "{decision:?}");
        assert!(
            decision.reason().contains("could not be read"),
            "{decision:?}"
        );
    }
}
