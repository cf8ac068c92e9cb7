"""Lua scripts: every multi-key change to one scope is one atomic call on one slot.

Every key a script touches is declared in KEYS and belongs to one scope (one hash
tag, see leaderboard.keys), so the same scripts run on one node and on Redis
Cluster; only on one node, which has no slots, is a read-only script (TOP_UNION,
VIDEO_STANDINGS) given several scopes at once. The window names, their mask bits and thresholds
come from leaderboard.windows, so Python and Lua cannot disagree about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from django.conf import settings
from redis.commands.core import Script

from core.redis import redis_client
from leaderboard.windows import EPS, RISING_PRIOR_PER_HOUR, WEEK_HOURS, WINDOW_BITS, WINDOWS


def _lua_list(values: Iterable[str | int | float]) -> str:
    return "{" + ", ".join(repr(v) for v in values) + "}"


# A scope counts as built when its ready key is set and it was built in this run of the server: its
# boot key holds the run id then. A server restarted from an older copy of its data (a snapshot, an
# append-only file, a promoted replica) has another run id, and that copy lacks the batches applied
# after it (docs/exactly-once.md).
_BUILT = """
local function run_id() return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') end
-- The caller has read the ready key: this says whether what it names was built in this run.
local function built_here(boot_key) return redis.call('GET', boot_key) == run_id() end
"""

_COMMON = (
    _BUILT
    + f"""
local NAMES = {_lua_list(WINDOWS)}
local BITS = {_lua_list(WINDOW_BITS[w] for w in WINDOWS)}
local EPS = {_lua_list(EPS[w] for w in WINDOWS)}
local TRENDING = {WINDOWS.index("trending") + 1}
local HOUR = {WINDOWS.index("hour") + 1}
local WEEK = {WINDOWS.index("week") + 1}
local RISING = {WINDOWS.index("rising") + 1}
-- Returns the member's new (stored, negated) score, 0 when it left the set.
local function zadd_delta(key, m, delta, w)
  local s = tonumber(redis.call('ZINCRBY', key, -delta, m))
  if math.abs(s) <= EPS[w] then redis.call('ZREM', key, m); return 0 end
  return s
end
-- leaderboard.windows.rising_score from the member's hour and week scores; either is read only
-- when this delta did not just return it (ZINCRBY answers with the new score).
local function rising_update(keys, m, h, w)
  if h == nil then h = tonumber(redis.call('ZSCORE', keys[HOUR], m) or 0) end
  h = -h
  if math.abs(h) <= EPS[HOUR] then redis.call('ZREM', keys[RISING], m); return end
  if w == nil then w = tonumber(redis.call('ZSCORE', keys[WEEK], m) or 0) end
  w = -w
  if w < 0 then w = 0 end
  redis.call('ZADD', keys[RISING], -(h / (w / {WEEK_HOURS} + {RISING_PRIOR_PER_HOUR!r})), m)
end
"""
)
_N = len(WINDOWS)

# Apply one batch's deltas to one scope, once per generation of that scope.
# KEYS[1..N] = the scope's ranking per window (WINDOWS order), KEYS[N+1] = ready,
# KEYS[N+2] = trend, KEYS[N+3] = this chunk's applied marker, KEYS[N+4] = the whole batch's
# marker (set by a rebuild whose counters already hold the batch; the same key for one chunk),
# KEYS[N+5] = the scope's boot key.
# ARGV = (member, minute_epoch, mask, score) groups. Rising is recomputed for every member whose
# hour or week score moved (it is not additive).
# Returns the entries applied, -1 if the scope is not built, -2 if already applied.
# One ZINCRBY per (delta, window), not a ZMSCORE + ZADD per window for the whole chunk: the
# server's cost is the skiplist re-link of every changed score, which both forms pay, and the
# bulk form adds the reads and the Lua bookkeeping; it measured no cheaper (scripts/bench --scope).
APPLY = (
    _COMMON
    + f"""
