"""Store operations of the projection: every write to the ranking keys goes through here.

Callers hand in plain data read from Postgres (rows, deltas); nothing here
knows a model or a table. The invariants kept are in docs/exactly-once.md.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard.lua import APPLY, REBASE, REBUILD_META, REBUILD_SCORES, SWAP, SYNC_VIDEO, script
from leaderboard.windows import EPS, WINDOWS

APPLY_CHUNK = 5000
# Videos per rebuild script call: big enough that Python's per-command cost vanishes,
# small enough that one call holds Valkey for only a few milliseconds.
SCRIPT_CHUNK = 1000
# Applied markers outlive any redelivery of the batch they guard (the ledger keeps batches 2 days).
APPLIED_TTL_S = 172_800

Delta = Sequence[float | int]  # (video_id, hour_epoch, window mask, score)


class RankingsNotBuilt(Exception):
    """Redis has no built rankings (first start or wiped): a rebuild must run first."""


@dataclass(frozen=True, slots=True)
class VideoMeta:
    """What the metadata hash holds for one video (strings as stored)."""

    id: int
    status: str
    category_id: int
    title: str
    category: str
    category_name: str
    owner: str
    thumbnail_url: str
    duration_seconds: int
    published_at: str  # ISO-8601 or ""

    def fields(self) -> list[str]:
        return [
            "id", str(self.id), "status", self.status, "category_id", str(self.category_id),
            "category", self.category, "category_name", self.category_name, "title", self.title,
            "owner", self.owner, "thumbnail_url", self.thumbnail_url,
            "duration_seconds", str(self.duration_seconds), "published_at", self.published_at,
        ]  # fmt: skip


def is_built() -> bool:
    return bool(redis_client().exists(rk.READY))


# --- live writes -----------------------------------------------------------------


def deltas_apply(*, batch_id: str, deltas: Sequence[Delta]) -> int:
    """Apply a batch's deltas once per rankings generation (idempotent); raises RankingsNotBuilt."""
    apply = script(APPLY)
    applied = 0
    chunks = [deltas[i : i + APPLY_CHUNK] for i in range(0, len(deltas), APPLY_CHUNK)] or [[]]
    for index, chunk in enumerate(chunks):
        args: list[Any] = [batch_id if len(chunks) == 1 else f"{batch_id}:{index}"]
        for entry in chunk:
            args.extend(entry)
        result = int(apply(args=args))
        if result == -1:
            raise RankingsNotBuilt
        applied += max(result, 0)
    return applied


def videos_sync(*, videos: Sequence[VideoMeta], gone: Sequence[int] = ()) -> None:
    """Write videos' metadata and move their scores to match their status; ``gone`` were deleted."""
    sync = script(SYNC_VIDEO)
    pipe = redis_client().pipeline(transaction=False)
    for video in videos:
        sync(args=[video.id, video.status, video.category_id, *video.fields()], client=pipe)
    for vid in gone:  # dropped everywhere, like a removal
        sync(args=[vid, "removed", 0, "id", vid, "status", "removed"], client=pipe)
    pipe.execute()


def categories_sync(*, categories: Iterable[tuple[int, str, str, bool]]) -> None:
    """(id, slug, name, active) rows into the category hashes and the slug index."""
    client = redis_client()
    slugs_by_id: dict[int, list[bytes]] = defaultdict(list)
    for old_slug, old_id in client.hgetall(rk.CATS).items():
        slugs_by_id[int(old_id)].append(old_slug)
    pipe = client.pipeline(transaction=True)
    for cid, slug, name, active in categories:
        # A renamed slug must not keep answering: drop any stale slug pointing here.
        for old_slug in slugs_by_id[cid]:
            if old_slug.decode() != slug:
                pipe.hdel(rk.CATS, old_slug)
        pipe.hset(rk.CATS, slug, cid)
        pipe.hset(rk.category_key(cid), mapping={"id": cid, "slug": slug, "name": name, "active": int(active)})
    pipe.execute()


def trend_t0() -> float | None:
    t0 = redis_client().hget(rk.TREND, "t0")
    return None if t0 is None else float(t0)


def trending_rebase(*, new_t0: int) -> bool:
    """Move the forward-decay reference time; False when the rankings are not built."""
    return int(script(REBASE)(args=[new_t0])) == 1


def snapshots_cache_write(*, snapshots: Iterable[tuple[str, int | None, list[list[Any]], str]]) -> None:
    """(window, category id, [[video id, rank, score], ...], taken_at ISO) into the previous-rank hashes."""
    pipe = redis_client().pipeline(transaction=True)
    for window, cid, entries, taken_at in snapshots:
        key = rk.snapshot_key(window, cid)
        mapping = {str(vid): str(rank) for vid, rank, _ in entries}
        mapping["_taken_at"] = taken_at
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
    pipe.execute()


