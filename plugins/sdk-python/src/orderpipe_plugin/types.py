"""The contract's types: the dataclasses componentize-py generates from ``wit/plugin.wit``.

Inside the component they come from the bindings componentize-py builds in; in native tests
from the same bindings generated on disk (``orderpipe_plugin.native.use_bindings``). Nothing
here adds to or changes what crosses the boundary.

As componentize-py maps WIT: records are dataclasses with snake_case fields (``from`` is
``from_``), integers are ``int``, ``option<T>`` is ``Optional[T]``, and a variant case is its
own dataclass holding ``value`` (``Decision_Transition(Transition(...))``).
"""

from wit_world.imports.log import Level
from wit_world.imports.types import (
    Attribute,
    Decision,
    Decision_NoChange,
    Decision_Reject,
    Decision_Transition,
    Edge,
    Event,
    HostError_Invalid,
    HostError_QuotaExceeded,
    HostError_Unavailable,
    LineItem,
    Order,
    PluginInfo,
    StateMachine,
    Transition,
)

WitHostError = HostError_Invalid | HostError_QuotaExceeded | HostError_Unavailable

__all__ = [
    "Attribute",
    "Decision",
    "Decision_NoChange",
    "Decision_Reject",
    "Decision_Transition",
    "Edge",
    "Event",
    "HostError_Invalid",
    "HostError_QuotaExceeded",
    "HostError_Unavailable",
    "Level",
    "LineItem",
    "Order",
    "PluginInfo",
    "StateMachine",
    "Transition",
    "WitHostError",
]
