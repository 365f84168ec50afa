"""A deliberately misbehaving Python plugin, for the host's sandbox tests
(``host/tests/guest_sandbox.rs``). Never deploy it. The Python twin of
``plugins/testing/hostile`` (Rust), with the attacks a Python guest can try.

Its state machine is ``created → processed → done``; a ``created`` event moves an order to
``processed``. Every other event kind is an attack:

| event kind | what the plugin does | a safe host answers with |
|---|---|---|
| ``read_file`` | ``open('/etc/passwd')`` and ``os.listdir('/')`` | reject "read_file denied: ..." |
| ``read_env`` | reads ``os.environ`` | reject "read_env denied: environment is empty" |
| ``open_socket`` | ``socket.create_connection(('127.0.0.1', 19042))`` | reject "open_socket denied: ..." |
| ``http_request`` | ``urllib.request.urlopen('http://127.0.0.1:19042/')`` | reject "http_request denied: ..." |
| ``loop`` | spins forever | a failure naming the CPU budget |
| ``grow_memory`` | allocates 1 MiB buffers without bound | a failure naming the memory limit |
| ``log_flood`` | logs ``lines`` lines (default 1,000,000) of 4,096 bytes | unchanged "log_flood: done" past the log budget (50 lines), or a failure naming the CPU budget |
| ``huge_attribute`` | moves ``processed → done`` with an attribute of ``bytes`` bytes (default 20,000,000) | a failure naming the decision bound |
| ``remember`` | keeps the event's id in module state (a list and a class attribute, objects of the build's snapshot, so immortal) and looks for what an earlier event kept there | unchanged "remember: nothing from an earlier event" (a fresh instance per event) |

Whenever an attack gets through, the decision's reason starts with ``ESCAPED:``.
"""

import os
from typing import Any, Callable

from orderpipe_plugin import (
    Decision,
    Event,
    Order,
    PluginInfo,
    event_data,
    log,
    no_change,
    plugin_info,
    reject,
    state_machine,
    transition,
)

# Module state every instance starts with (in the build's snapshot, so immortal once built):
# the ``remember`` attack writes it and reads it back.
_REMEMBERED: list[str] = []


class Hostile:
    last_event = None

    def describe(self) -> PluginInfo:
        return plugin_info(
            "hostile-py",
            "0.1.0",
            state_machine("created").edge("created", "processed").edge("processed", "done"),
        )

    def decide(self, order: Order, event: Event) -> Decision:
        data = parsed(event)
        kind = event.kind
        if kind == "created":
            return transition("processed", "hostile plugin lets orders through")
        if kind == "read_file":
            return attempt("read_file", read_file)
        if kind == "read_env":
            return attempt("read_env", read_env)
        if kind == "open_socket":
            return attempt("open_socket", open_socket)
        if kind == "http_request":
            return attempt("http_request", http_request)
        if kind == "loop":
            while True:
                pass
        if kind == "grow_memory":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if kind == "log_flood":
            line = "L" * 4096
            for _ in range(number(data, "lines", 1_000_000)):
                log.info(line)
            return no_change("log_flood: done")
        if kind == "huge_attribute":
            return transition("done", "hostile: a huge attribute", {"blob": "x" * number(data, "bytes", 20_000_000)})
        if kind == "remember":
            return remember(event)
        return reject(f"unknown event type {kind}")


def remember(event: Event) -> Decision:
    """Keeps the event's id where the next instance would find it, if instances were shared."""
    earlier = list(_REMEMBERED)
    _REMEMBERED.append(event.id)
    previous = Hostile.last_event
    Hostile.last_event = event.id
    if earlier or previous is not None:
        return reject(f"ESCAPED: remember: kept from earlier events: {earlier} {previous}")
    return no_change("remember: nothing from an earlier event")


def attempt(attack: str, run: Callable[[], str]) -> Decision:
    """Runs an attack: what it got is an escape, what it raised is the host's refusal."""
    try:
        return transition("done", f"ESCAPED: {attack}: {run()[:200]}")
    except Exception as error:  # noqa: BLE001 - any refusal will do
        return reject(f"{attack} denied: {type(error).__name__}: {error}")


def read_file() -> str:
    with open("/etc/passwd") as file:
        return file.read() + ",".join(os.listdir("/"))


def read_env() -> str:
    names = list(os.environ)
    if not names:
        raise LookupError("environment is empty")
    return ",".join(names)


def open_socket() -> str:
    import socket

    return str(socket.create_connection(("127.0.0.1", 19042), timeout=1))


def http_request() -> str:
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:19042/", timeout=1) as answer:
        return str(answer.status)


def parsed(event: Event) -> dict[str, Any]:
    try:
        data = event_data(event)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def number(data: dict[str, Any], name: str, default: int) -> int:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