local gen = redis.call('GET', KEYS[{_N + 1}])
if not gen or not built_here(KEYS[{_N + 5}]) then return -1 end
if redis.call('GET', KEYS[{_N + 3}]) == gen or redis.call('GET', KEYS[{_N + 4}]) == gen then return -2 end
local trend = redis.call('HMGET', KEYS[{_N + 2}], 't0', 'hl')
local t0 = tonumber(trend[1])
local hl = tonumber(trend[2])
local n = 0
for i = 1, #ARGV, 4 do
  local m = ARGV[i]
  local minute = tonumber(ARGV[i + 1])
  local mask = tonumber(ARGV[i + 2])
  local score = tonumber(ARGV[i + 3])
  local h, wk
  for w = 1, #NAMES do
    if w ~= RISING and bit.band(mask, BITS[w]) ~= 0 then
      local delta = score
      if w == TRENDING then delta = score * math.pow(2, (minute - t0) / hl) end
      local new = zadd_delta(KEYS[w], m, delta, w)
      if w == HOUR then h = new elseif w == WEEK then wk = new end
    end
  end
  if h ~= nil or wk ~= nil then rising_update(KEYS, m, h, wk) end
  n = n + 1
end
redis.call('SET', KEYS[{_N + 3}], gen, 'EX', 172800)
return n
"""
)

# Move a scope's trending reference time to ARGV[1] (epoch seconds): every stored
# trending score is multiplied by 2^((t0_old - t0_new) / half_life).
# KEYS[1] = ready, KEYS[2] = trend, KEYS[3] = the trending ranking.
REBASE = """
local trend = redis.call('HMGET', KEYS[2], 't0', 'hl')
if not trend[1] or not redis.call('GET', KEYS[1]) then return -1 end
local f = math.pow(2, (tonumber(trend[1]) - tonumber(ARGV[1])) / tonumber(trend[2]))
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('ZUNIONSTORE', KEYS[3], 1, KEYS[3], 'WEIGHTS', f) end
redis.call('HSET', KEYS[2], 't0', ARGV[1])
return 1
"""

# Swap a scope's freshly built keys in. KEYS = pairs (temporary, live) for every ranking
# and the metadata hash (a pair whose temporary key does not exist empties the live key),
# then ready, trend, boot, then the applied markers of batches already inside the build.
# ARGV[1] = number of pairs, ARGV[2] = generation, ARGV[3] = t0, ARGV[4] = half-life.
# Returns 1, or 0 when this generation is already in: the same call sent again (a client
# retries a call that timed out although it ran) must not take its now missing temporary
# keys for empty lists and delete the rankings it has just swapped in.
SWAP = (
    _BUILT
    + """
local pairs_n = tonumber(ARGV[1])
local ready, boot = KEYS[2 * pairs_n + 1], KEYS[2 * pairs_n + 3]
if redis.call('GET', ready) == ARGV[2] and built_here(boot) then return 0 end
for i = 1, 2 * pairs_n, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 1])
  else redis.call('DEL', KEYS[i + 1]) end
end
redis.call('HSET', KEYS[2 * pairs_n + 2], 't0', ARGV[3], 'hl', ARGV[4])
for i = 2 * pairs_n + 4, #KEYS do redis.call('SET', KEYS[i], ARGV[2], 'EX', 172800) end
redis.call('SET', boot, run_id())
redis.call('SET', ready, ARGV[2])
return 1
"""
)

# Whether a scope is built (_BUILT). KEYS = ready, boot. Returns 1 or 0.
BUILT = (
    _BUILT
    + """
return redis.call('GET', KEYS[1]) ~= false and built_here(KEYS[2]) and 1 or 0
"""
)

# Mark a new, empty scope (a category just created) as built unless it is. KEYS = trend, ready, boot;
# ARGV = t0, half-life, generation. Returns 1 when it marked it, 0 when the scope was there already.
SCOPE_INIT = (
    _BUILT
    + """
