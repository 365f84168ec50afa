"""The workflow as an ``OrderPlugin``: its state machine, and which module decides which event."""

from orderpipe_plugin import Decision, Event, Order, PluginInfo, plugin_info, reject, state_machine

from . import created, fulfilment, payment
from .status import AWAITING_PAYMENT, CANCELLED, CREATED, PAID, PROCESSED, REJECTED, SHIPPED

NAME = "order"
#: The Rust plugin's version with a ``-py`` suffix, so the registry tells the two apart.
VERSION = "0.1.0-py"


class OrderWorkflow:
    def describe(self) -> PluginInfo:
        machine = (
            state_machine(CREATED)
            .edge(CREATED, PROCESSED)
            .edge(CREATED, AWAITING_PAYMENT)
            .edge(CREATED, REJECTED)
            .edge(AWAITING_PAYMENT, PAID)
            .edge(PAID, SHIPPED)
            .edge(AWAITING_PAYMENT, CANCELLED)
            .edge(PAID, CANCELLED)
        )
        return plugin_info(NAME, VERSION, machine)

    def decide(self, order: Order, event: Event) -> Decision:
        if event.kind == "created":
            return created.decide(order)
        if event.kind == "payment_received":
            return payment.decide(order, event)
        if event.kind == "shipped":
            return fulfilment.ship(order)
        if event.kind == "cancel_requested":
            return fulfilment.cancel(order, event)
        return reject(f"unknown event type {event.kind}")
