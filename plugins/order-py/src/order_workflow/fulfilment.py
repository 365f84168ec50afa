"""The ``shipped`` and ``cancel_requested`` events: a paid order ships; an order may be
cancelled while it awaits payment or is paid, never once it has shipped."""

from orderpipe_plugin import Decision, Event, Order, event_data, reject, transition

from .status import AWAITING_PAYMENT, CANCELLED, PAID, SHIPPED


def ship(order: Order) -> Decision:
    if order.status == PAID:
        return transition(SHIPPED, "order shipped")
    if order.status == SHIPPED:
        return reject("order already shipped")
    return reject(f"shipping not expected in status {order.status}")


def cancel(order: Order, event: Event) -> Decision:
    """Cancels on request; a ``{"reason": "..."}`` in the event's data is kept in the history."""
    if order.status in (AWAITING_PAYMENT, PAID):
        return transition(CANCELLED, f"cancelled on request{requested_reason(event)}")
    if order.status == SHIPPED:
        return reject("order already shipped")
    if order.status == CANCELLED:
        return reject("order already cancelled")
    return reject(f"cancel not allowed in status {order.status}")


def requested_reason(event: Event) -> str:
    try:
        data = event_data(event)
    except ValueError:
        return ""
    reason = data.get("reason") if isinstance(data, dict) else None
    return f": {reason}" if isinstance(reason, str) else ""
