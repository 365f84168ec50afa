from orderpipe_plugin import Attribute, Decision, Level, Order, decision_attribute, is_reject, reason_of, reject, transition_to
from orderpipe_plugin.testing import FakeHost, event, item, order
from orderpipe_plugin.types import HostError_Unavailable

from order_workflow.payment import PAYMENT_ID_TTL_SECONDS
from order_workflow.plugin import OrderWorkflow


def awaiting_payment(attributes=None) -> Order:
    """An order awaiting payment of 12.50."""
    o = order("awaiting_payment")
    o.items = [item("A", 5, 2.5)]
    o.attributes = attributes if attributes is not None else [Attribute("total", "12.5"), Attribute("currency", '"USD"')]
    return o


def pay(o: Order, data: str) -> Decision:
    return OrderWorkflow().decide(o, event("payment_received", data))


def test_a_payment_covering_the_total_pays_the_order():
    FakeHost()
    decision = pay(awaiting_payment(), '{"amount": 12.5}')
    assert transition_to(decision) == "paid"
    assert reason_of(decision) == "payment of 12.50 received"
    assert decision_attribute(decision, "paid_amount") == 12.5
    assert decision_attribute(decision, "payment_id") is None


def test_an_overpayment_pays_the_order_its_amount_kept_as_a_float():
    FakeHost()
    decision = pay(awaiting_payment(), '{"amount": 20}')
    assert transition_to(decision) == "paid"
    assert decision.value.attributes[0] == Attribute("paid_amount", "20.0")


def test_a_short_payment_is_rejected():
    FakeHost()
    assert pay(awaiting_payment(), '{"amount": 5}') == reject("amount 5.00 is less than the order total 12.50")
    assert pay(awaiting_payment(), '{"amount": 12.49}') == reject("amount 12.49 is less than the order total 12.50")


def test_amounts_compare_in_whole_cents_and_print_as_rust_prints_them():
    FakeHost()
    assert transition_to(pay(awaiting_payment(), '{"amount": 12.499999}')) == "paid"
    # 12.125 is 1212.5 cents, rounded away from zero to 1213: it pays 12.13. Printed with two
    # decimals it is a tie, which Rust (and so the Rust plugin) rounds half to even: "12.12".
    o = awaiting_payment([Attribute("total", "12.13")])
    assert reason_of(pay(o, '{"amount": 12.125}')) == "payment of 12.12 received"


def test_a_missing_amount_is_rejected():
    FakeHost()
    for data in ("{}", "", '{"amount": null}'):
        assert pay(awaiting_payment(), data) == reject("payment has no amount"), data


def test_a_non_numeric_amount_is_rejected():
    FakeHost()
    assert pay(awaiting_payment(), '{"amount": "12.50"}') == reject('amount must be a number, got "12.50"')
    assert pay(awaiting_payment(), '{"amount": true}') == reject("amount must be a number, got true")


def test_malformed_payment_data_is_rejected():
    FakeHost()
    assert reason_of(pay(awaiting_payment(), "{")).startswith("payment data is not valid JSON")
    assert pay(awaiting_payment(), "[1]") == reject("payment data must be a JSON object")
    assert pay(awaiting_payment(), '{"amount": 20, "payment_id": 7}') == reject(
        "payment_id must be a non-empty string, got 7"
    )
    assert pay(awaiting_payment(), '{"amount": 1e400}') == reject("payment data is not valid JSON: number out of range")
    assert reason_of(pay(awaiting_payment(), '{"amount": NaN}')).startswith("payment data is not valid JSON")


def test_a_payment_in_another_status_is_rejected():
    FakeHost()
    for status in ("created", "processed", "rejected", "paid", "shipped", "cancelled"):
        o = awaiting_payment()
        o.status = status
        assert pay(o, '{"amount": 20}') == reject(f"payment not expected in status {status}")


def test_the_total_is_recomputed_when_the_attribute_is_missing_or_broken():
    host = FakeHost()
    assert reason_of(pay(awaiting_payment([]), '{"amount": 12}')) == "amount 12.00 is less than the order total 12.50"
    assert transition_to(pay(awaiting_payment([Attribute("total", '"lots"')]), '{"amount": 12.5}')) == "paid"
    assert host.logged(Level.WARN, "order attribute total is not a number")


def test_a_payment_id_is_claimed_for_a_day():
    host = FakeHost()
    decision = pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}')
    assert reason_of(decision) == "payment (p-1) of 12.50 received"
    assert decision_attribute(decision, "payment_id") == "p-1"
    assert host.cache_get("payment:p-1") == "event-1"
    assert host.cache_ttl("payment:p-1") == PAYMENT_ID_TTL_SECONDS


def test_a_payment_id_used_by_another_event_is_a_duplicate():
    host = FakeHost()
    host.cache_set("payment:p-1", "event-0")
    assert pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}') == reject("duplicate payment p-1")
    assert host.cache_get("payment:p-1") == "event-0"


def test_a_redelivered_payment_event_is_accepted_again():
    host = FakeHost()
    first = pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}')
    again = pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}')
    assert first == again
    assert transition_to(again) == "paid"
    assert host.cache_get("payment:p-1") == "event-1"
    assert host.logged(Level.INFO, "a redelivery")


def test_a_short_payment_does_not_claim_its_id():
    host = FakeHost()
    pay(awaiting_payment(), '{"amount": 1, "payment_id": "p-1"}')
    assert host.cache_get("payment:p-1") is None
    assert host.calls() == 0


def test_a_payment_without_an_id_makes_no_host_call():
    host = FakeHost()
    assert transition_to(pay(awaiting_payment(), '{"amount": 12.5}')) == "paid"
    assert host.calls() == 0


def test_an_unavailable_cache_rejects_a_payment_with_an_id():
    host = FakeHost()
    host.fail_with(HostError_Unavailable("redis timed out"))
    assert pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}') == reject(
        "payment p-1 could not be checked for duplicates: unavailable: redis timed out"
    )


def test_a_failing_claim_rejects_the_payment():
    host = FakeHost()
    host.set_quota(1)
    decision = pay(awaiting_payment(), '{"amount": 12.5, "payment_id": "p-1"}')
    assert is_reject(decision)
    assert "quota-exceeded" in reason_of(decision)
