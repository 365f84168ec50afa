//! orderpipe's example invoice workflow, the second pipeline next to orders.
//!
//! The host hands the plugin its `order` record; on the `invoices` pipeline that record is
//! the invoice: its items are the invoice lines, its currency the invoice's currency.
//!
//! ```text
//! created ──issue──▶ issued ──payment covers total──▶ paid
//!    │                 │  ╲
//!    │                 │   due_date_passed──▶ overdue ──payment covers total──▶ paid
//!    ╰───void_requested┴──────────────────────╯──▶ void
//! created ──(cannot be priced)──▶ rejected
//! ```
//!
//! Each event kind has its own module:
//!
//! - [`drafting`]: `created` (validate and price the lines) and `issue` (send it out);
//! - [`payment`]: `payment_received`, partial payments added up in the plugin's store;
//! - [`lifecycle`]: `due_date_passed` and `void_requested`.
//!
//! # Host errors
//!
//! A failing host call never traps. Where money is counted (the payments row) the event is
//! rejected with the host's reason and may be posted again; bookkeeping (the issued-invoices
//! counter) only logs the error.

pub mod drafting;
pub mod lifecycle;
pub mod payment;

#[cfg(feature = "export")]
use orderpipe_plugin_sdk::export_plugin;
use orderpipe_plugin_sdk::{
    Decision, Event, LineItem, Order, OrderPlugin, PluginInfo, StateMachine,
};

pub const NAME: &str = "invoice";
pub const VERSION: &str = "0.1.0";

/// The statuses of the workflow.
pub mod status {
    /// Drafted: the lines are priced, the invoice is not sent yet.
    pub const CREATED: &str = "created";
    /// The lines cannot be priced; nothing more happens to it.
    pub const REJECTED: &str = "rejected";
    pub const ISSUED: &str = "issued";
    pub const OVERDUE: &str = "overdue";
    pub const PAID: &str = "paid";
    pub const VOID: &str = "void";
}

/// The invoice's total: the sum of its lines, in whole cents.
pub fn invoice_total(items: &[LineItem]) -> f64 {
    let total: f64 = items
        .iter()
        .map(|item| item.qty as f64 * item.unit_price)
        .sum();
    cents(total) as f64 / 100.0
}

/// Amounts compare in whole cents, so 12.499999 pays 12.50 but 12.49 does not.
pub fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

pub struct InvoiceWorkflow;

impl OrderPlugin for InvoiceWorkflow {
    fn describe() -> PluginInfo {
        use status::*;
        let machine = StateMachine::new(CREATED)
            .edge(CREATED, ISSUED)
            .edge(CREATED, REJECTED)
            .edge(CREATED, VOID)
            .edge(ISSUED, PAID)
            .edge(ISSUED, OVERDUE)
            .edge(ISSUED, VOID)
            .edge(OVERDUE, PAID)
            .edge(OVERDUE, VOID);
        PluginInfo::new(NAME, VERSION, machine)
    }

    fn decide(invoice: Order, event: Event) -> Decision {
        match event.kind.as_str() {
            "created" => drafting::create(&invoice),
            "issue" | "sent" => drafting::issue(&invoice, &event),
            "payment_received" => payment::decide(&invoice, &event),
            "due_date_passed" => lifecycle::overdue(&invoice),
            "void_requested" => lifecycle::void(&invoice, &event),
            other => Decision::reject(format!("unknown event type {other}")),
        }
    }
}

#[cfg(feature = "export")]
export_plugin!(InvoiceWorkflow);

#[cfg(test)]
mod tests {
    use super::*;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};

    #[test]
    fn describes_the_invoice_state_machine() {
        let info = InvoiceWorkflow::describe();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("invoice", "0.1.0")
        );
        let machine = info.state_machine;
        assert_eq!(machine.initial, "created");
        assert!(machine.allows("created", "issued"));
        assert!(machine.allows("overdue", "paid"));
        assert!(!machine.allows("paid", "void"));
        assert!(!machine.allows("created", "paid"));
    }

    #[test]
    fn totals_are_rounded_to_cents() {
        assert_eq!(invoice_total(&[item("A", 3, 0.1)]), 0.3);
        assert_eq!(
            invoice_total(&[item("A", 3, 0.1), item("B", 1, 2.006)]),
            2.31
        );
        assert_eq!(invoice_total(&[]), 0.0);
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        let _host = FakeHost::new();
        let decision = InvoiceWorkflow::decide(order("issued"), event("shipped", "{}"));
        assert_eq!(decision, Decision::reject("unknown event type shipped"));
    }

    #[test]
    fn every_transition_the_plugin_makes_is_an_edge() {
        let _host = FakeHost::new();
        let machine = InvoiceWorkflow::describe().state_machine;
        let mut priced = order("created");
        priced.items.push(item("A", 1, 2.0));
        let mut issued = priced.clone();
        issued.status = "issued".into();
        let mut overdue = priced.clone();
        overdue.status = "overdue".into();
        let cases = [
            (order("created"), event("created", "{}")),
            (priced.clone(), event("issue", "{}")),
            (priced, event("void_requested", "{}")),
            (
                issued.clone(),
                event("payment_received", r#"{"amount": 2}"#),
            ),
            (issued.clone(), event("due_date_passed", "{}")),
            (issued, event("void_requested", "{}")),
            (
                overdue.clone(),
                event("payment_received", r#"{"amount": 2}"#),
            ),
            (overdue, event("void_requested", "{}")),
        ];
        for (invoice, event) in cases {
            let from = invoice.status.clone();
            let kind = event.kind.clone();
            let decision = InvoiceWorkflow::decide(invoice, event);
            let to = decision
                .transition_to()
                .unwrap_or_else(|| panic!("{kind} in {from}: {decision:?}"));
            assert!(machine.allows(&from, to), "{from} -> {to} is not an edge");
        }
    }
}
