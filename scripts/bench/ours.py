"""Our code called in the bench process: our side of the comparisons with the naive design
and the leaderboard library (the selectors' reads, the Redis update stage alone), and the
event stream both sides of the library comparison apply, in our members' encoding."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

from .config import BATCH
from .servers import valkey_cpu_s
from .traffic import TYPE_CUM, TYPE_NAMES, Traffic
from .util import percentile, read_latencies_ms


def in_process_reads(*, video_ids: list[int], samples: int) -> dict[str, Any]:
    """The same reads as the API, called in-process: what the naive SQL and the library are compared with."""
    from rankings.selectors import ranking_standings, ranking_top

    rng = random.Random(5)
    top: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        ranking_top(window="day", limit=20)
        top.append(time.perf_counter() - started)
    # The video read the naive query and the library answer: one window (the naive query's day).
    # A video page's read of every window (12 standings) is timed beside it, for information.
    rank: list[float] = []
    every: list[float] = []
    for window, times in (("day", rank), (None, every)):
        for _ in range(samples):
            vid = rng.choice(video_ids)
            started = time.perf_counter()
            ranking_standings(video_id=vid, window=window)
            times.append(time.perf_counter() - started)
    return {
        **read_latencies_ms(top=top, rank=rank),
        "standings_p50_ms": percentile(every, 50) * 1000,
        "standings_p99_ms": percentile(every, 99) * 1000,
    }


def leaderboard_stream(traffic: Traffic, path: Path, events: int) -> None:
    """The ingest traffic as 'member delta' lines: the score each event adds (weight x units)."""
    from leaderboard.keys import member

    rng = random.Random(21)
    vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=events)
    kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=events)
    with path.open("w") as handle:
        for vid, kind in zip(vids, kinds, strict=True):
            delta = traffic.weights.get(kind, 1.0)
            if kind == "watch":
                delta *= min((5 + rng.random() * 300) / max(traffic.durations.get(vid, 1), 1), 1.0)
            handle.write(f"{member(vid)} {delta!r}\n")


def redis_stage_run(*, stream: Path, seconds: float, batch: int = BATCH) -> dict[str, Any]:
    """Our Redis update stage on the library's event stream, like for like with ``change_score_for``.

    The worker's last step, alone: each batch of ``batch`` events is summed per (video, minute) with
    its window mask, exactly as ``events.services`` builds a batch's deltas, and applied with
    ``leaderboard.store.deltas_apply`` (one ``APPLY`` Lua call per category of the batch: every window's
    sorted set of the video's category, up to 5 per delta, and its rising list) on the same Valkey and the same rankings that the
    library's board was copied from. In-process and single-threaded, like the library's loop; the
    stream is parsed before the clock starts, as it is there. The stream is replayed from the
    start if it runs out before ``seconds``; every batch has its own id, so none is skipped as
    already applied.
    """
    from collections import defaultdict

    from django.utils import timezone

    from core.redis import redis_client
    from leaderboard.keys import scope_for
    from leaderboard.store import deltas_apply
    from leaderboard.windows import epoch, minute_floor, window_mask
    from videos.selectors import video_facts

    with stream.open() as handle:
        events = [(int(m), float(d)) for m, d in (line.split() for line in handle if line.strip())]
    scope_of = {vid: scope_for(f.category_id) for vid, f in video_facts(video_ids={v for v, _ in events}).items()}
    # The benchmark's events all happen now: their bucket is the current minute, in every window.
    minute = minute_floor(timezone.now())
    minute_epoch, mask = epoch(minute), window_mask(minute, minute)
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    run_id = uuid.uuid4().hex[:8]
    client = redis_client()
    applied = deltas_total = n = 0
    cpu_before = valkey_cpu_s(client)
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        chunk = batches[n % len(batches)]
        scores: dict[int, float] = defaultdict(float)
        for vid, delta in chunk:
            scores[vid] += delta
        scoped: dict[str, list[list[float | int]]] = defaultdict(list)
        for vid, score in scores.items():
            if score != 0:
                scoped[scope_of[vid]].append([vid, minute_epoch, mask, score])
        deltas_apply(batch_id=f"bench-stage-{run_id}-{n}", deltas=scoped)
        applied += len(chunk)
        deltas_total += sum(len(d) for d in scoped.values())
        n += 1
    elapsed = time.perf_counter() - started
    cpu = valkey_cpu_s(client) - cpu_before
    return {"events_applied": applied, "batches": n, "deltas": deltas_total, "seconds": elapsed,
            "events_per_s": applied / elapsed if elapsed > 0 else 0.0,
            "valkey_cpu_s_per_1k": 1000 * cpu / applied if applied else None}  # fmt: skip