redis.call('HSETNX', KEYS[1], 't0', ARGV[1])
redis.call('HSETNX', KEYS[1], 'hl', ARGV[2])
if not redis.call('SET', KEYS[2], ARGV[3], 'NX') then return 0 end
redis.call('SET', KEYS[3], run_id())
return 1
"""
)

# Replace a previous-rank hash in one step, so a reader never sees it half written.
# KEYS[1] = the hash; ARGV = field, value pairs.
SNAPSHOT_WRITE = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# Read of one ranking page: the whole top-N request in one call. A pipeline cannot do it in
# one round trip, since the metadata, snapshot and tie lookups need the page's members first.
# Read-only, and it sees one consistent state of the ranking.
# KEYS[1] = ranking, KEYS[2] = trend hash, KEYS[3] = snapshot hash, KEYS[4] = metadata hash
# (all of one scope); ARGV[1], ARGV[2] = ZRANGE start and stop.
# Returns {total, {member, score, ...}, {t0, hl}} for an empty page, else also the number of
# members scored strictly better than the first (for a page that starts inside a tie), the
# metadata per video and the snapshot's previous rank per video.
TOP = """
local total = redis.call('ZCARD', KEYS[1])
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local trend = redis.call('HMGET', KEYS[2], 't0', 'hl')
if #rows == 0 then return {total, rows, trend} end
local better = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. rows[2])
local ids = {}
for i = 1, #rows, 2 do ids[#ids + 1] = string.match(rows[i], '^0*(%d+)$') end
return {total, rows, trend, better, redis.call('HMGET', KEYS[4], unpack(ids)), redis.call('HMGET', KEYS[3], unpack(ids))}
"""

# Where an entry (score, member) falls in one ranking: the number of entries ordered before it,
# whether or not the ranking holds it. Read-only; the ranking's order is (score, member), and the
# members of one score are found by binary search in that score's block (members are zero-padded
# ids of one width, so Lua's string order is theirs). KEYS[1] = ranking; ARGV[1] = the stored score
# as an exact bound, ARGV[2] = the member.
BELOW = """
local before = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
local lo, hi = before, before + redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1])
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if redis.call('ZRANGE', KEYS[1], mid, mid)[1] < ARGV[2] then lo = mid + 1 else hi = mid end
end
return lo
"""

# The global lists' reads on one node (leaderboard.union), where one call may read every category.
# A caller names the categories it read in ARGV (their ids, sorted, joined by ','); a read whose
# names no longer match the slug index answers {'stale', the ids now} instead, and the caller reads
# again: a category created a moment ago is in the next answer.
_UNION = (
    _COMMON
    + """
