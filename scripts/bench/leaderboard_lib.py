"""Side by side, the ``leaderboard`` library (one ``change_score_for`` per event), run by
scripts/bench_leaderboard.py in a virtualenv of its own (it needs redis-py 2.x)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import BENCH_DIR, LEADERBOARD_DB, LEADERBOARD_PINS, ROOT
from .util import say


def leaderboard_venv() -> Path | None:
    """The library's own virtualenv (it needs redis-py 2.x); created once, reused after."""
    venv = BENCH_DIR / "leaderboard-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(LEADERBOARD_PINS):
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *LEADERBOARD_PINS], check=True,
                       capture_output=True, timeout=600)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"  leaderboard virtualenv could not be made ({exc}); comparison skipped")
        return None
    stamp.write_text(" ".join(LEADERBOARD_PINS))
    return python


def leaderboard_run(
    *,
    python: Path,
    port: int,
    stream: Path,
    seconds: float,
    skip: int,
    fill: bool,
    reads: int,
    source_keys: list[str],
) -> dict[str, Any]:
    argv = [str(python), str(ROOT / "scripts" / "bench_leaderboard.py"), "--port", str(port), "--db",
            str(LEADERBOARD_DB), "--events", str(stream), "--seconds", str(seconds), "--skip", str(skip),
            "--reads", str(reads)]  # fmt: skip
    if fill:
        argv.append("--fill")
    for key in source_keys:
        argv += ["--source-key", key]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 900)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_leaderboard failed: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
