"""Building and reading decisions: the WIT variant as componentize-py maps it
(``Decision_Transition(Transition(...))``, ``Decision_NoChange(reason)``,
``Decision_Reject(reason)``). These helpers only build and read it."""

import json
from typing import Any, Mapping, Optional

from .types import Attribute, Decision, Decision_NoChange, Decision_Reject, Decision_Transition, Transition


def transition(to: str, reason: str, attributes: Optional[Mapping[str, Any]] = None) -> Decision:
    """Move the order to ``to``, recording ``reason`` in its history. Each entry of
    ``attributes`` is set on the order, its value stored as JSON (``{"total": 12.5}`` stores
    ``12.5``).

    A value JSON cannot represent (a set, an object, NaN) turns the decision into a reject
    that names the attribute, rather than a trap.
    """
    encoded = []
    for key, value in (attributes or {}).items():
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as error:
            return reject(f"attribute {key} is not valid JSON: {error}")
        encoded.append(Attribute(key=key, value=text))
    return Decision_Transition(Transition(to=to, reason=reason, attributes=encoded))


def no_change(reason: str) -> Decision:
    """Accept the event but keep the order's status."""
    return Decision_NoChange(reason)


def reject(reason: str) -> Decision:
    """Refuse the event; the order is unchanged and ``reason`` is recorded."""
    return Decision_Reject(reason)


def transition_to(decision: Decision) -> Optional[str]:
    """The status a transition moves to; ``None`` for no-change and reject."""
    return decision.value.to if isinstance(decision, Decision_Transition) else None


def is_reject(decision: Decision) -> bool:
    """Whether the event was refused."""
    return isinstance(decision, Decision_Reject)


def reason_of(decision: Decision) -> str:
    """The reason recorded with the decision, whatever its kind."""
    return decision.value.reason if isinstance(decision, Decision_Transition) else decision.value


def decision_attribute(decision: Decision, key: str) -> Any:
    """An attribute a transition sets, parsed from its JSON; ``None`` when it sets no such
    attribute (or the decision is not a transition)."""
    if not isinstance(decision, Decision_Transition):
        return None
    raw = find_attribute(decision.value.attributes, key)
    return None if raw is None else json.loads(raw)


def find_attribute(attributes: list[Attribute], key: str) -> Optional[str]:
    """The last attribute named ``key``, as JSON text."""
    found = None
    for attribute in attributes:
        if attribute.key == key:
            found = attribute.value
    return found
