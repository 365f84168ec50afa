"""The contract's types come from componentize-py's bindings: generate them (once) into
build/bindings before any test imports the SDK."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from orderpipe_bindings import use_bindings  # noqa: E402

use_bindings(wit=HERE.parents[2] / "wit", out=HERE.parent / "build" / "bindings")