# --- rebuild: fill temporary keys, then swap them in --------------------------------


class _Sender:
    """Executes filled pipelines on one background thread, at most two waiting.

    The rebuild alternates between reading Postgres, building the next chunk in
    Python and Valkey running the previous one; overlapping them keeps both cores
    busy. Errors surface on the next send or at close.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rebuild-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (pipe := self.queue.get()) is not None:
            if self.error is None:
                try:
                    pipe.execute()
                except BaseException as exc:  # re-raised in the building thread
                    self.error = exc
            self.queue.task_done()
        self.queue.task_done()

    def send(self, pipe: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(pipe)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


@dataclass
class Build:
    """One rebuild into keys under a temporary prefix, invisible to readers until ``swap``."""

    generation: int
    ranked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    live_keys: set[str] = field(default_factory=set)
    shadows: set[int] = field(default_factory=set)

    @property
    def tmp(self) -> str:
        return f"{rk.PREFIX}tmp:{self.generation}:"

    def metadata_writer(self) -> MetadataWriter:
        return MetadataWriter()

    def scores_writer(self) -> ScoresWriter:
        return ScoresWriter(self)

    def swap(self, *, t0: int, half_life_s: int, applied_batches: Sequence[str]) -> None:
        """Replace every live ranking at once; ``applied_batches`` are already inside the build."""
        renames = [[self.tmp + key, key] for key in sorted(self.live_keys)]
        renames += [[self.tmp + rk.shadow_key(vid), rk.shadow_key(vid)] for vid in sorted(self.shadows)]
        payload = {
            "gen": self.generation,
            "t0": t0,
            "hl": half_life_s,
            "renames": renames,
            "shadows": sorted(self.shadows),
            "batches": list(applied_batches),
        }
        script(SWAP)(args=[json.dumps(payload)])


class ScoresWriter:
    """Adds (video, status, category, score per window) rows to a build, one pipeline per ``flush``."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.fill = script(REBUILD_SCORES)
        self.sender = _Sender()
        self.pipe = redis_client().pipeline(transaction=False)
        self.adds: list[list[Any]] = []
        self.shadow_rows: list[list[Any]] = []

    def add(self, *, video_id: int, published: bool, category_id: int, values: Sequence[float | None]) -> None:
        build = self.build
        entry: list[Any] = [rk.member(video_id), str(category_id)]
        for window, value in zip(WINDOWS, values, strict=True):
            if value is None or abs(value) <= EPS[window]:
                continue
            if published:
                entry.append([window, -float(value)])
                build.live_keys.add(rk.ranking_key(window))
                build.live_keys.add(rk.ranking_key(window, category_id))
                build.ranked[window] += 1
            else:
                self.shadow_rows.append([str(video_id), window, repr(float(value))])
                build.shadows.add(video_id)
        if len(entry) > 2:
            self.adds.append(entry)
        if len(self.adds) >= SCRIPT_CHUNK:
            self._script_call()

    def _script_call(self) -> None:
        if self.adds or self.shadow_rows:
            self.fill(args=[self.build.tmp, json.dumps(self.adds), json.dumps(self.shadow_rows)], client=self.pipe)
        self.adds, self.shadow_rows = [], []

    def flush(self) -> None:
        self._script_call()
        self.sender.send(self.pipe)
        self.pipe = redis_client().pipeline(transaction=False)

    def close(self) -> None:
        self.flush()
        self.sender.close()


class MetadataWriter:
    """Writes videos' metadata hashes in chunks of one script call; ``flush`` sends one pipeline."""

    def __init__(self) -> None:
        self.meta = script(REBUILD_META)
        self.sender = _Sender()
        self.pipe = redis_client().pipeline(transaction=False)
        self.names = ""  # the JSON list of hash field names, from the first row
        self.rows: list[list[str]] = []

    def add(self, video: VideoMeta) -> None:
        fields = video.fields()
        if not self.names:
            self.names = json.dumps(fields[0::2])
        self.rows.append([str(video.id), *fields[1::2]])
        if len(self.rows) >= SCRIPT_CHUNK:
            self._script_call()

    def _script_call(self) -> None:
        if self.rows:
            self.meta(args=[self.names, json.dumps(self.rows, ensure_ascii=False)], client=self.pipe)
        self.rows = []

    def flush(self) -> None:
        self._script_call()
        self.sender.send(self.pipe)
        self.pipe = redis_client().pipeline(transaction=False)

    def close(self) -> None:
        self.flush()
        self.sender.close()
