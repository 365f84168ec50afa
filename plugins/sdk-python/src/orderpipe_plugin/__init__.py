"""Write orderpipe plugins in Python.

A plugin is a WebAssembly component implementing the ``order-plugin`` world of
``wit/plugin.wit``: the host hands it an order and an event, the plugin answers with a
decision. This package gives plugin authors the contract's types (the dataclasses
componentize-py generates), decision and state-machine builders, JSON helpers and the host's
functions. It never decides anything itself and keeps no state between calls.

- ``orderpipe_plugin``: everything a plugin's logic uses; runs under plain CPython.
- ``orderpipe_plugin.component``: ``export_plugin``, for the app module componentize-py builds.
- ``orderpipe_plugin.testing``: ``FakeHost`` and input builders for pytest.
- ``orderpipe_bindings`` (a module beside the package): generates the bindings native tests
  import (``use_bindings``).
"""

from .data import event_data, order_attribute, order_attribute_raw, parse_json
from .decision import (
    decision_attribute,
    is_reject,
    no_change,
    reason_of,
    reject,
    transition,
    transition_to,
)
from .host import HostError, cache, clock, log, store
from .plugin import OrderPlugin
from .state_machine import StateMachineBuilder, plugin_info, state_machine
from .types import (
    Attribute,
    Decision,
    Decision_NoChange,
    Decision_Reject,
    Decision_Transition,
    Edge,
    Event,
    Level,
    LineItem,
    Order,
    PluginInfo,
    StateMachine,
    Transition,
)

__version__ = "0.1.0"

__all__ = [
    "Attribute",
    "Decision",
    "Decision_NoChange",
    "Decision_Reject",
    "Decision_Transition",
    "Edge",
    "Event",
    "HostError",
    "Level",
    "LineItem",
    "Order",
    "OrderPlugin",
    "PluginInfo",
    "StateMachine",
    "StateMachineBuilder",
    "Transition",
    "cache",
    "clock",
    "decision_attribute",
    "event_data",
    "is_reject",
    "log",
    "no_change",
    "order_attribute",
    "order_attribute_raw",
    "parse_json",
    "plugin_info",
    "reason_of",
    "reject",
    "state_machine",
    "store",
    "transition",
    "transition_to",
]
