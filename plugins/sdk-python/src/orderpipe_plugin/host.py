"""The host's functions: ``store`` (the plugin's own rows), ``cache`` (its own keys), ``log``
and ``clock``. Inside the component they call the WIT imports (bound by ``component.py``); in
tests they call the fake host of ``testing.py``. Nothing here imports the WIT import modules,
so this file runs under plain CPython.

A store or cache call that fails raises :class:`HostError`: an expected failure to handle
(reject the event, or log and go on), never a bug. Each call counts against the plugin's
host-call quota for the event.
"""

from types import SimpleNamespace
from typing import Any, Callable, Optional, TypeVar

from componentize_py_types import Err

from .types import HostError_Invalid, HostError_QuotaExceeded, HostError_Unavailable, Level, WitHostError

T = TypeVar("T")

_KINDS = {
    HostError_Invalid: "invalid",
    HostError_QuotaExceeded: "quota-exceeded",
    HostError_Unavailable: "unavailable",
}


class HostError(Exception):
    """Why a store or cache call failed: ``kind`` is ``invalid``, ``quota-exceeded`` or
    ``unavailable``, ``detail`` the host's explanation."""

    def __init__(self, error: WitHostError) -> None:
        self.kind = _KINDS[type(error)]
        self.detail = error.value
        self.error = error
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """``kind: detail``, ready for a decision's reason or a log line."""
        return f"{self.kind}: {self.detail}"


class _NoHost:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "no orderpipe host: inside a component use orderpipe_plugin.component.export_plugin; "
            "in tests create orderpipe_plugin.testing.FakeHost()"
        )


_current: Any = _NoHost()


def set_host(host: Any) -> None:
    """Binds the host functions: an object with ``store``, ``cache``, ``log`` and ``clock``
    shaped like the WIT import modules. ``component.py`` and the fake host call this."""
    global _current
    _current = host


def clear_host() -> None:
    """Unbinds the host, so that calls fail saying how to bind one. For tests."""
    set_host(_NoHost())


def _call(f: Callable[[], T]) -> T:
    """Calls a host function and turns the WIT error it raises (componentize-py raises
    ``Err(host_error)``) into a :class:`HostError`."""
    try:
        return f()
    except Err as error:
        if type(error.value) in _KINDS:
            raise HostError(error.value) from None
        raise


def _store_get(table: str, key: str) -> Optional[str]:
    """Reads a value; ``None`` when the key was never written or was deleted."""
    return _call(lambda: _current.store.get(table, key))


def _store_put(table: str, key: str, value: str) -> None:
    """Writes a value, replacing any earlier one."""
    _call(lambda: _current.store.put(table, key, value))


def _store_delete(table: str, key: str) -> None:
    """Deletes a value; deleting a missing key is not an error."""
    _call(lambda: _current.store.delete(table, key))


def _cache_get(key: str) -> Optional[str]:
    """Reads a value; ``None`` when it is missing or expired."""
    return _call(lambda: _current.cache.get(key))


def _cache_set(key: str, value: str, ttl_seconds: Optional[int] = None) -> None:
    """Sets a value; with ``ttl_seconds`` it expires after that many seconds."""
    _call(lambda: _current.cache.set(key, value, ttl_seconds))


def _cache_incr(key: str, delta: int) -> int:
    """Adds ``delta`` to an integer value (a missing one counts as 0); returns the new value."""
    return _call(lambda: _current.cache.incr(key, delta))


def _cache_delete(key: str) -> None:
    """Deletes a value; deleting a missing key is not an error."""
    _call(lambda: _current.cache.delete(key))


def _log(level: Level, message: str) -> None:
    _current.log.log(level, message)


def _now_ms() -> int:
    """Milliseconds since the Unix epoch: the event's time while deciding it (as is
    ``time.time()`` in the guest)."""
    return _current.clock.now_ms()


#: A row store (Cassandra): every table and key is private to the calling plugin.
store = SimpleNamespace(get=_store_get, put=_store_put, delete=_store_delete)

#: A cache (Redis) under the plugin's own key prefix, for short-lived facts.
cache = SimpleNamespace(get=_cache_get, set=_cache_set, incr=_cache_incr, delete=_cache_delete)

#: Log lines into the host's log, tagged with the plugin, its version and the order. Each
#: event has a budget of lines and bytes; past it the host drops lines and counts them.
log = SimpleNamespace(
    log=_log,
    debug=lambda message: _log(Level.DEBUG, message),
    info=lambda message: _log(Level.INFO, message),
    warn=lambda message: _log(Level.WARN, message),
    error=lambda message: _log(Level.ERROR, message),
)

#: The host's clock: the event's time while deciding it.
clock = SimpleNamespace(now_ms=_now_ms)
