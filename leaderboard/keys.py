"""Every Redis key the rankings use, in one place.

Layout (prefix ``rk:``):

- ``rk:z:{window}:g`` / ``rk:z:{window}:c:{category_id}``: ranking sorted sets.
  Scores are stored *negated* and members are zero-padded video ids, so that
  ZRANGE (ascending) lists the best score first and, among equal scores, the
  lower video id first. That tie order is part of the API contract.
- ``rk:v:{video_id}``: metadata hash (title, category, status, ...).
- ``rk:cat:{category_id}``: category hash (slug, name); ``rk:cats``: slug -> id.
- ``rk:shadow:{video_id}``: scores of a hidden/removed video, kept aside so
  republishing restores them; ``rk:shadows``: set of such video ids.
- ``rk:trend``: forward-decay state (t0, half-life) of the trending window.
- ``rk:ready``: generation of the built rankings; absent means "not built"
  (Redis was wiped), which makes writers stop and a rebuild start.
- ``rk:applied:{gen}:{batch_id}``: marker that a batch's deltas reached Redis.
- ``rk:snap:{window}:{scope}``: video id -> rank at the last snapshot.
"""

from __future__ import annotations

PREFIX = "rk:"
READY = PREFIX + "ready"
TREND = PREFIX + "trend"
CATS = PREFIX + "cats"
SHADOWS = PREFIX + "shadows"
MEMBER_WIDTH = 10


def scope_for(category_id: int | None) -> str:
    return "g" if category_id is None else f"c:{category_id}"


def ranking_key(window: str, category_id: int | None = None) -> str:
    return f"{PREFIX}z:{window}:{scope_for(category_id)}"


def video_key(video_id: int | str) -> str:
    return f"{PREFIX}v:{video_id}"


def category_key(category_id: int | str) -> str:
    return f"{PREFIX}cat:{category_id}"


def shadow_key(video_id: int | str) -> str:
    return f"{PREFIX}shadow:{video_id}"


def snapshot_key(window: str, category_id: int | None = None) -> str:
    return f"{PREFIX}snap:{window}:{scope_for(category_id)}"


def applied_key(generation: int | str, batch_id: str) -> str:
    return f"{PREFIX}applied:{generation}:{batch_id}"


def member(video_id: int) -> str:
    return str(video_id).zfill(MEMBER_WIDTH)


def video_id_of(member_: bytes | str) -> int:
    return int(member_)
