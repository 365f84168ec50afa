"""Immortal snapshot objects: what makes a fresh Python instance cheaper to start.

componentize-py runs the app module once at build time and keeps the interpreter's memory as
the component's memory image; every instance starts from that image. CPython counts references
by writing into each object, so a decision that merely *reads* the image's objects (modules,
functions, their code and constants, interned names) writes to hundreds of the image's pages,
and the host copies each of them back before the next fresh instance starts. An *immortal*
object's count is never written (PEP 683), but CPython makes only its own static objects
immortal and has no way to ask for it from Python.

So :func:`record` lists the addresses of the objects the snapshot holds, keeps every one of them
alive (none may be freed: its address would then be a free block), and leaves the list in the
image between two tags; ``orderpipe plugin build`` then sets each listed object's reference
count to CPython's immortal value in the built component's data segments (the host's
``cli/immortal_objects.rs``). Nothing else changes: an immortal object is read and written as
before, it is only never freed, and every instance still starts from the same image.

Only CPython 3.14 on a 32-bit target (componentize-py's) is known here; elsewhere (pytest on the
developer's CPython, for one) :func:`record` does nothing and the build patches nothing.
"""

import gc
import struct
import sys
import types
from typing import Optional

#: Where the list begins in the memory image, followed by the format's version, the reference
#: count to write, the smallest count CPython reads as immortal, the number of addresses and
#: the addresses themselves (each a little-endian u32), then :data:`TAIL`.
HEAD = b"orderpipe immortal objects"
TAIL = b"end of immortal objects"
FORMAT_VERSION = 1

#: (version) -> (the count to write, the smallest immortal count), 32-bit targets:
#: ``_Py_IMMORTAL_INITIAL_REFCNT`` and ``_Py_IMMORTAL_MINIMUM_REFCNT`` of CPython's
#: ``Include/refcount.h``.
_IMMORTAL_32_BIT = {(3, 14): (5 << 28, 1 << 30)}

# The listed objects and the list itself, alive for as long as the image lives.
_kept: list = []


def record() -> Optional[bytes]:
    """Lists every object the interpreter holds now for the build to mark immortal, and keeps
    them alive; call it last, when the app module has built everything its decisions use.
    Returns the encoded list (also kept), or ``None`` where the interpreter is not one the
    build knows how to patch, or when a list was recorded already."""
    counts = _IMMORTAL_32_BIT.get(sys.version_info[:2])
    if sys.implementation.name != "cpython" or sys.maxsize != 2**31 - 1 or counts is None:
        return None
    if _kept:
        # Recorded already (a second export_plugin): the build reads one list only.
        return None
    objects = reachable_objects()
    encoded = encode(sorted(objects), *counts)
    _kept.extend(objects.values())
    _kept.append(encoded)
    return encoded


def reachable_objects() -> dict:
    """The objects the collector tracks, and the untracked ones they hold that a decision reads
    most (code, constants, names, strings and numbers in dictionaries), by address."""
    seen: dict = {}

    def add(value: object) -> None:
        if id(value) in seen:
            return
        seen[id(value)] = value
        if type(value) is types.CodeType:
            for constant in value.co_consts:
                add(constant)
            for name in value.co_names + value.co_varnames:
                add(name)
            add(value.co_code)
        elif type(value) is tuple or type(value) is frozenset:
            for member in value:
                add(member)

    for tracked in gc.get_objects():
        add(tracked)
        for referent in gc.get_referents(tracked):
            if not gc.is_tracked(referent):
                add(referent)
        if type(tracked) is types.FunctionType:
            add(tracked.__code__)
        elif type(tracked) is dict:
            for key, value in tracked.items():
                if type(key) is str:
                    add(key)
                if type(value) in (str, int, float, bytes, tuple):
                    add(value)
    return seen


def encode(addresses: list, refcount: int, minimum: int) -> bytes:
    """The list as the build reads it (see :data:`HEAD`)."""
    header = struct.pack("<IIII", FORMAT_VERSION, refcount, minimum, len(addresses))
    return HEAD + header + struct.pack(f"<{len(addresses)}I", *addresses) + TAIL
