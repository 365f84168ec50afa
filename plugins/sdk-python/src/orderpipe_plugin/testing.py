"""Test support: an in-memory stand-in for the host, and builders for orders and events.
Runs under plain CPython and pytest, no component needed::

    host = FakeHost()
    host.cache_set("seen", "yes")
    assert cache.get("seen") == "yes"
    host.fail_with(HostError_Unavailable("redis is down"))
    with pytest.raises(HostError):
        cache.get("seen")

Failures are raised as componentize-py's bindings raise them (``Err(host_error)``), so a test
goes through the same conversion as the component does.
"""

import re
from types import SimpleNamespace
from typing import Optional

from componentize_py_types import Err

from .host import set_host
from .types import Event, HostError_Invalid, HostError_QuotaExceeded, Level, LineItem, Order, WitHostError

#: The fake clock's time until a test sets another: 2023-11-14T22:13:20Z.
DEFAULT_NOW_MS = 1_700_000_000_000

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class FakeHost:
    """A new, empty fake host, bound as the host the SDK's functions call. Seed it, make it
    fail, and look at what the plugin did."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], str] = {}
        self._cache: dict[str, tuple[str, Optional[int]]] = {}
        self._logs: list[tuple[Level, str]] = []
        self._calls = 0
        self._quota: Optional[int] = None
        self._failure: Optional[WitHostError] = None
        self.now_ms = DEFAULT_NOW_MS
        set_host(
            SimpleNamespace(
                store=SimpleNamespace(get=self._store_get, put=self._store_put, delete=self._store_delete),
                cache=SimpleNamespace(
                    get=self._cache_get, set=self._cache_set, incr=self._cache_incr, delete=self._cache_delete
                ),
                log=SimpleNamespace(log=lambda level, message: self._logs.append((level, message))),
                clock=SimpleNamespace(now_ms=lambda: self.now_ms),
            )
        )

    def fail_with(self, error: WitHostError) -> None:
        """Makes every later store and cache call fail with ``error`` (it still counts)."""
        self._failure = error

    def recover(self) -> None:
        """Undoes :meth:`fail_with`."""
        self._failure = None

    def set_quota(self, calls: int) -> None:
        """Lets only ``calls`` store and cache calls succeed; later ones fail with
        ``quota-exceeded``."""
        self._quota = calls

    def calls(self) -> int:
        """How many store and cache calls the plugin made, failed ones included."""
        return self._calls

    def store_get(self, table: str, key: str) -> Optional[str]:
        return self._store.get((table, key))

    def store_put(self, table: str, key: str, value: str) -> None:
        self._store[(table, key)] = value

    def store_rows(self) -> list[tuple[str, str, str]]:
        """Every row as ``(table, key, value)``, sorted."""
        return sorted((table, key, value) for (table, key), value in self._store.items())

    def cache_get(self, key: str) -> Optional[str]:
        entry = self._cache.get(key)
        return None if entry is None else entry[0]

    def cache_ttl(self, key: str) -> Optional[int]:
        """The time to live the plugin gave ``key``, if any. The fake never expires anything."""
        entry = self._cache.get(key)
        return None if entry is None else entry[1]

    def cache_set(self, key: str, value: str) -> None:
        self._cache[key] = (value, None)

    def logs(self) -> list[tuple[Level, str]]:
        """Everything logged so far, oldest first."""
        return list(self._logs)

    def logged(self, level: Level, text: str) -> bool:
        """Whether a line at ``level`` containing ``text`` was logged."""
        return any(l == level and text in line for l, line in self._logs)

    def _count_call(self) -> None:
        self._calls += 1
        if self._quota is not None and self._calls > self._quota:
            raise Err(HostError_QuotaExceeded(f"host call quota of {self._quota} per event exceeded"))
        if self._failure is not None:
            raise Err(self._failure)

    def _store_get(self, table: str, key: str) -> Optional[str]:
        self._count_call()
        return self._store.get((table, key))

    def _store_put(self, table: str, key: str, value: str) -> None:
        self._count_call()
        self._store[(table, key)] = value

    def _store_delete(self, table: str, key: str) -> None:
        self._count_call()
        self._store.pop((table, key), None)

    def _cache_get(self, key: str) -> Optional[str]:
        self._count_call()
        return self.cache_get(key)

    def _cache_set(self, key: str, value: str, ttl_seconds: Optional[int]) -> None:
        self._count_call()
        self._cache[key] = (value, ttl_seconds)

    def _cache_incr(self, key: str, delta: int) -> int:
        self._count_call()
        value, ttl = self._cache.get(key, ("0", None))
        if not re.fullmatch(r"-?\d+", value):
            raise Err(HostError_Invalid(f"value of {key} is not an integer"))
        result = int(value) + delta
        if not _I64_MIN <= result <= _I64_MAX:
            raise Err(HostError_Invalid(f"incrementing {key} overflows"))
        self._cache[key] = (str(result), ttl)
        return result

    def _cache_delete(self, key: str) -> None:
        self._count_call()
        self._cache.pop(key, None)


def order(status: str) -> Order:
    """A new order in ``status`` with id ``00000000-0000-4000-8000-000000000001``, no
    customer, items, currency or attributes, and version 1. Change its fields as a test needs."""
    return Order(
        id="00000000-0000-4000-8000-000000000001",
        status=status,
        version=1,
        customer=None,
        items=[],
        currency=None,
        attributes=[],
        body="{}",
    )


def item(sku: str, qty: int, unit_price: float) -> LineItem:
    return LineItem(sku=sku, qty=qty, unit_price=unit_price)


def event(kind: str, data: str = "{}") -> Event:
    """An event with id ``event-1``, accepted at :data:`DEFAULT_NOW_MS`."""
    return Event(id="event-1", kind=kind, data=data, at_ms=DEFAULT_NOW_MS)
