from orderpipe_plugin import Decision, reason_of, reject, transition
from orderpipe_plugin.testing import FakeHost, event, order

from order_workflow.plugin import OrderWorkflow


def decide(status: str, kind: str, data: str = "{}") -> Decision:
    return OrderWorkflow().decide(order(status), event(kind, data))


def test_a_paid_order_ships_once():
    FakeHost()
    assert decide("paid", "shipped") == transition("shipped", "order shipped")
    assert decide("shipped", "shipped") == reject("order already shipped")


def test_an_unpaid_order_does_not_ship():
    FakeHost()
    for status in ("created", "processed", "awaiting_payment", "rejected", "cancelled"):
        assert decide(status, "shipped") == reject(f"shipping not expected in status {status}")


def test_an_order_awaiting_payment_or_paid_can_be_cancelled():
    FakeHost()
    for status in ("awaiting_payment", "paid"):
        assert decide(status, "cancel_requested") == transition("cancelled", "cancelled on request")


def test_the_cancel_reason_is_kept_when_there_is_one():
    FakeHost()
    assert reason_of(decide("paid", "cancel_requested", '{"reason": "changed my mind"}')) == (
        "cancelled on request: changed my mind"
    )
    assert reason_of(decide("paid", "cancel_requested", "not json")) == "cancelled on request"
    assert reason_of(decide("paid", "cancel_requested", '{"reason": 3}')) == "cancelled on request"


def test_cancel_in_other_statuses_is_rejected():
    FakeHost()
    assert decide("shipped", "cancel_requested") == reject("order already shipped")
    assert decide("cancelled", "cancel_requested") == reject("order already cancelled")
    for status in ("created", "processed", "rejected"):
        assert decide(status, "cancel_requested") == reject(f"cancel not allowed in status {status}")
