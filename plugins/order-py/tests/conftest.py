"""The contract's types come from componentize-py's bindings: generate them (once) into
build/bindings before any test imports the SDK or the workflow."""

import sys
from pathlib import Path

from orderpipe_bindings import use_bindings

HERE = Path(__file__).resolve().parent
use_bindings(wit=HERE.parents[2] / "wit", out=HERE.parent / "build" / "bindings")
sys.path.insert(0, str(HERE.parent / "src"))
