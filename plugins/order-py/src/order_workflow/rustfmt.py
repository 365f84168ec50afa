"""Numbers written the way the Rust ``order`` plugin writes them, so that both plugins record
the same reasons and rows. Python's ``f"{x:.2f}"`` already rounds the exact binary value half
to even, as Rust's ``{:.2}`` does; what differs is Rust's ``{}`` for an ``f64`` (``3``, not
``3.0``; never an exponent), ``f64::round`` (half away from zero, where ``round`` rounds half
to even) and ``as i64`` (saturating, NaN as 0)."""

import json
import math
from decimal import Decimal

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def display(x: float) -> str:
    """``x`` as Rust's ``format!("{x}")`` writes an ``f64``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = format(Decimal(repr(x)), "f")
    return text[:-2] if text.endswith(".0") else text


def round_half_away_from_zero(x: float) -> float:
    """Rust's ``f64::round``."""
    if not math.isfinite(x) or x == math.floor(x):
        return x
    magnitude = abs(x)
    whole = math.floor(magnitude)
    rounded = whole + 1 if magnitude - whole >= 0.5 else whole
    return math.copysign(float(rounded), x)


def saturating_i64(x: float) -> int:
    """Rust's ``x as i64``: NaN is 0, out-of-range values saturate."""
    if math.isnan(x):
        return 0
    if x >= I64_MAX:
        return I64_MAX
    if x <= I64_MIN:
        return I64_MIN
    return int(x)


def debug_str(text: str) -> str:
    """A string quoted as Rust's ``{:?}`` quotes it (close enough: JSON escapes)."""
    return json.dumps(text, ensure_ascii=False)


def json_text(value: object) -> str:
    """A JSON value written compactly, as serde_json's ``Display`` writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
