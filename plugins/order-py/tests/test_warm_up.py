from orderpipe_plugin import is_reject
from orderpipe_plugin.testing import FakeHost

from order_workflow.plugin import OrderWorkflow
from order_workflow.warm_up import samples


def test_every_warm_up_sample_decides_without_raising_and_covers_each_event_kind():
    plugin = OrderWorkflow()
    kinds = set()
    rejected = 0
    for order, event in samples():
        FakeHost()
        decision = plugin.decide(order, event)
        kinds.add(event.kind)
        rejected += is_reject(decision)
    assert kinds == {"created", "payment_received", "shipped", "cancel_requested", "no_such_event"}
    # The short payment and the unknown kind, three times each: the rejecting paths warm up too.
    assert rejected == 6
