"""Reading the JSON that orders and events carry: ``event.data``, ``order.attributes``
values. Broken JSON raises ``json.JSONDecodeError`` (a ``ValueError``); decide whether that
is a reject."""

import json
from typing import Any, Optional

from .decision import find_attribute
from .types import Event, Order


def parse_json(text: str) -> Any:
    """Strict JSON: ``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` accepts
    by default, are refused as they are in the other languages."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def event_data(event: Event) -> Any:
    """The event's data parsed from its JSON; empty data reads as ``{}``."""
    return parse_json(event.data if event.data.strip() else "{}")


def order_attribute_raw(order: Order, key: str) -> Optional[str]:
    """An attribute's JSON text as stored; the last one wins if the key repeats."""
    return find_attribute(order.attributes, key)


def order_attribute(order: Order, key: str) -> Any:
    """An attribute parsed from its JSON; ``None`` when the order has no such attribute."""
    raw = order_attribute_raw(order, key)
    return None if raw is None else parse_json(raw)
