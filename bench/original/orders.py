"""The order itself: what a POST may carry, the view GET answers, and the one decision the
consumer makes when an order arrives (the default workflow's `created` rule: no items →
processed; priced items → awaiting_payment with the total; a bad item or currency → rejected).
"""

import math

DEFAULT_CURRENCY = "USD"
CURRENCIES = {
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "INR", "CNY", "BRL", "MXN", "ZAR", "SGD", "HKD",
}
FIELDS = {"customer", "items", "currency", "attributes"}
ITEM_FIELDS = {"sku", "qty", "unit_price"}


class BadOrder(ValueError):
    pass


def parse_request(body):
    """The order a POST body describes (empty body: an empty order); BadOrder says why not."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadOrder("the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise BadOrder(f"unknown field {sorted(unknown)[0]!r}")
    customer = body.get("customer")
    if customer is not None and not isinstance(customer, str):
        raise BadOrder("customer: expected a string")
    currency = body.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise BadOrder("currency: expected a string")
    attributes = body.get("attributes", {})
    if not isinstance(attributes, dict):
        raise BadOrder("attributes: expected an object")
    items = body.get("items", [])
    if not isinstance(items, list):
        raise BadOrder("items: expected an array")
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or set(item) - ITEM_FIELDS or ITEM_FIELDS - set(item):
            raise BadOrder(f"items[{number - 1}]: expected {{sku, qty, unit_price}}")
        if not isinstance(item["sku"], str):
            raise BadOrder(f"items[{number - 1}].sku: expected a string")
        if not isinstance(item["qty"], int) or isinstance(item["qty"], bool):
            raise BadOrder(f"items[{number - 1}].qty: expected an integer")
        if not isinstance(item["unit_price"], (int, float)) or isinstance(item["unit_price"], bool):
            raise BadOrder(f"items[{number - 1}].unit_price: expected a number")
    return {"customer": customer, "items": items, "currency": currency, "attributes": attributes}


def view(order_id, status, version, order, attributes, created_at_ms, updated_at_ms):
    """The JSON GET answers, the same shape as orderpipe's."""
    answer = {"order_id": str(order_id), "pipeline": "orders", "status": status, "version": version}
    if order.get("customer") is not None:
        answer["customer"] = order["customer"]
    answer["items"] = order.get("items", [])
    if order.get("currency") is not None:
        answer["currency"] = order["currency"]
    answer["attributes"] = attributes
    answer["created_at_ms"] = created_at_ms
    answer["updated_at_ms"] = updated_at_ms
    return answer


def decide_created(order):
    """(status, attributes) for a newly arrived order."""
    problems = []
    code = order.get("currency")
    if code is None:
        currency = DEFAULT_CURRENCY
    else:
        currency = code.strip().upper()
        if currency not in CURRENCIES:
            problems.append(f"unknown currency {code!r}")
    total = 0.0
    for number, item in enumerate(order.get("items", []), 1):
        sku = item["sku"].strip()
        if not sku:
            problems.append(f"item {number}: sku must not be empty")
        elif item["qty"] <= 0:
            problems.append(f"item {number} (sku {sku}): qty must be positive")
        elif item["unit_price"] < 0:
            problems.append(f"item {number} (sku {sku}): unit_price must not be negative")
        total += item["qty"] * item["unit_price"]
    total = round(total * 100) / 100 if math.isfinite(total) else total
    attributes = dict(order.get("attributes") or {})
    if not problems and not math.isfinite(total):
        problems.append("order total is too large")
    if problems:
        return "rejected", attributes
    if not order.get("items"):
        return "processed", attributes
    attributes["total"] = total
    attributes["currency"] = currency
    return "awaiting_payment", attributes
