"""``python scripts/bench [--quick]``: see the package's docstring."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as ``python scripts/bench``, Python puts this folder first on sys.path, where the
# package's module names (config, report, plot...) would shadow top-level modules of the
# same name. The package is imported from scripts/ instead, beside the scripts it shares
# code with, and the project's packages from the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for folder in (HERE.parent.parent, HERE.parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench.cli import main  # noqa: E402

sys.exit(main())
