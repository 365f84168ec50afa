import struct
import sys

from orderpipe_plugin import snapshot


def _decode(encoded: bytes):
    assert encoded.startswith(snapshot.HEAD) and encoded.endswith(snapshot.TAIL)
    body = encoded[len(snapshot.HEAD) : -len(snapshot.TAIL)]
    version, refcount, minimum, count = struct.unpack_from("<IIII", body)
    addresses = list(struct.unpack_from(f"<{count}I", body, 16))
    assert len(body) == 16 + 4 * count
    return version, refcount, minimum, addresses


def test_the_list_is_encoded_as_the_build_reads_it():
    encoded = snapshot.encode([16, 1024, 4_000_000_000], 5 << 28, 1 << 30)
    assert _decode(encoded) == (snapshot.FORMAT_VERSION, 5 << 28, 1 << 30, [16, 1024, 4_000_000_000])


def _a_function_with_constants():
    return ("a constant only this function holds", 12345678)


def test_reachable_objects_take_functions_code_and_constants():
    objects = snapshot.reachable_objects()
    code = _a_function_with_constants.__code__
    assert id(code) in objects
    # The returned tuple is one folded constant; its members are reached through it.
    constants = [member for value in code.co_consts if isinstance(value, tuple) for member in value]
    assert "a constant only this function holds" in constants and 12345678 in constants
    for constant in constants:
        assert id(constant) in objects, constant


def test_an_interpreter_the_build_cannot_patch_records_nothing():
    # pytest runs on the developer's 64-bit CPython, never componentize-py's 32-bit one.
    assert sys.maxsize > 2**31
    kept = len(snapshot._kept)
    assert snapshot.record() is None
    assert len(snapshot._kept) == kept
