"""Native (non-component) use of orderpipe_plugin, for tests: the contract's types come from the
bindings componentize-py generates, which exist only inside a component. ``use_bindings``
generates them once into a folder and puts it on ``sys.path``; call it from ``conftest.py``
before importing ``orderpipe_plugin``. It is a module of its own, outside the
package, because importing the package needs the bindings::

    from orderpipe_bindings import use_bindings
    use_bindings(wit="../../wit", out="build/bindings")

This module imports nothing generated, so it works before the bindings exist.
"""

import shutil
import subprocess
import sys
from pathlib import Path

WORLD = "order-plugin"


def use_bindings(wit: str | Path, out: str | Path) -> Path:
    """Generates the ``order-plugin`` bindings from ``wit`` into ``out`` (again when the WIT
    is newer than them) with the ``componentize-py`` of this environment, and puts ``out``
    first on ``sys.path``."""
    wit, out = Path(wit).resolve(), Path(out).resolve()
    marker = out / "wit_world" / "__init__.py"
    wit_files = list(wit.glob("*.wit")) if wit.is_dir() else [wit]
    if not wit_files:
        raise FileNotFoundError(f"no .wit files in {wit}")
    newest = max(path.stat().st_mtime for path in wit_files)
    if not marker.exists() or marker.stat().st_mtime < newest:
        tool = shutil.which("componentize-py", path=str(Path(sys.executable).parent)) or shutil.which(
            "componentize-py"
        )
        if tool is None:
            raise RuntimeError("componentize-py is not installed: pip install componentize-py==0.25.1")
        if out.exists():
            shutil.rmtree(out)
        subprocess.run([tool, "-d", str(wit), "-w", WORLD, "bindings", str(out)], check=True)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return out
