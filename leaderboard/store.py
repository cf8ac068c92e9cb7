"""Store operations of the projection: every write to the ranking keys goes through here.

Callers hand in plain data read from Postgres (rows, deltas per scope); nothing here
knows a model or a table. Every call touches one scope, hence one cluster slot. The
invariants kept are in docs/exactly-once.md.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard.lua import APPLY, BUILT, REBASE, SCOPE_INIT, SNAPSHOT_WRITE, SWAP, script
from leaderboard.windows import EPS, WINDOWS

# Deltas per APPLY call. Valkey runs nothing else during a script, and a delta costs 20-45 µs there
# (100,000-1,000,000 members, docs/scaling.md): 1,000 holds reads back for tens of milliseconds at
# most, however big the bridge's batches grow under load.
APPLY_CHUNK = 1000
# Members per ZADD / fields per HSET of a rebuild: big enough that Python's per-command
# cost vanishes, small enough that one command holds Valkey for only a few milliseconds.
WRITE_CHUNK = 1000
# Pipelines of a rebuild are sent after this many commands.
PIPELINE_COMMANDS = 200

Delta = Sequence[float | int]  # (video_id, minute_epoch, window mask, score)
ScopedDeltas = Mapping[str, Sequence[Delta]]  # scope -> deltas for that scope


class RankingsNotBuilt(Exception):
    """Some scopes have no built rankings (first start, or their shard was wiped): rebuild them."""

    def __init__(self, scopes: Sequence[str]) -> None:
        super().__init__(", ".join(scopes))
        self.scopes = list(scopes)


@dataclass(frozen=True, slots=True)
class VideoMeta:
    """What the metadata hashes hold for one video."""

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

    @property
    def published(self) -> bool:
        return self.status == "published"

    def packed(self) -> str:
        return json.dumps(
            {
                "title": self.title, "category": self.category, "category_id": self.category_id,
                "category_name": self.category_name, "owner": self.owner, "thumbnail_url": self.thumbnail_url,
                "duration_seconds": self.duration_seconds, "published_at": self.published_at, "status": self.status,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )  # fmt: skip


def _scope_keys(scope: str) -> list[str]:
    return [rk.scope_ranking_key(scope, w) for w in WINDOWS]


def scopes_not_built(*, scopes: Iterable[str]) -> list[str]:
    """The scopes whose rankings are absent, or were built before their server last restarted
    (rk.boot_key): both wait for a rebuild."""
    wanted = list(scopes)
    pipe = redis_client().pipeline(transaction=False)
    built = script(BUILT)
    for scope in wanted:
        built(keys=[rk.ready_key(scope), rk.boot_key(scope)], client=pipe)
    return [scope for scope, ok in zip(wanted, pipe.execute(), strict=True) if not ok]


def scope_init(*, scope: str, generation: int, t0: int, half_life_s: int) -> bool:
    """Mark a new, empty scope (a category just created) as built; False if it already was."""
    keys = [rk.trend_key(scope), rk.ready_key(scope), rk.boot_key(scope)]
    return bool(script(SCOPE_INIT)(keys=keys, args=[t0, half_life_s, generation]))


def _marker(scope: str, name: str) -> str:
    return rk.scope_prefix(scope) + f"applied:{name}"


# --- live writes -----------------------------------------------------------------


def deltas_apply(*, batch_id: str, deltas: ScopedDeltas) -> int:
    """Apply a batch's deltas to every scope once per generation of that scope (idempotent).

    Scopes that are built take their share even when another is not; then
    RankingsNotBuilt names the others, which their rebuild brings up to date.
    """
    apply = script(APPLY)
    applied = 0
    missing: list[str] = []
    for scope, scoped in deltas.items():
        if scope == rk.GLOBAL:  # a batch stored before the global lists became the categories' union
            continue
        keys = [*_scope_keys(scope), rk.ready_key(scope), rk.trend_key(scope)]
        chunks = [scoped[i : i + APPLY_CHUNK] for i in range(0, len(scoped), APPLY_CHUNK)]
        for index, chunk in enumerate(chunks):
            name = batch_id if len(chunks) == 1 else f"{batch_id}:{index}"
            args: list[Any] = []
            for vid, hour, mask, score in chunk:
                args += [rk.member(int(vid)), hour, mask, score]
            markers = [_marker(scope, name), _marker(scope, batch_id)]
            result = int(apply(keys=[*keys, *markers, rk.boot_key(scope)], args=args))
            if result == -1:
                missing.append(scope)
                break
            applied += max(result, 0)
    if missing:
        raise RankingsNotBuilt(missing)
    return applied


def videos_sync(*, videos: Sequence[VideoMeta], gone: Sequence[int] = (), category_ids: Sequence[int]) -> None:
    """Write videos' metadata where the read paths look for it; ``gone`` were deleted.

    Scores are not touched here: moves between scopes arrive as ledger deltas.
    """
    pipe = redis_client().pipeline(transaction=False)
    for video in videos:
        field_ = str(video.id)
        pipe.hset(rk.meta_key(rk.GLOBAL), field_, video.packed())
        pipe.hset(rk.STATUS, field_, video.status)
        for cid in category_ids:
            scope = rk.scope_for(cid)
            if video.published and cid == video.category_id:
                pipe.hset(rk.meta_key(scope), field_, video.packed())
            else:
                pipe.hdel(rk.meta_key(scope), field_)
    for vid in gone:
        pipe.hdel(rk.meta_key(rk.GLOBAL), str(vid))
        pipe.hdel(rk.STATUS, str(vid))
        for cid in category_ids:
            pipe.hdel(rk.meta_key(rk.scope_for(cid)), str(vid))
    pipe.execute()


def categories_sync(*, categories: Iterable[tuple[int, str, str, bool]]) -> None:
    """(id, slug, name, active) rows into the category hashes and the slug index."""
    client = redis_client()
    slugs_by_id: dict[int, list[bytes]] = defaultdict(list)
    for old_slug, old_id in client.hgetall(rk.CATS).items():
        slugs_by_id[int(old_id)].append(old_slug)
    pipe = client.pipeline(transaction=False)
    for cid, slug, name, active in categories:
        # A renamed slug must not keep answering: drop any stale slug pointing here.
        for old_slug in slugs_by_id[cid]:
            if old_slug.decode() != slug:
                pipe.hdel(rk.CATS, old_slug)
        pipe.hset(rk.CATS, slug, cid)
        pipe.hset(rk.category_key(cid), mapping={"id": cid, "slug": slug, "name": name, "active": int(active)})
    pipe.execute()


def trend_t0(*, scope: str) -> float | None:
    t0 = redis_client().hget(rk.trend_key(scope), "t0")
    return None if t0 is None else float(t0)


def trending_rebase(*, scope: str, new_t0: int) -> bool:
    """Move a scope's forward-decay reference time; False when the scope is not built."""
    keys = [rk.ready_key(scope), rk.trend_key(scope), rk.scope_ranking_key(scope, "trending")]
    return int(script(REBASE)(keys=keys, args=[new_t0])) == 1


