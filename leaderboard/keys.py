"""Every Redis key of the projection, in one place.

The rankings are split by **scope**: the global scope ``g`` and one scope per
category ``c<id>``. Every key of a scope carries the scope as its hash tag
(``rk:{g}:...``, ``rk:{c7}:...``), so on Redis Cluster all keys of one scope live
in one slot and every script call touches exactly one slot; scopes spread over
the shards. Per scope:

- ``rk:{s}:z:{window}``: ranking sorted sets, in the category scopes only: a video is
  ranked in its category's scope, and the global lists are the union of the categories'
  (leaderboard.union), merged when read. Scores are stored *negated* and
  members are zero-padded video ids, so that ZRANGE (ascending) lists the best
  score first and, among equal scores, the lower video id first. That tie order
  is part of the API contract.
- ``rk:{s}:meta``: video id -> the video's public fields (JSON), for the videos
  ranked in this scope (every video in ``g``), so a page read gets its metadata
  from the same slot.
- ``rk:{s}:trend``: forward-decay state (t0, half-life) of the scope's trending list.
- ``rk:{s}:ready``: generation of the scope's built rankings; absent means "not
  built" (the shard was wiped or restarted empty), which stops writers to this
  scope and makes a rebuild of this scope start.
- ``rk:{s}:boot``: the run id of the server process the scope was built in. A server
  restarted from an older copy of its data (a snapshot, an append-only file, a promoted
  replica) has another run id, and that copy lacks the batches applied after it: the
  scope then counts as not built, as if it were absent (docs/exactly-once.md).
- ``rk:{s}:applied:{gen}:{batch}``: marker that a batch's deltas reached this
  scope in this generation (exactly-once per slot: it lives beside what it guards).
- ``rk:{s}:snap:{window}``: video id -> rank at the last snapshot.
- ``rk:{s}:tmp:{gen}:...``: keys of a rebuild in progress, renamed in at the swap.

Outside the scopes: ``rk:{g}:status`` (video id -> status, for the ingest check),
``rk:cats`` (slug -> category id) and ``rk:cat:{id}`` (category hash).
"""

from __future__ import annotations

PREFIX = "rk:"
GLOBAL = "g"
CATS = PREFIX + "cats"
MEMBER_WIDTH = 10


def scope_for(category_id: int | None) -> str:
    return GLOBAL if category_id is None else f"c{category_id}"


def category_of_scope(scope: str) -> int | None:
    return None if scope == GLOBAL else int(scope[1:])


def scope_prefix(scope: str) -> str:
    """``rk:{scope}:``: the hash tag puts every key of the scope in one cluster slot."""
    return f"{PREFIX}{{{scope}}}:"


def ranking_key(window: str, category_id: int) -> str:
    """A category's ranking; a global one is no key but their union (leaderboard.union)."""
    return scope_ranking_key(scope_for(category_id), window)


def scope_ranking_key(scope: str, window: str) -> str:
    return f"{scope_prefix(scope)}z:{window}"


def meta_key(scope: str) -> str:
    return scope_prefix(scope) + "meta"


def trend_key(scope: str) -> str:
    return scope_prefix(scope) + "trend"


def ready_key(scope: str) -> str:
    return scope_prefix(scope) + "ready"


def boot_key(scope: str) -> str:
    return scope_prefix(scope) + "boot"


def snapshot_key(window: str, category_id: int | None = None) -> str:
    return f"{scope_prefix(scope_for(category_id))}snap:{window}"


STATUS = scope_prefix(GLOBAL) + "status"


def category_key(category_id: int | str) -> str:
    return f"{PREFIX}cat:{category_id}"


def member(video_id: int) -> str:
    return str(video_id).zfill(MEMBER_WIDTH)


def video_id_of(member_: bytes | str) -> int:
    return int(member_)