local function categories_now(key)
  local seen, ids = {}, {}
  for _, v in ipairs(redis.call('HVALS', key)) do
    if not seen[v] then seen[v] = true; ids[#ids + 1] = tonumber(v) end
  end
  table.sort(ids)
  return table.concat(ids, ',')
end
-- Whether window w is among those a read asks for: ``mask`` holds their bits (nil: every window).
-- A window not asked for is not read: its standing is {false, 0, false}, its counts 0.
local function wanted(mask, w) return not mask or bit.band(mask, BITS[w]) ~= 0 end
-- One scope's standing of member m: {t0, hl, then per window: score, ZCARD, members scored strictly
-- better}, score and better false where m is not ranked (t0 and hl false unless trending is asked
-- for). KEYS[base + 1 .. base + N] are its rankings (WINDOWS order), KEYS[base + N + 1] its trend
-- hash. A score is ZSCORE's own reply string, never a Lua number: Lua's tostring keeps 14
-- significant digits, so a converted score would neither read back as the stored double nor bound
-- ZCOUNT at it.
local function standing(base, m, mask)
  local out = {false, false}
  if wanted(mask, TRENDING) then out = redis.call('HMGET', KEYS[base + #NAMES + 1], 't0', 'hl') end
  for w = 1, #NAMES do
    local key = KEYS[base + w]
    local score, card, better = false, 0, false
    if wanted(mask, w) then
      score = redis.call('ZSCORE', key, m)
      if score then better = redis.call('ZCOUNT', key, '-inf', '(' .. score) end
      card = redis.call('ZCARD', key)
    end
    out[#out + 1] = score
    out[#out + 1] = card
    out[#out + 1] = better
  end
  return out
end
-- Per window {entries, entries scored strictly better than bounds[w]}, summed over the groups of
-- KEYS[1 .. last] (a category's rankings, then its trend hash) but the one at base ``skip`` (none
-- when nil), for the windows ``mask`` asks for (wanted). bounds[w] is a stored score relative to t0
-- (false: count no better entries); a category whose t0 differs (a rebase between its scopes) gets
-- the trending bound on its own scale.
local function union_counts(last, t0, bounds, skip, mask)
  local out = {}
  for w = 1, #NAMES do out[2 * w - 1] = 0; out[2 * w] = 0 end
  for base = 0, last - 1, #NAMES + 1 do
    if base ~= skip then
      for w = 1, #NAMES do if wanted(mask, w) then
        local key = KEYS[base + w]
        out[2 * w - 1] = out[2 * w - 1] + redis.call('ZCARD', key)
        local bound = bounds[w]
        if bound then
          local trend = w == TRENDING and t0 and redis.call('HMGET', KEYS[base + #NAMES + 1], 't0', 'hl')
          if trend and trend[1] and trend[1] ~= t0 then
            local f = math.pow(2, (tonumber(t0) - tonumber(trend[1])) / tonumber(trend[2]))
            bound = string.format('%.17g', tonumber(bound) * f)
          end
          out[2 * w] = out[2 * w] + redis.call('ZCOUNT', key, '-inf', '(' .. bound)
        end
      end end
    end
  end
  return out
end
"""
)

# Read of one video's standing in every window of one scope (a category's; the global standings
# are UNION_COUNTS'), one consistent state. KEYS = the scope's rankings (WINDOWS order), then its
# trend hash; ARGV[1] = the member. Returns {standing}. With ARGV[2] (the video id) the last key is
# a metadata hash of the same slot, and the video's field in it ends the reply (nil when absent);
# with only that key, the reply is the field alone.
STANDINGS = (
    _UNION
    + """
local replies = {}
local groups_end = #KEYS
if ARGV[2] then groups_end = #KEYS - 1 end
for base = 0, groups_end - 1, #NAMES + 1 do replies[#replies + 1] = standing(base, ARGV[1]) end
if ARGV[2] then replies[#replies + 1] = redis.call('HGET', KEYS[#KEYS], ARGV[2]) end
return replies
"""
)

# A video's global counts from its scores: union_counts over every group of KEYS; ARGV[1] = the t0
# the trending bound is relative to ('' for none), ARGV[1 + w] = window w's bound, ZSCORE's reply
# as it came ('' for none). On one node one call reads every category; on a cluster one call per
# category (slot), and the caller adds the replies up.
UNION_COUNTS = (
    _UNION
    + """
local bounds = {}
for w = 1, #NAMES do bounds[w] = ARGV[w + 1] ~= '' and ARGV[w + 1] end
return union_counts(#KEYS, ARGV[1] ~= '' and ARGV[1], bounds)
"""
)

# One node: a video's metadata, its standings in its category and its global counts, in one call.
# KEYS = a group per category (its rankings, then its trend hash), then the slug index, then the
# metadata hash; ARGV[1] = the member, ARGV[2] = the video id, ARGV[3] = the groups' category ids,
# ARGV[4] (optional) = the windows asked for, their bits added up: the others are not read.
# Returns {} when the metadata does not hold the video; {packed metadata} when it is not published
# in one of the groups' categories; else {packed, its category's standing, union_counts}.
VIDEO_STANDINGS = (
    _UNION
    + """
local named = categories_now(KEYS[#KEYS - 1])
if named ~= ARGV[3] then return {'stale', named} end
local packed = redis.call('HGET', KEYS[#KEYS], ARGV[2])
if not packed then return {} end
local data = cjson.decode(packed)
local own = nil
if data.status == 'published' and type(data.category_id) == 'number' then
  local i = 0
  for id in string.gmatch(ARGV[3], '%d+') do
    i = i + 1
    if tonumber(id) == data.category_id then own = i end
  end
end
if not own then return {packed} end
local base = (own - 1) * (#NAMES + 1)
local mask = tonumber(ARGV[4])
local reply = standing(base, ARGV[1], mask)
local bounds = {}
for w = 1, #NAMES do bounds[w] = reply[3 * w] end
-- The video's own category counts what its standing has just read: the bounds are its scores,
-- on its own t0.
local counts = union_counts(#KEYS - 2, reply[1], bounds, base, mask)
for w = 1, #NAMES do
  counts[2 * w - 1] = counts[2 * w - 1] + reply[3 * w + 1]
  if reply[3 * w] then counts[2 * w] = counts[2 * w] + reply[3 * w + 2] end
end
return {packed, reply, counts}
"""
)

# One node: a page of a global list, merged from the categories' heads, in the shape TOP answers.
# KEYS = every category's ranking of the window, then their trend hashes (same order), then the
# slug index, the global snapshot hash and the global metadata hash; ARGV[1], ARGV[2] = offset and
# limit, ARGV[3] = the categories' ids, ARGV[4] = '1' for trending (scores compared on the first
# category's t0, see leaderboard.union). The merge takes the smallest (score, member) head each
# step: offset + limit steps over the categories.
TOP_UNION = (
    _UNION
    + """
local n = (#KEYS - 3) / 2
local named = categories_now(KEYS[2 * n + 1])
if named ~= ARGV[3] then return {'stale', named} end
local offset = tonumber(ARGV[1])
local stop = offset + tonumber(ARGV[2])
-- Only trending reads its scopes' t0 (the other windows store plain sums).
local ref, hl, scales = false, false, {}
for k = 1, n do scales[k] = 1 end
if ARGV[4] == '1' then
  local t0s = {}
  for k = 1, n do
    local trend = redis.call('HMGET', KEYS[n + k], 't0', 'hl')
    t0s[k] = trend[1]
    if not ref and trend[1] and trend[2] then ref, hl = trend[1], trend[2] end
  end
  for k = 1, n do
    if ref and t0s[k] and t0s[k] ~= ref then
      scales[k] = math.pow(2, (tonumber(t0s[k]) - tonumber(ref)) / tonumber(hl))
    end
  end
end
-- Each category's head is read in chunks, a share of the page first, then twice as much each
-- time the merge runs past it: a page draws most of its entries from a few categories. heads[k] is
-- the last chunk's reply {member, score, ...}, pos[k] the index of its current member, got[k] the
-- entries read so far, cur[k] the current member's score on the union's scale (converted once).
local total, cards, heads, pos, got, cur, chunk = 0, {}, {}, {}, {}, {}, {}
local function refill(k)
  local want = math.min(chunk[k], stop - got[k], cards[k] - got[k])
  if want <= 0 then cur[k] = nil; return end
  local h = redis.call('ZRANGE', KEYS[k], got[k], got[k] + want - 1, 'WITHSCORES')
  heads[k], pos[k], got[k], chunk[k] = h, 1, got[k] + #h / 2, chunk[k] * 2
  if h[2] then cur[k] = tonumber(h[2]) * scales[k] else cur[k] = nil end
end
for k = 1, n do
  cards[k] = redis.call('ZCARD', KEYS[k])
  total = total + cards[k]
  got[k], chunk[k] = 0, math.ceil(stop / n) + 1
  refill(k)
end
local rows, before, first = {}, {}, nil
for i = 1, stop do
  local best, bv, bm = nil, nil, nil
  for k = 1, n do
    local v = cur[k]
    if v and (not best or v < bv or (v == bv and heads[k][pos[k]] < bm)) then best, bv, bm = k, v, heads[k][pos[k]] end
  end
  if not best then break end
  local h, p = heads[best], pos[best]
  pos[best] = p + 2
  if h[p + 3] then cur[best] = tonumber(h[p + 3]) * scales[best] else refill(best) end
  if i > offset then
    rows[#rows + 1] = bm
    if scales[best] == 1 then rows[#rows + 1] = h[p + 1]
    else rows[#rows + 1] = string.format('%.17g', bv) end
    if not first then first = bv end
  else
    before[#before + 1] = bv
  end
end
local trend = {ref, hl}
if #rows == 0 then return {total, rows, trend} end
local better = 0
for _, v in ipairs(before) do if v < first then better = better + 1 end end
local ids = {}
for i = 1, #rows, 2 do ids[#ids + 1] = string.match(rows[i], '^0*(%d+)$') end
return {total, rows, trend, better, redis.call('HMGET', KEYS[2 * n + 3], unpack(ids)),
  redis.call('HMGET', KEYS[2 * n + 2], unpack(ids))}
"""
)


class LuaScript:
    """A script run by hash; in a pipeline sent whole. A cluster pipeline cannot preload scripts,
    and a one-node pipeline holding EVALSHA first asks the server in a round trip of its own
    whether the script is loaded; EVAL of a script the server has seen is looked up by hash."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, *, keys: Sequence[Any], args: Sequence[Any] = (), client: Any = None) -> Any:
        target = client if client is not None else redis_client()
        if hasattr(target, "command_stack"):
            # A cluster pipeline refuses EVALSHA and its eval() is no command; EVAL itself is routed
            # to the slot of its keys.
            return target.execute_command("EVAL", self.source, len(keys), *keys, *args)
        return _registered(self.source, settings.REDIS_URL, settings.REDIS_CLUSTER)(
            keys=list(keys), args=list(args), client=target
        )


@cache
def _registered(source: str, url: str, cluster: bool) -> Script:
    # Keyed by URL too: a script object keeps the client it was registered with.
    return redis_client().register_script(source)


@cache
def script(source: str) -> LuaScript:
    return LuaScript(source)
