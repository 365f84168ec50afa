"""What a plugin implements."""

from typing import Protocol

from .types import Decision, Event, Order, PluginInfo


class OrderPlugin(Protocol):
    """Describe itself, and decide on events.

    Every event runs on a fresh instance unless the operator opts the plugin into reuse, so
    nothing survives in memory from one order to the next: keep what must last in ``store``
    or ``cache``.
    """

    def describe(self) -> PluginInfo:
        """The plugin's name, version and state machine. Called once when the host loads it."""
        ...

    def decide(self, order: Order, event: Event) -> Decision:
        """What ``event`` means for ``order``. A transition must follow an edge of the state
        machine from ``order.status``, or the host refuses it."""
        ...
