"""The ``created`` event: the order itself has arrived.

An order without items is ``processed``. An order with items is priced: its total and
currency become attributes and it waits for payment. An order that cannot be priced (a bad
item, an unknown currency) is ``rejected``, every problem named in the reason. An accepted
order is also filed under its customer in the store and counted in the cache; neither is
allowed to change the decision.
"""

import math
import re
from typing import Optional

from orderpipe_plugin import Decision, HostError, LineItem, Order, cache, log, reject, store, transition

from .rustfmt import debug_str, display, round_half_away_from_zero
from .status import AWAITING_PAYMENT, CREATED, PROCESSED, REJECTED

#: The currency of an order that names none.
DEFAULT_CURRENCY = "USD"

#: The ISO 4217 codes the workflow prices in.
CURRENCIES = (
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "INR", "CNY", "BRL", "MXN", "ZAR", "SGD", "HKD",
)  # fmt: skip

#: Store table of accepted orders, keyed ``<customer>/<order id>``, valued with the total.
ORDERS_BY_CUSTOMER = "orders-by-customer"
#: Cache counter of accepted orders. It counts deliveries: a redelivered ``created`` event
#: counts again, which is fine for a gauge of traffic.
ORDERS_CREATED = "orders-created"
#: The customer key of an order that names no customer.
ANONYMOUS = "anonymous"


def decide(order: Order) -> Decision:
    if order.status != CREATED:
        return reject(f"order already created (status {order.status})")
    priced = price(order)
    if isinstance(priced, list):
        return transition(REJECTED, "; ".join(priced))
    total, currency = priced
    file_under_customer(order, total)
    if not order.items:
        return transition(PROCESSED, "order has no items")
    return transition(
        AWAITING_PAYMENT,
        f"awaiting payment of {total:.2f} {currency}",
        {"total": total, "currency": currency},
    )


def price(order: Order) -> tuple[float, str] | list[str]:
    """The order's total and currency, or every reason it cannot be priced."""
    problems = []
    currency = DEFAULT_CURRENCY
    if order.currency is not None:
        currency = re.sub("[a-z]", lambda m: m.group().upper(), order.currency.strip())
        if currency not in CURRENCIES:
            problems.append(f"unknown currency {debug_str(order.currency)}")
    for number, item in enumerate(order.items, start=1):
        problem = item_problem(number, item)
        if problem is not None:
            problems.append(problem)
    total = order_total(order.items)
    if not problems and not math.isfinite(total):
        problems.append("order total is too large")
    return problems if problems else (total, currency)


def item_problem(number: int, item: LineItem) -> Optional[str]:
    """What is wrong with the ``number``th (from 1) item, if anything."""
    sku = item.sku.strip()
    if not sku:
        return f"item {number}: sku must not be empty"
    if item.qty <= 0:
        problem = "qty must be positive"
    elif not math.isfinite(item.unit_price):
        problem = "unit_price must be a finite number"
    elif item.unit_price < 0:
        problem = "unit_price must not be negative"
    else:
        return None
    return f"item {number} (sku {sku}): {problem}"


def order_total(items: list[LineItem]) -> float:
    """The sum of qty × unit price, rounded to cents."""
    total = 0.0
    for item in items:
        total += float(item.qty) * item.unit_price
    return round_half_away_from_zero(total * 100.0) / 100.0


def file_under_customer(order: Order, total: float) -> None:
    """Records the order under its customer and counts it. Bookkeeping only: a host error is
    logged and does not change the decision."""
    customer = (order.customer or "").strip() or ANONYMOUS
    try:
        store.put(ORDERS_BY_CUSTOMER, f"{customer}/{order.id}", display(total))
    except HostError as error:
        log.warn(f"could not file the order under customer {customer}: {error.reason}")
    try:
        count = cache.incr(ORDERS_CREATED, 1)
    except HostError as error:
        log.warn(f"could not count the order: {error.reason}")
    else:
        log.info(f"order accepted for {customer}, total {total:.2f}; {count} orders so far")
