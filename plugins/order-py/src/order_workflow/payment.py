"""The ``payment_received`` event: ``{"amount": number, "payment_id": optional string}``.

A payment that covers the order's total pays an order awaiting payment. A payment id is
honoured once: the cache remembers which event used it (``payment:<id>`` → event id, for a
day), so the same id on another event is a duplicate, while a redelivery of the same event
goes through again. If that check cannot be made (the cache fails) the payment is rejected
with the host's reason; the client may post it again.

The check and the claim are two cache calls, not one atomic step: two events racing with the
same payment id could both pass. The host's WIT has no set-if-absent to close that.
"""

import math
from dataclasses import dataclass
from typing import Optional

from orderpipe_plugin import Decision, Event, HostError, Order, cache, event_data, log, order_attribute, reject, transition

from .created import order_total
from .rustfmt import json_text, round_half_away_from_zero, saturating_i64
from .status import AWAITING_PAYMENT, PAID

#: How long a payment id stays claimed, in seconds.
PAYMENT_ID_TTL_SECONDS = 86_400


@dataclass
class Payment:
    """A payment as the client sent it."""

    amount: float
    id: Optional[str]


class Refused(Exception):
    """Why a payment must be rejected; the message is the decision's reason."""


def decide(order: Order, event: Event) -> Decision:
    if order.status != AWAITING_PAYMENT:
        return reject(f"payment not expected in status {order.status}")
    try:
        payment = parse(event)
    except Refused as refused:
        return reject(str(refused))
    total = total_due(order)
    if cents(payment.amount) < cents(total):
        return reject(f"amount {payment.amount:.2f} is less than the order total {total:.2f}")
    if payment.id is not None:
        try:
            claim(payment.id, event.id)
        except Refused as refused:
            return reject(str(refused))
    by = "" if payment.id is None else f" ({payment.id})"
    log.info(f"payment{by} of {payment.amount:.2f} received for a total of {total:.2f}")
    attributes: dict[str, object] = {"paid_amount": payment.amount}
    if payment.id is not None:
        attributes["payment_id"] = payment.id
    return transition(PAID, f"payment{by} of {payment.amount:.2f} received", attributes)


def parse(event: Event) -> Payment:
    try:
        data = event_data(event)
    except ValueError as error:
        raise Refused(f"payment data is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise Refused("payment data must be a JSON object")
    amount = data.get("amount")
    if amount is None:
        raise Refused("payment has no amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise Refused(f"amount must be a number, got {json_text(amount)}")
    try:
        amount = float(amount)
    except OverflowError:
        amount = math.inf
    if not math.isfinite(amount):
        # Python reads 1e400 as inf, where Rust's JSON parser refuses it.
        raise Refused("payment data is not valid JSON: number out of range")
    payment_id = data.get("payment_id")
    if payment_id is None:
        return Payment(amount, None)
    if isinstance(payment_id, str) and payment_id.strip():
        return Payment(amount, payment_id)
    raise Refused(f"payment_id must be a non-empty string, got {json_text(payment_id)}")


def total_due(order: Order) -> float:
    """The order's total: the ``total`` attribute set when it was priced, else recomputed."""
    try:
        total = order_attribute(order, "total")
    except ValueError as error:
        return recomputed(order, str(error))
    if total is None:
        return order_total(order.items)
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        return recomputed(order, f"{json_text(total)} is not a number")
    return float(total)


def recomputed(order: Order, why: str) -> float:
    log.warn(f"order attribute total is not a number ({why}); recomputing it from the items")
    return order_total(order.items)


def cents(amount: float) -> int:
    """Amounts compare in whole cents, so 12.499999 pays 12.50 but 12.49 does not."""
    return saturating_i64(round_half_away_from_zero(amount * 100.0))


def claim(payment_id: str, event_id: str) -> None:
    """Claims ``payment_id`` for ``event_id``, or raises :class:`Refused` saying why not."""
    key = f"payment:{payment_id}"
    try:
        owner = cache.get(key)
        if owner is None:
            cache.set(key, event_id, PAYMENT_ID_TTL_SECONDS)
            return
    except HostError as error:
        log.warn(f"payment {payment_id} could not be checked: {error.reason}")
        raise Refused(f"payment {payment_id} could not be checked for duplicates: {error.reason}") from None
    if owner == event_id:
        log.info(f"payment {payment_id} seen again on its own event {event_id}: a redelivery")
        return
    log.warn(f"payment {payment_id} was already used by event {owner}")
    raise Refused(f"duplicate payment {payment_id}")
