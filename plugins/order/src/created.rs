//! The `created` event: the order itself has arrived.
//!
//! An order without items is `processed`. An order with items is priced: its total and
//! currency become attributes and it waits for payment. An order that cannot be priced (a bad
//! item, an unknown currency) is `rejected`, every problem named in the reason. An accepted
//! order is also filed under its customer in the store and counted in the cache; neither is
//! allowed to change the decision.

use orderpipe_plugin_sdk::{Decision, LineItem, Order, cache, log, store};

use crate::status::{AWAITING_PAYMENT, CREATED, PROCESSED, REJECTED};

/// The currency of an order that names none.
pub const DEFAULT_CURRENCY: &str = "USD";

/// The ISO 4217 codes the workflow prices in.
pub const CURRENCIES: [&str; 20] = [
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "INR", "CNY", "BRL", "MXN", "ZAR", "SGD", "HKD",
];

/// Store table of accepted orders, keyed `<customer>/<order id>`, valued with the total.
pub const ORDERS_BY_CUSTOMER: &str = "orders-by-customer";
/// Cache counter of accepted orders. It counts deliveries: a redelivered `created` event
/// counts again, which is fine for a gauge of traffic.
pub const ORDERS_CREATED: &str = "orders-created";
/// The customer key of an order that names no customer.
pub const ANONYMOUS: &str = "anonymous";

pub fn decide(order: &Order) -> Decision {
    if order.status != CREATED {
        return Decision::reject(format!("order already created (status {})", order.status));
    }
    let (total, currency) = match price(order) {
        Ok(priced) => priced,
        Err(problems) => return Decision::transition(REJECTED, problems.join("; ")),
    };
    file_under_customer(order, total);
    if order.items.is_empty() {
        return Decision::transition(PROCESSED, "order has no items");
    }
    Decision::transition(
        AWAITING_PAYMENT,
        format!("awaiting payment of {total:.2} {currency}"),
    )
    .with_attribute("total", &total)
    .with_attribute("currency", &currency)
}

/// The order's total and currency, or every reason it cannot be priced.
fn price(order: &Order) -> Result<(f64, String), Vec<String>> {
    let mut problems = Vec::new();
    let currency = match order.currency.as_deref() {
        None => DEFAULT_CURRENCY.to_string(),
        Some(code) => {
            let code = code.trim().to_ascii_uppercase();
            if !CURRENCIES.contains(&code.as_str()) {
                problems.push(format!(
                    "unknown currency {:?}",
                    order.currency.as_deref().unwrap_or_default()
                ));
            }
            code
        }
    };
    for (index, item) in order.items.iter().enumerate() {
        problems.extend(item_problem(index + 1, item));
    }
    let total = order_total(&order.items);
    if problems.is_empty() && !total.is_finite() {
        problems.push("order total is too large".to_string());
    }
    if problems.is_empty() {
        Ok((total, currency))
    } else {
        Err(problems)
    }
}

/// What is wrong with the `number`th (from 1) item, if anything.
fn item_problem(number: usize, item: &LineItem) -> Option<String> {
    let sku = item.sku.trim();
    if sku.is_empty() {
        return Some(format!("item {number}: sku must not be empty"));
    }
    let problem = if item.qty <= 0 {
        "qty must be positive"
    } else if !item.unit_price.is_finite() {
        "unit_price must be a finite number"
    } else if item.unit_price < 0.0 {
        "unit_price must not be negative"
    } else {
        return None;
    };
    Some(format!("item {number} (sku {sku}): {problem}"))
}

/// The sum of qty × unit price, rounded to cents.
pub fn order_total(items: &[LineItem]) -> f64 {
    // A fold from +0.0: `Sum` for floats starts at -0.0, which would print as "-0".
    let sum = items
        .iter()
        .fold(0.0, |sum, item| sum + item.qty as f64 * item.unit_price);
    (sum * 100.0).round() / 100.0
}

