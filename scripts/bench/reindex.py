"""Stage 4, rebuild: ``manage.py reindex`` wall time, and Valkey memory per ranked video."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from .config import BIN, ROOT
from .servers import redis_used_memory


def reindex_run(*, env: dict[str, str], client: Any, fresh: bool) -> dict[str, Any]:
    """``manage.py reindex``: wall time of the command; Valkey memory when starting from empty."""
    from leaderboard import union

    out: dict[str, Any] = {}
    if fresh:
        # SYNC: Valkey may free a flushed database in the background, which would
        # leave the old data in the baseline and understate the rebuild's memory.
        client.execute_command("FLUSHDB", "SYNC")
        while int(client.info("memory").get("lazyfree_pending_objects", 0)):
            time.sleep(0.1)
        before = redis_used_memory(client)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "python"), "manage.py", "reindex"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    out["wall_s"] = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"reindex failed: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    match = re.search(r"; ([0-9.]+)s\s*$", proc.stdout.strip())
    out["rebuild_s"] = float(match.group(1)) if match else out["wall_s"]
    out["ranked_all"] = union.union_lists(window="all").total
    out["ranked_day"] = union.union_lists(window="day").total
    if fresh:
        after = redis_used_memory(client)
        out["memory_bytes"] = after - before
        out["bytes_per_ranked_video"] = (after - before) / max(out["ranked_all"], 1)
    return out
