"""Deterministic draws shared by the catalogue and the history: same seed, same data."""

from __future__ import annotations

import itertools
import random


def part_rng(seed: int, part: str) -> random.Random:
    # One generator per part, so e.g. asking for more events leaves the catalogue unchanged.
    return random.Random(f"{seed}:{part}")


def zipf_cum(count: int, exponent: float) -> list[float]:
    """Cumulative Zipf(``exponent``) weights of ranks 1..count, for ``random.choices``/``bisect``."""
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder), deterministically."""
    scale = sum(weights)
    if total <= 0 or scale <= 0:
        return [0] * len(weights)
    raw = [total * w / scale for w in weights]
    counts = [int(x) for x in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts
