"""Lua scripts: every multi-key change to the rankings is one atomic call.

Key names are built inside the scripts from the prefix in leaderboard.keys (this is a
single-node layout; the scripts are not cluster-safe by design). The window names,
their mask bits and thresholds come from leaderboard.windows, so Python and Lua
cannot disagree about them.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.conf import settings
from redis.commands.core import Script

from core.redis import redis_client
from leaderboard.keys import MEMBER_WIDTH, PREFIX
from leaderboard.windows import EPS, WINDOW_BITS, WINDOWS


def _lua_list(values: Iterable[str | int | float]) -> str:
    return "{" + ", ".join(repr(v) for v in values) + "}"


_COMMON = f"""
local P = '{PREFIX}'
local NAMES = {_lua_list(WINDOWS)}
local BITS = {_lua_list(WINDOW_BITS[w] for w in WINDOWS)}
local EPS = {_lua_list(EPS[w] for w in WINDOWS)}
local TRENDING = {WINDOWS.index("trending") + 1}
local function eps(w) return EPS[w] end
local function member(vid) return string.format('%0{MEMBER_WIDTH}d', tonumber(vid)) end
local function zadd_delta(key, m, delta, w)
  local s = tonumber(redis.call('ZINCRBY', key, -delta, m))
  if math.abs(s) <= eps(w) then redis.call('ZREM', key, m) end
end
local function categories() return redis.call('HVALS', P .. 'cats') end
"""

# ARGV[1] = batch id; then (video_id, hour_epoch, mask, score) groups.
# Returns the number of entries applied, -1 if the rankings are not built,
# -2 if this batch was already applied in this generation.
APPLY = (
    _COMMON
    + """
local gen = redis.call('GET', P .. 'ready')
if not gen then return -1 end
local marker = P .. 'applied:' .. gen .. ':' .. ARGV[1]
if redis.call('EXISTS', marker) == 1 then return -2 end
local trend = redis.call('HMGET', P .. 'trend', 't0', 'hl')
local t0 = tonumber(trend[1])
local hl = tonumber(trend[2])
local n = 0
for i = 2, #ARGV, 4 do
  local vid = ARGV[i]
  local hour = tonumber(ARGV[i + 1])
  local mask = tonumber(ARGV[i + 2])
  local score = tonumber(ARGV[i + 3])
  local meta = redis.call('HMGET', P .. 'v:' .. vid, 'status', 'category_id')
  local published = meta[1] == 'published'
  local m = member(vid)
  for w = 1, #NAMES do
    if bit.band(mask, BITS[w]) ~= 0 then
      local delta = score
      if w == TRENDING then delta = score * math.pow(2, (hour - t0) / hl) end
      if published then
        zadd_delta(P .. 'z:' .. NAMES[w] .. ':g', m, delta, w)
        if meta[2] then zadd_delta(P .. 'z:' .. NAMES[w] .. ':c:' .. meta[2], m, delta, w) end
      else
        redis.call('HINCRBYFLOAT', P .. 'shadow:' .. vid, NAMES[w], delta)
        redis.call('SADD', P .. 'shadows', vid)
      end
    end
  end
  n = n + 1
end
redis.call('SET', marker, 1, 'EX', 172800)
return n
"""
)

# Write a video's metadata and make the sorted sets agree with its status.
# Convergent: running it again changes nothing. A published video's category
# entries mirror its global entry; an unpublished video's scores live in its
# shadow hash until it is published again.
# ARGV[1] = video id, ARGV[2] = status, ARGV[3] = category id, ARGV[4..] = hash fields.
SYNC_VIDEO = (
    _COMMON
    + """
local vid = ARGV[1]
local published = ARGV[2] == 'published'
local cat = ARGV[3]
local vk = P .. 'v:' .. vid
redis.call('DEL', vk)
redis.call('HSET', vk, unpack(ARGV, 4))
if not redis.call('GET', P .. 'ready') then return -1 end
local m = member(vid)
local sk = P .. 'shadow:' .. vid
local cats = categories()
if not published then
  for w = 1, #NAMES do
    local gk = P .. 'z:' .. NAMES[w] .. ':g'
    local s = redis.call('ZSCORE', gk, m)
    if s then
      redis.call('HINCRBYFLOAT', sk, NAMES[w], -tonumber(s))
      redis.call('SADD', P .. 'shadows', vid)
      redis.call('ZREM', gk, m)
    end
    for _, c in ipairs(cats) do redis.call('ZREM', P .. 'z:' .. NAMES[w] .. ':c:' .. c, m) end
  end
  return 0
end
local shadow = redis.call('HGETALL', sk)
for j = 1, #shadow, 2 do
  for w = 1, #NAMES do
    if NAMES[w] == shadow[j] then zadd_delta(P .. 'z:' .. NAMES[w] .. ':g', m, tonumber(shadow[j + 1]), w) end
  end
end
redis.call('DEL', sk)
redis.call('SREM', P .. 'shadows', vid)
for w = 1, #NAMES do
  local s = redis.call('ZSCORE', P .. 'z:' .. NAMES[w] .. ':g', m)
  for _, c in ipairs(cats) do
    if c ~= cat then redis.call('ZREM', P .. 'z:' .. NAMES[w] .. ':c:' .. c, m) end
  end
  local ck = P .. 'z:' .. NAMES[w] .. ':c:' .. cat
  if s then redis.call('ZADD', ck, s, m) else redis.call('ZREM', ck, m) end
end
return 1
"""
)

# Move the trending reference time to ARGV[1] (epoch seconds): every stored
# trending score is multiplied by 2^((t0_old - t0_new) / half_life).
REBASE = (
    _COMMON
    + """
local trend = redis.call('HMGET', P .. 'trend', 't0', 'hl')
if not trend[1] or not redis.call('GET', P .. 'ready') then return -1 end
local t0 = tonumber(trend[1])
local hl = tonumber(trend[2])
local new = tonumber(ARGV[1])
local f = math.pow(2, (t0 - new) / hl)
local keys = {P .. 'z:trending:g'}
for _, c in ipairs(categories()) do table.insert(keys, P .. 'z:trending:c:' .. c) end
for _, k in ipairs(keys) do
  if redis.call('EXISTS', k) == 1 then redis.call('ZUNIONSTORE', k, 1, k, 'WEIGHTS', f) end
end
for _, vid in ipairs(redis.call('SMEMBERS', P .. 'shadows')) do
  local sk = P .. 'shadow:' .. vid
  local v = redis.call('HGET', sk, 'trending')
  if v then redis.call('HSET', sk, 'trending', tonumber(v) * f) end
end
redis.call('HSET', P .. 'trend', 't0', new)
return 1
"""
)

# Swap freshly built rankings in. ARGV[1] = JSON {gen, t0, hl, renames: [[tmp, live]],
# shadows: [video ids], batches: [batch ids already counted in the build]}.
SWAP = (
    _COMMON
    + """
local a = cjson.decode(ARGV[1])
local cats = categories()
for w = 1, #NAMES do
  redis.call('DEL', P .. 'z:' .. NAMES[w] .. ':g')
  for _, c in ipairs(cats) do redis.call('DEL', P .. 'z:' .. NAMES[w] .. ':c:' .. c) end
end
for _, vid in ipairs(redis.call('SMEMBERS', P .. 'shadows')) do redis.call('DEL', P .. 'shadow:' .. vid) end
redis.call('DEL', P .. 'shadows')
for _, p in ipairs(a.renames) do redis.call('RENAME', p[1], p[2]) end
for _, vid in ipairs(a.shadows) do redis.call('SADD', P .. 'shadows', vid) end
redis.call('HSET', P .. 'trend', 't0', a.t0, 'hl', a.hl)
for _, b in ipairs(a.batches) do redis.call('SET', P .. 'applied:' .. a.gen .. ':' .. b, 1, 'EX', 172800) end
redis.call('SET', P .. 'ready', a.gen)
return 1
"""
)


# Rebuild, metadata: one call writes many videos' hashes (DEL, then HSET of every field).
# ARGV[1] = JSON [field names]; ARGV[2] = JSON [[video id, value per field], ...], all strings.
# A chunk travels as one JSON argument because packing two commands of ~20 arguments per
# video in Python cost more than the rest of the rebuild together.
REBUILD_META = (
    _COMMON
    + """
local names = cjson.decode(ARGV[1])
local rows = cjson.decode(ARGV[2])
local args = {}
for _, r in ipairs(rows) do
  for i, name in ipairs(names) do
    args[2 * i - 1] = name
    args[2 * i] = r[i + 1]
  end
  local vk = P .. 'v:' .. r[1]
  redis.call('DEL', vk)
  redis.call('HSET', vk, unpack(args))
end
return #rows
"""
)

# Rebuild, scores: fill the temporary keys of a rebuild for many videos at once.
# ARGV[1] = temporary key prefix; ARGV[2] = JSON [[member, category id or false, [window, score], ...], ...]
# with scores already negated (ZADD into tmp .. ranking key, global and category);
# ARGV[3] = JSON [[video id, window, value text], ...] for the shadow hashes of unpublished videos.
REBUILD_SCORES = (
    _COMMON
    + """
local tmp = ARGV[1]
local adds = {}
local function add(key, score, m)
  local list = adds[key]
  if not list then list = {}; adds[key] = list end
  list[#list + 1] = score
  list[#list + 1] = m
end
for _, r in ipairs(cjson.decode(ARGV[2])) do
  for j = 3, #r do
    local w, score = r[j][1], r[j][2]
    add(tmp .. P .. 'z:' .. w .. ':g', score, r[1])
    if r[2] then add(tmp .. P .. 'z:' .. w .. ':c:' .. r[2], score, r[1]) end
  end
end
for key, list in pairs(adds) do
  for i = 1, #list, 1000 do
    redis.call('ZADD', key, unpack(list, i, math.min(i + 999, #list)))
  end
end
for _, s in ipairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', tmp .. P .. 'shadow:' .. s[1], s[2], s[3])
end
return 1
"""
)


# Read of one ranking page: the whole top-N request in one call. A pipeline cannot do it in
# one round trip, since the metadata, snapshot and tie lookups need the page's members first;
# two pipelined round trips of ~25 commands were a quarter of a top-20 request's CPU in the
# web worker (packing and parsing). Read-only, and it sees one consistent state of the ranking.
# KEYS[1] = ranking, KEYS[2] = trend hash, KEYS[3] = snapshot hash; ARGV[1], ARGV[2] = ZRANGE
# start and stop; ARGV[3..] = the metadata fields to read per video.
# Returns {total, {member, score, ...}, {t0, hl}} for an empty page, else also the number of
# members scored strictly better than the first (for a page that starts inside a tie), the
# metadata per video and the snapshot's previous rank per video.
TOP = (
    _COMMON
    + """
local total = redis.call('ZCARD', KEYS[1])
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local trend = redis.call('HMGET', KEYS[2], 't0', 'hl')
if #rows == 0 then return {total, rows, trend} end
local better = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. rows[2])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local ids, metas = {}, {}
for i = 1, #rows, 2 do
  local id = string.match(rows[i], '^0*(%d+)$')
  ids[#ids + 1] = id
  metas[#metas + 1] = redis.call('HMGET', P .. 'v:' .. id, unpack(fields))
end
return {total, rows, trend, better, metas, redis.call('HMGET', KEYS[3], unpack(ids))}
"""
)


# Ingest: the cached status of many videos in one call. ARGV = video ids; returns each one's
# status, nil when the video is not cached. As a pipeline of one HMGET per video, packing and
# parsing ~500 commands was a sixth of the web worker's CPU per POST of 500 events.
STATUSES = (
    _COMMON
    + """
local out = {}
for i = 1, #ARGV do
  -- a missing hash or field comes back as false, so the table has no holes
  out[i] = redis.call('HGET', P .. 'v:' .. ARGV[i], 'status')
end
return out
"""
)


def script(source: str) -> Script:
    """A registered script on the current Redis; redis-py reloads it by hash after a server restart."""
    return _registered(source, settings.REDIS_URL)


@cache
def _registered(source: str, url: str) -> Script:
    # Keyed by URL too: a script object keeps the client it was registered with.
    return redis_client().register_script(source)
