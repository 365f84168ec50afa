import math

from orderpipe_plugin import Decision, Level, LineItem, Order, decision_attribute, reason_of, reject, transition, transition_to
from orderpipe_plugin.testing import FakeHost, event, item, order
from orderpipe_plugin.types import HostError_Unavailable

from order_workflow.created import CURRENCIES, ORDERS_BY_CUSTOMER, ORDERS_CREATED, order_total
from order_workflow.plugin import OrderWorkflow


def decide_created(o: Order) -> Decision:
    return OrderWorkflow().decide(o, event("created"))


def with_items(items: list[LineItem], **fields) -> Order:
    o = order("created")
    o.items = items
    for name, value in fields.items():
        setattr(o, name, value)
    return o


def test_an_order_without_items_is_processed():
    FakeHost()
    assert decide_created(order("created")) == transition("processed", "order has no items")


def test_an_order_with_items_awaits_payment_of_its_total():
    FakeHost()
    decision = decide_created(with_items([item("A", 2, 1.25), item("B", 1, 10.0)]))
    assert transition_to(decision) == "awaiting_payment"
    assert reason_of(decision) == "awaiting payment of 12.50 USD"
    assert decision_attribute(decision, "total") == 12.5
    assert decision_attribute(decision, "currency") == "USD"


def test_the_total_is_rounded_to_cents():
    FakeHost()
    decision = decide_created(with_items([item("A", 3, 0.1), item("B", 1, 0.2), item("C", 1, 0.004)]))
    assert decision_attribute(decision, "total") == 0.5
    assert order_total([item("A", 1, 0.1), item("B", 1, 0.2)]) == 0.3
    assert order_total([item("A", 1, 0.125)]) == 0.13, "half a cent rounds away from zero"


def test_a_named_currency_is_kept_upper_cased():
    FakeHost()
    decision = decide_created(with_items([item("A", 1, 5.0)], currency="eur"))
    assert decision_attribute(decision, "currency") == "EUR"
    assert reason_of(decision) == "awaiting payment of 5.00 EUR"


def test_every_listed_currency_is_accepted():
    FakeHost()
    for code in CURRENCIES:
        assert transition_to(decide_created(with_items([item("A", 1, 1.0)], currency=code))) == "awaiting_payment", code


def test_an_unknown_currency_is_rejected_even_without_items():
    FakeHost()
    assert decide_created(with_items([item("A", 1, 5.0)], currency="XYZ")) == transition(
        "rejected", 'unknown currency "XYZ"'
    )
    assert decide_created(with_items([], currency="")) == transition("rejected", 'unknown currency ""')


def test_a_non_positive_qty_is_rejected():
    FakeHost()
    for qty in (0, -1):
        assert decide_created(with_items([item("A", 1, 1.0), item("ABC", qty, 1.0)])) == transition(
            "rejected", "item 2 (sku ABC): qty must be positive"
        )


def test_a_negative_or_non_finite_unit_price_is_rejected_a_free_item_accepted():
    FakeHost()
    assert decide_created(with_items([item("A", 1, -0.01)])) == transition(
        "rejected", "item 1 (sku A): unit_price must not be negative"
    )
    assert decide_created(with_items([item("A", 1, math.nan)])) == transition(
        "rejected", "item 1 (sku A): unit_price must be a finite number"
    )
    assert decision_attribute(decide_created(with_items([item("GIFT", 1, 0.0)])), "total") == 0


def test_an_empty_sku_is_rejected():
    FakeHost()
    assert decide_created(with_items([item("A", 1, 1.0), item(" ", 1, 1.0)])) == transition(
        "rejected", "item 2: sku must not be empty"
    )


def test_every_problem_is_named():
    FakeHost()
    decision = decide_created(with_items([item("A", 0, 1.0), item("B", 1, -1.0)], currency="ABC"))
    assert reason_of(decision) == (
        'unknown currency "ABC"; item 1 (sku A): qty must be positive; '
        "item 2 (sku B): unit_price must not be negative"
    )


def test_an_overflowing_total_is_rejected():
    FakeHost()
    assert decide_created(with_items([item("A", 2**63 - 1, 1.7976931348623157e308)])) == transition(
        "rejected", "order total is too large"
    )


def test_an_accepted_order_is_filed_under_its_customer_and_counted():
    host = FakeHost()
    o = with_items([item("A", 2, 1.25)], customer="alice")
    decide_created(o)
    assert host.store_get(ORDERS_BY_CUSTOMER, f"alice/{o.id}") == "2.5"
    assert host.cache_get(ORDERS_CREATED) == "1"
    assert host.logged(Level.INFO, "1 orders so far")


def test_a_redelivered_created_event_writes_the_same_record():
    host = FakeHost()
    o = with_items([item("A", 1, 3.0)])
    assert decide_created(o) == decide_created(o)
    assert host.store_rows() == [(ORDERS_BY_CUSTOMER, f"anonymous/{o.id}", "3")]


def test_an_order_without_a_customer_is_filed_as_anonymous_with_total_0():
    host = FakeHost()
    o = with_items([], customer="  ")
    decide_created(o)
    assert host.store_get(ORDERS_BY_CUSTOMER, f"anonymous/{o.id}") == "0"


def test_a_rejected_order_is_not_filed():
    host = FakeHost()
    decide_created(with_items([item("A", 0, 1.0)]))
    assert host.store_rows() == []
    assert host.calls() == 0


def test_host_errors_while_filing_are_logged_not_fatal():
    host = FakeHost()
    host.fail_with(HostError_Unavailable("cassandra timed out"))
    decision = decide_created(with_items([item("A", 1, 1.0)]))
    assert transition_to(decision) == "awaiting_payment"
    assert host.logged(Level.WARN, "could not file the order under customer anonymous: unavailable: cassandra")
    assert host.logged(Level.WARN, "could not count the order")


def test_a_created_event_on_an_existing_order_is_rejected():
    FakeHost()
    assert decide_created(order("paid")) == reject("order already created (status paid)")
