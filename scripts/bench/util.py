"""Small helpers shared by the stages: statistics, progress output, a free port."""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the runs of every numeric value (others: the first run's)."""
    out: dict[str, Any] = {}
    for key in runs[0] if runs else {}:
        values = [r[key] for r in runs if key in r]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.median(values)
        elif all(isinstance(v, dict) for v in values):
            out[key] = median_of(values)
        else:
            out[key] = values[0]
    return out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def timed_bar(seconds: float, desc: str) -> Iterator[None]:
    """A bar that fills with wall time while the body runs in other processes."""
    stop = threading.Event()
    bar = tqdm(total=round(seconds, 1), desc=desc, unit="s", file=sys.stderr, leave=False, disable=None,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s")  # fmt: skip
    started = time.monotonic()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.n = min(round(time.monotonic() - started, 1), bar.total)
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def read_latencies_ms(*, top: Sequence[float], rank: Sequence[float]) -> dict[str, float]:
    """p50/p99 in ms of a top-20 read and a video-rank read, the shape both read comparisons report."""
    return {
        "top20_p50_ms": percentile(top, 50) * 1000,
        "top20_p99_ms": percentile(top, 99) * 1000,
        "rank_p50_ms": percentile(rank, 50) * 1000,
        "rank_p99_ms": percentile(rank, 99) * 1000,
    }
