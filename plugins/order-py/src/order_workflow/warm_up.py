"""Sample decisions the build makes once, before the snapshot every instance starts from is
taken (``export_plugin(..., warm_up=samples)``): each event kind, on the paths an order takes
most, three times, so CPython's specialised bytecode and lazily built state are in the image."""

import json
from typing import Iterator, Tuple

from orderpipe_plugin import Event, Order
from orderpipe_plugin.testing import event, item, order


def samples() -> Iterator[Tuple[Order, Event]]:
    items = [item("S", 2, 2.5), item("T", 1, 10.0)]
    for _ in range(3):
        yield order("created"), event("created")
        priced = order("created")
        priced.items = items
        priced.customer = "warm-up"
        priced.currency = "EUR"
        yield priced, event("created")
        awaiting = order("awaiting_payment")
        awaiting.items = items
        yield awaiting, event("payment_received", json.dumps({"amount": 15.0, "payment_id": "p-paid"}))
        yield awaiting, event("payment_received", json.dumps({"amount": 1.0, "payment_id": "p-short"}))
        yield order("paid"), event("shipped")
        yield order("paid"), event("cancel_requested")
        yield order("paid"), event("no_such_event")
