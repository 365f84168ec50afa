"""schemathesis hooks for orderpipe (loaded by `cargo xtask schemathesis`).

Plugin uploads are `application/wasm`, which schemathesis cannot serialize by itself: send
the generated value as raw bytes (the host then refuses them as an invalid component, 422).
"""
import schemathesis


@schemathesis.serializer("application/wasm")
def wasm(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        return bytes(int(v) % 256 for v in value if isinstance(v, int))
    return str(value).encode()
