"""The component's side of the SDK: binds the WIT imports as the host and turns an
:class:`~orderpipe_plugin.OrderPlugin` into the world's exports. Use it only in the app module
componentize-py builds (the WIT imports exist only inside the host)::

    from orderpipe_plugin.component import export_plugin
    from my_plugin import MyPlugin

    WitWorld = export_plugin(MyPlugin())
"""

import traceback

import wit_world
from wit_world.imports import cache, clock, log, store

from .host import set_host
from .plugin import OrderPlugin
from .types import Decision, Event, Level, Order, PluginInfo


class _WitHost:
    store = store
    cache = cache
    log = log
    clock = clock


def export_plugin(plugin: OrderPlugin) -> type:
    """The ``WitWorld`` class componentize-py looks for in the app module, deciding with
    ``plugin``. An exception raised by ``describe`` or ``decide`` traps (the host records the
    event as failed); its traceback is sent to the host's log first, so the reason is not
    lost. Expected failures belong in a ``reject``, never a raise."""
    set_host(_WitHost)

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> PluginInfo:
            return _logging_raise("describe", plugin.describe)

        def decide(self, order: Order, event: Event) -> Decision:
            return _logging_raise("decide", lambda: plugin.decide(order, event))

    return WitWorld


def _logging_raise(what, f):
    try:
        return f()
    except BaseException as error:
        # The exception first: the host shows a log line's beginning, a traceback ends with it.
        log.log(Level.ERROR, f"plugin raised in {what}: {type(error).__name__}: {error}\n{traceback.format_exc()}")
        raise