def snapshots_cache_write(*, snapshots: Iterable[tuple[str, int | None, list[list[Any]], str]]) -> None:
    """(window, category id, [[video id, rank, score], ...], taken_at ISO) into the previous-rank hashes.

    Each hash is replaced by one script call, so a reader never sees a half-written snapshot;
    a cluster pipeline refuses RENAME, which an aside-then-rename write would need.
    """
    pipe = redis_client().pipeline(transaction=False)
    write = script(SNAPSHOT_WRITE)
    for window, cid, entries, taken_at in snapshots:
        args: list[str] = ["_taken_at", taken_at]
        for vid, rank, _ in entries:
            args += [str(vid), str(rank)]
        write(keys=[rk.snapshot_key(window, cid)], args=args, client=pipe)
    pipe.execute()


def projection_clear() -> int:
    """Drop every key of the projection (a reset before reseeding); a rebuild brings it back."""
    client = redis_client()
    dropped = 0
    pipe = client.pipeline(transaction=False)
    # One key per UNLINK: on a cluster, keys of several slots cannot share a command.
    for key in client.scan_iter(match=f"{rk.PREFIX}*", count=5000):
        pipe.unlink(key)
        dropped += 1
        if len(pipe) >= 5000:
            pipe.execute()
            pipe = client.pipeline(transaction=False)
    pipe.execute()
    return dropped


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


