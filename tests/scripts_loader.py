"""Import a module of scripts/ (scripts/ is not a package: its files run standalone).

``load_script("loadgen")`` is scripts/loadgen.py, ``load_script("bench.reads")`` a module of
the scripts/bench package. They are imported the way the scripts import one another when
one runs: with scripts/ on sys.path.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    module = importlib.import_module(name)
    assert Path(module.__file__ or "").resolve().is_relative_to(SCRIPTS), f"{name} is not from scripts/: {module}"
    return module
