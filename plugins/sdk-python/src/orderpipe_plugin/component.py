"""The component's side of the SDK: binds the WIT imports as the host and turns an
:class:`~orderpipe_plugin.OrderPlugin` into the world's exports. Use it only in the app module
componentize-py builds (the WIT imports exist only inside the host)::

    from orderpipe_plugin.component import export_plugin
    from my_plugin import MyPlugin

    WitWorld = export_plugin(MyPlugin())

It also lists the objects the build-time snapshot holds, for ``orderpipe plugin build`` to mark
immortal (``snapshot.py``): a fresh instance then writes far fewer of the image's pages.
"""

import traceback
from typing import Callable, Iterable, Optional, Tuple

import wit_world
from wit_world.imports import cache, clock, log, store

from . import snapshot
from .host import set_host
from .plugin import OrderPlugin
from .types import Decision, Event, Level, Order, PluginInfo


class _WitHost:
    store = store
    cache = cache
    log = log
    clock = clock


def export_plugin(
    plugin: OrderPlugin, warm_up: Optional[Callable[[], Iterable[Tuple[Order, Event]]]] = None
) -> type:
    """The ``WitWorld`` class componentize-py looks for in the app module, deciding with
    ``plugin``. An exception raised by ``describe`` or ``decide`` traps (the host records the
    event as failed); its traceback is sent to the host's log first, so the reason is not
    lost. Expected failures belong in a ``reject``, never a raise.

    ``warm_up``, if given, returns sample ``(order, event)`` pairs that are decided once at build
    time, against a fake host (``testing.FakeHost``) thrown away afterwards, so that what
    CPython builds on a first call (specialised bytecode, caches, lazily imported modules) is in
    the snapshot every instance starts from instead of being built again by every instance.
    Whatever the plugin keeps in globals from those samples is in every instance too: keep
    none. An exception a sample raises fails the build."""
    set_host(_WitHost)

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> PluginInfo:
            return _logging_raise("describe", plugin.describe)

        def decide(self, order: Order, event: Event) -> Decision:
            return _logging_raise("decide", lambda: plugin.decide(order, event))

    if warm_up is not None:
        _decide_samples(plugin, warm_up)
    snapshot.record()
    return WitWorld


def _decide_samples(plugin: OrderPlugin, warm_up) -> None:
    from .testing import FakeHost

    try:
        for order, event in warm_up():
            FakeHost()
            plugin.decide(order, event)
    finally:
        set_host(_WitHost)


def _logging_raise(what, f):
    try:
        return f()
    except BaseException as error:
        # The exception first: the host shows a log line's beginning, a traceback ends with it.
        log.log(Level.ERROR, f"plugin raised in {what}: {type(error).__name__}: {error}\n{traceback.format_exc()}")
        raise