class _Buffered:
    """Per key, members or fields waiting for one ZADD / HSET; pipelines sent in the background."""

    def __init__(self) -> None:
        self.sender = _Sender()
        self.pipe = redis_client().pipeline(transaction=False)
        self.zadds: dict[str, dict[str, float]] = defaultdict(dict)
        self.hsets: dict[str, dict[str, str]] = defaultdict(dict)

    def zadd(self, key: str, member: str, score: float) -> None:
        pending = self.zadds[key]
        pending[member] = score
        if len(pending) >= WRITE_CHUNK:
            self.pipe.zadd(key, self.zadds.pop(key))

    def hset(self, key: str, field_: str, value: str) -> None:
        pending = self.hsets[key]
        pending[field_] = value
        if len(pending) >= WRITE_CHUNK:
            self.pipe.hset(key, mapping=self.hsets.pop(key))

    def flush(self) -> None:
        for key, members in self.zadds.items():
            self.pipe.zadd(key, members)
        for key, fields in self.hsets.items():
            self.pipe.hset(key, mapping=fields)
        self.zadds.clear()
        self.hsets.clear()
        self.sender.send(self.pipe)
        self.pipe = redis_client().pipeline(transaction=False)

    def close(self) -> None:
        self.flush()
        self.sender.close()


@dataclass
class Build:
    """One rebuild of some scopes into keys under a temporary prefix, invisible until ``swap``."""

    generation: int
    scopes: set[str]
    ranked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _out: _Buffered | None = None

    def tmp(self, key: str) -> str:
        """The temporary twin of a live key, in the same slot (the hash tag comes first)."""
        prefix, rest = key.split("}:", 1)
        return f"{prefix}}}:tmp:{self.generation}:{rest}"

    def __enter__(self) -> Build:
        self._out = _Buffered()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            if exc[0] is None:
                out.close()
            else:
                out.sender.close()

    @property
    def out(self) -> _Buffered:
        assert self._out is not None, "use the build as a context manager"
        return self._out

    def video_add(self, video: VideoMeta) -> None:
        field_ = str(video.id)
        if rk.GLOBAL in self.scopes:
            self.out.hset(self.tmp(rk.meta_key(rk.GLOBAL)), field_, video.packed())
            self.out.hset(self.tmp(rk.STATUS), field_, video.status)
        scope = rk.scope_for(video.category_id)
        if video.published and scope in self.scopes:
            self.out.hset(self.tmp(rk.meta_key(scope)), field_, video.packed())

    def scores_add(self, *, video_id: int, category_id: int, values: Sequence[float | None]) -> None:
        """A published video's score per window (WINDOWS order; None or ~0: not ranked there)."""
        member = rk.member(video_id)
        for window, value in zip(WINDOWS, values, strict=True):
            if value is None or abs(value) <= EPS[window]:
                continue
            # Only the category's lists: the global ones are their union (leaderboard.union).
            if rk.scope_for(category_id) in self.scopes:
                self.out.zadd(self.tmp(rk.ranking_key(window, category_id)), member, -float(value))
            self.ranked[window] += 1

    def flush(self) -> None:
        self.out.flush()

    def swap(self, *, t0: int, half_life_s: int, applied_batches: Sequence[str]) -> None:
        """Replace each scope's live keys at once; ``applied_batches`` are already inside the build."""
        for scope in sorted(self.scopes):
            # The global scope's rankings are never built, so the swap drops any left from before
            # the global lists became the categories' union.
            live = [*_scope_keys(scope), rk.meta_key(scope)]
            if scope == rk.GLOBAL:
                live.append(rk.STATUS)
            pairs = [k for key in live for k in (self.tmp(key), key)]
            markers = [_marker(scope, b) for b in applied_batches]
            keys = [*pairs, rk.ready_key(scope), rk.trend_key(scope), rk.boot_key(scope), *markers]
            script(SWAP)(keys=keys, args=[len(live), self.generation, t0, half_life_s])
