//! The `created` event (the invoice arrives as a draft) and `issue` (or `sent`: it goes out
//! to the customer).
//!
//! A draft whose lines can be priced stays `created`, its total named in the history; one
//! that cannot (no lines, a bad line, a malformed currency) is `rejected` with every problem
//! named. Issuing prices the lines again, sets the `total`, `currency` and optional
//! `due_date` attributes and counts the invoice in the cache (bookkeeping only).

use orderpipe_plugin_sdk::serde_json::Value;
use orderpipe_plugin_sdk::{Decision, Event, LineItem, Order, cache, log};

use crate::invoice_total;
use crate::status::{CREATED, ISSUED, REJECTED};

/// The currency of an invoice that names none.
pub const DEFAULT_CURRENCY: &str = "USD";
/// Cache counter of issued invoices (counts deliveries; a gauge of traffic).
pub const INVOICES_ISSUED: &str = "invoices-issued";

pub fn create(invoice: &Order) -> Decision {
    if invoice.status != CREATED {
        return Decision::reject(format!(
            "invoice already created (status {})",
            invoice.status
        ));
    }
    match price(invoice) {
        Ok((total, currency)) => {
            Decision::no_change(format!("invoice of {total:.2} {currency} drafted"))
        }
        Err(problems) => Decision::transition(REJECTED, problems.join("; ")),
    }
}

pub fn issue(invoice: &Order, event: &Event) -> Decision {
    if invoice.status != CREATED {
        return Decision::reject(format!(
            "only a drafted invoice can be issued (status {})",
            invoice.status
        ));
    }
    let (total, currency) = match price(invoice) {
        Ok(priced) => priced,
        Err(problems) => return Decision::reject(problems.join("; ")),
    };
    let due_date = match due_date(event) {
        Ok(due_date) => due_date,
        Err(reason) => return Decision::reject(reason),
    };
    if let Err(error) = cache::incr(INVOICES_ISSUED, 1) {
        log::warn(format!(
            "issued-invoices counter not updated: {}",
            error.reason()
        ));
    }
    let due = due_date
        .as_deref()
        .map(|date| format!(", due {date}"))
        .unwrap_or_default();
    let decision = Decision::transition(ISSUED, format!("issued for {total:.2} {currency}{due}"))
        .with_attribute("total", &total)
        .with_attribute("currency", &currency);
    match &due_date {
        Some(date) => decision.with_attribute("due_date", date),
        None => decision,
    }
}

/// The invoice's total and currency, or every reason it cannot be priced.
fn price(invoice: &Order) -> Result<(f64, String), Vec<String>> {
    let mut problems = Vec::new();
    let currency = match invoice.currency.as_deref() {
        None => DEFAULT_CURRENCY.to_string(),
        Some(code) => {
            let code = code.trim().to_ascii_uppercase();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                problems.push(format!("currency {:?} is not a 3-letter code", code));
            }
            code
        }
    };
    if invoice.items.is_empty() {
        problems.push("an invoice needs at least one line".to_string());
    }
    for (index, item) in invoice.items.iter().enumerate() {
        problems.extend(line_problem(index + 1, item));
    }
    let total = invoice_total(&invoice.items);
    if problems.is_empty() && !total.is_finite() {
        problems.push("invoice total is too large".to_string());
    }
    if problems.is_empty() {
        Ok((total, currency))
    } else {
        Err(problems)
    }
}

/// What is wrong with the `number`th (from 1) line, if anything.
fn line_problem(number: usize, item: &LineItem) -> Option<String> {
    let problem = if item.sku.trim().is_empty() {
        "sku is empty"
    } else if item.qty <= 0 {
        "qty must be positive"
    } else if !item.unit_price.is_finite() || item.unit_price < 0.0 {
        "unit_price must be a non-negative number"
    } else {
        return None;
    };
    Some(format!("line {number} (sku {}): {problem}", item.sku))
}

/// The optional `due_date` of an `issue` event: `YYYY-MM-DD`.
fn due_date(event: &Event) -> Result<Option<String>, String> {
    let data: Value = event
        .data_json()
        .map_err(|error| format!("issue data is not valid JSON: {error}"))?;
    match data.get("due_date") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(date)) if is_iso_date(date) => Ok(Some(date.clone())),
        Some(other) => Err(format!("due_date must be a YYYY-MM-DD date, got {other}")),
    }
}

fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(n, b)| match n {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvoiceWorkflow;
    use orderpipe_plugin_sdk::OrderPlugin;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};

    fn draft() -> Order {
        let mut invoice = order("created");
        invoice.items = vec![item("consulting", 3, 100.0), item("travel", 1, 42.5)];
        invoice.currency = Some("eur".into());
        invoice
    }

    #[test]
    fn a_priced_draft_stays_created() {
        let _host = FakeHost::new();
        let decision = InvoiceWorkflow::decide(draft(), event("created", "{}"));
        assert_eq!(
            decision,
            Decision::no_change("invoice of 342.50 EUR drafted")
        );
    }

    #[test]
    fn a_draft_that_cannot_be_priced_is_rejected_every_problem_named() {
        let _host = FakeHost::new();
        let mut invoice = draft();
        invoice.items.push(item("", 1, 1.0));
        invoice.items.push(item("free", 0, 1.0));
        invoice.currency = Some("euro".into());
        let decision = InvoiceWorkflow::decide(invoice, event("created", "{}"));
        assert_eq!(decision.transition_to(), Some("rejected"));
        assert_eq!(
            decision.reason(),
            "currency \"EURO\" is not a 3-letter code; line 3 (sku ): sku is empty; \
             line 4 (sku free): qty must be positive"
        );
        let decision = InvoiceWorkflow::decide(order("created"), event("created", "{}"));
        assert_eq!(decision.reason(), "an invoice needs at least one line");
    }

    #[test]
    fn issuing_sets_total_currency_and_due_date_and_counts() {
        let host = FakeHost::new();
        let decision =
            InvoiceWorkflow::decide(draft(), event("issue", r#"{"due_date": "2026-12-31"}"#));
        assert_eq!(decision.transition_to(), Some("issued"));
        assert_eq!(decision.reason(), "issued for 342.50 EUR, due 2026-12-31");
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(342.5));
        assert_eq!(
            decision.attribute::<String>("due_date").unwrap().as_deref(),
            Some("2026-12-31")
        );
        assert_eq!(host.cache_get(INVOICES_ISSUED).as_deref(), Some("1"));
        // `sent` is the same event by another name.
        assert_eq!(
            InvoiceWorkflow::decide(draft(), event("sent", "{}")).transition_to(),
            Some("issued")
        );
    }

    #[test]
    fn issuing_twice_or_with_a_bad_due_date_is_rejected() {
        let _host = FakeHost::new();
        let mut issued = draft();
        issued.status = "issued".into();
        assert!(InvoiceWorkflow::decide(issued, event("issue", "{}")).is_reject());
        let decision = InvoiceWorkflow::decide(draft(), event("issue", r#"{"due_date": "soon"}"#));
        assert_eq!(
            decision,
            Decision::reject("due_date must be a YYYY-MM-DD date, got \"soon\"")
        );
    }

    #[test]
    fn a_failing_counter_does_not_stop_the_issue() {
        let host = FakeHost::new();
        host.fail_with(orderpipe_plugin_sdk::HostError::Unavailable("down".into()));
        let decision = InvoiceWorkflow::decide(draft(), event("issue", "{}"));
        assert_eq!(decision.transition_to(), Some("issued"));
    }
}