/// Records the order under its customer and counts it. Bookkeeping only: a host error is
/// logged and does not change the decision.
fn file_under_customer(order: &Order, total: f64) {
    let customer = order
        .customer
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(ANONYMOUS);
    let key = format!("{customer}/{}", order.id);
    if let Err(error) = store::put(ORDERS_BY_CUSTOMER, &key, &total.to_string()) {
        log::warn(format!(
            "could not file the order under customer {customer}: {}",
            error.reason()
        ));
    }
    match cache::incr(ORDERS_CREATED, 1) {
        Ok(count) => log::info(format!(
            "order accepted for {customer}, total {total:.2}; {count} orders so far"
        )),
        Err(error) => log::warn(format!("could not count the order: {}", error.reason())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderWorkflow;
    use orderpipe_plugin_sdk::log::Level;
    use orderpipe_plugin_sdk::testing::{FakeHost, event, item, order};
    use orderpipe_plugin_sdk::{HostError, OrderPlugin};

    fn decide_created(order: Order) -> Decision {
        OrderWorkflow::decide(order, event("created", "{}"))
    }

    fn with_items(items: Vec<LineItem>) -> Order {
        let mut order = order("created");
        order.items = items;
        order
    }

    #[test]
    fn order_without_items_is_processed() {
        let _host = FakeHost::new();
        let decision = decide_created(order("created"));
        assert_eq!(
            decision,
            Decision::transition("processed", "order has no items")
        );
    }

    #[test]
    fn order_with_items_awaits_payment_of_its_total() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("A", 2, 1.25), item("B", 1, 10.0)]));
        assert_eq!(decision.transition_to(), Some("awaiting_payment"));
        assert_eq!(decision.reason(), "awaiting payment of 12.50 USD");
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(12.5));
        assert_eq!(
            decision.attribute::<String>("currency").unwrap().as_deref(),
            Some("USD")
        );
    }

    #[test]
    fn total_is_rounded_to_cents() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![
            item("A", 3, 0.1),
            item("B", 1, 0.2),
            item("C", 1, 0.004),
        ]));
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(0.5));
        assert_eq!(order_total(&[item("A", 1, 0.1), item("B", 1, 0.2)]), 0.3);
    }

    #[test]
    fn named_currency_is_kept() {
        let _host = FakeHost::new();
        let mut order = with_items(vec![item("A", 1, 5.0)]);
        order.currency = Some("eur".into());
        let decision = decide_created(order);
        assert_eq!(
            decision.attribute::<String>("currency").unwrap().as_deref(),
            Some("EUR")
        );
        assert_eq!(decision.reason(), "awaiting payment of 5.00 EUR");
    }

    #[test]
    fn every_listed_currency_is_accepted() {
        let _host = FakeHost::new();
        for code in CURRENCIES {
            let mut order = with_items(vec![item("A", 1, 1.0)]);
            order.currency = Some(code.into());
            assert_eq!(
                decide_created(order).transition_to(),
                Some("awaiting_payment"),
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_currency_is_rejected() {
        let _host = FakeHost::new();
        let mut order = with_items(vec![item("A", 1, 5.0)]);
        order.currency = Some("XYZ".into());
        assert_eq!(
            decide_created(order),
            Decision::transition("rejected", "unknown currency \"XYZ\"")
        );
    }

    #[test]
    fn unknown_currency_rejects_an_order_without_items_too() {
        let _host = FakeHost::new();
        let mut order = order("created");
        order.currency = Some("".into());
        assert_eq!(
            decide_created(order),
            Decision::transition("rejected", "unknown currency \"\"")
        );
    }

    #[test]
    fn non_positive_qty_is_rejected() {
        let _host = FakeHost::new();
        for qty in [0, -1] {
            let decision =
                decide_created(with_items(vec![item("A", 1, 1.0), item("ABC", qty, 1.0)]));
            assert_eq!(
                decision,
                Decision::transition("rejected", "item 2 (sku ABC): qty must be positive")
            );
        }
    }

    #[test]
    fn negative_unit_price_is_rejected() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("A", 1, -0.01)]));
        assert_eq!(
            decision,
            Decision::transition(
                "rejected",
                "item 1 (sku A): unit_price must not be negative"
            )
        );
    }

    #[test]
    fn free_item_is_accepted() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("GIFT", 1, 0.0)]));
        assert_eq!(decision.attribute::<f64>("total").unwrap(), Some(0.0));
    }

    #[test]
    fn non_finite_unit_price_is_rejected() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("A", 1, f64::NAN)]));
        assert_eq!(
            decision,
            Decision::transition(
                "rejected",
                "item 1 (sku A): unit_price must be a finite number"
            )
        );
    }

    #[test]
    fn empty_sku_is_rejected() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("A", 1, 1.0), item(" ", 1, 1.0)]));
        assert_eq!(
            decision,
            Decision::transition("rejected", "item 2: sku must not be empty")
        );
    }

    #[test]
    fn every_problem_is_named() {
        let _host = FakeHost::new();
        let mut order = with_items(vec![item("A", 0, 1.0), item("B", 1, -1.0)]);
        order.currency = Some("ABC".into());
        let decision = decide_created(order);
        assert_eq!(
            decision.reason(),
            "unknown currency \"ABC\"; item 1 (sku A): qty must be positive; item 2 (sku B): unit_price must not be negative"
        );
    }

    #[test]
    fn overflowing_total_is_rejected() {
        let _host = FakeHost::new();
        let decision = decide_created(with_items(vec![item("A", i64::MAX, f64::MAX)]));
        assert_eq!(
            decision,
            Decision::transition("rejected", "order total is too large")
        );
    }

    #[test]
    fn accepted_order_is_filed_under_its_customer_and_counted() {
        let host = FakeHost::new();
        let mut order = with_items(vec![item("A", 2, 1.25)]);
        order.customer = Some("alice".into());
        decide_created(order.clone());
        assert_eq!(
            host.store_get(ORDERS_BY_CUSTOMER, &format!("alice/{}", order.id))
                .as_deref(),
            Some("2.5")
        );
        assert_eq!(host.cache_get(ORDERS_CREATED).as_deref(), Some("1"));
        assert!(host.logged(Level::Info, "1 orders so far"));
    }

    #[test]
    fn redelivered_created_event_writes_the_same_record() {
        let host = FakeHost::new();
        let order = with_items(vec![item("A", 1, 3.0)]);
        let first = decide_created(order.clone());
        let second = decide_created(order);
        assert_eq!(first, second);
        assert_eq!(host.store_rows().len(), 1);
    }

    #[test]
    fn order_without_customer_is_filed_as_anonymous() {
        let host = FakeHost::new();
        let order = order("created");
        decide_created(order.clone());
        assert_eq!(
            host.store_get(ORDERS_BY_CUSTOMER, &format!("anonymous/{}", order.id))
                .as_deref(),
            Some("0")
        );
    }

    #[test]
    fn rejected_order_is_not_filed() {
        let host = FakeHost::new();
        decide_created(with_items(vec![item("A", 0, 1.0)]));
        assert!(host.store_rows().is_empty());
        assert_eq!(host.calls(), 0);
    }

    #[test]
    fn host_errors_while_filing_are_logged_not_fatal() {
        let host = FakeHost::new();
        host.fail_with(HostError::Unavailable("cassandra timed out".into()));
        let decision = decide_created(with_items(vec![item("A", 1, 1.0)]));
        assert_eq!(decision.transition_to(), Some("awaiting_payment"));
        assert!(host.logged(
            Level::Warn,
            "could not file the order under customer anonymous: unavailable: cassandra"
        ));
        assert!(host.logged(Level::Warn, "could not count the order"));
    }

    #[test]
    fn created_event_on_an_existing_order_is_rejected() {
        let _host = FakeHost::new();
        let decision = decide_created(order("paid"));
        assert_eq!(
            decision,
            Decision::reject("order already created (status paid)")
        );
    }
}
