from orderpipe_plugin import reject, transition_to
from orderpipe_plugin.testing import FakeHost, event, item, order

from order_workflow.plugin import OrderWorkflow


def test_describes_the_order_state_machine_as_the_rust_plugin_does():
    info = OrderWorkflow().describe()
    assert (info.name, info.version) == ("order", "0.1.0-py")
    machine = info.state_machine
    assert machine.initial == "created"
    assert machine.states == ["created", "processed", "awaiting_payment", "rejected", "paid", "shipped", "cancelled"]
    assert [(edge.from_, edge.to) for edge in machine.transitions] == [
        ("created", "processed"),
        ("created", "awaiting_payment"),
        ("created", "rejected"),
        ("awaiting_payment", "paid"),
        ("paid", "shipped"),
        ("awaiting_payment", "cancelled"),
        ("paid", "cancelled"),
    ]


def test_an_unknown_event_type_is_rejected():
    FakeHost()
    assert OrderWorkflow().decide(order("paid"), event("refund_requested")) == reject(
        "unknown event type refund_requested"
    )


def test_every_transition_the_plugin_makes_is_an_edge():
    FakeHost()
    edges = {(edge.from_, edge.to) for edge in OrderWorkflow().describe().state_machine.transitions}
    priced = order("awaiting_payment")
    priced.items = [item("A", 1, 2.0)]
    cases = [
        (order("created"), event("created")),
        (priced, event("payment_received", '{"amount": 2}')),
        (order("paid"), event("shipped")),
        (order("paid"), event("cancel_requested")),
        (priced, event("cancel_requested")),
    ]
    for o, e in cases:
        to = transition_to(OrderWorkflow().decide(o, e))
        assert to is not None, f"{o.status} on {e.kind} is a transition"
        assert (o.status, to) in edges, f"{o.status} -> {to} is not an edge"
