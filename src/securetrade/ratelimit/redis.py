"""The Redis backend: processes on many hosts share windows through one Redis server.

Each call is one Lua script, which Redis runs atomically: it reads the pause, expires and
checks every window of the call, and either logs the call or returns the wait. Times are
the Redis server's ``TIME`` in whole microseconds, so the hosts' own clocks never matter
and every comparison is exact. Scripts are sent once and then called by hash (``EVALSHA``;
redis-py reloads them if the server has forgotten them).

Per log (a kind of cost in one scope), whatever the windows over it: a sorted set of
entries (score = time in µs, member = ``id:cost:span``) and a hash with, per window, its
running total ``t<span>`` and the time up to which entries have left it ``e<span>``, plus
the registered windows (``spans``), the longest one, a ``seq`` counter, and ``floor``, up
to which the log has dropped entries. An admission in flight is the member ``f<ticket>``
scored at its deadline (admission + flight); landing re-scores it to the landing time, so
a process that dies with requests in flight leaves nothing that outlives the deadline.
Units the venue reported for a window of ``span`` count only in windows that long or
longer. Both keys expire once every window would be empty, so idle scopes leave nothing.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from .._redis import redis_client
from .backend import Backend, Draw

__all__ = ["RedisBackend"]

# Shared by every script. Numbers are formatted with %.0f wherever they become text: Lua
# would print large ones in exponent notation.
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local NEVER = -1e18
local function s(x) return string.format('%.0f', x) end
local function parse(member)
  local cost, span = string.match(member, ':(%d+):(%d+)$')
  return tonumber(cost), tonumber(span)
end
local function spans(h)
  local list = {}
  local text = redis.call('HGET', h, 'spans')
  if text then for w in string.gmatch(text, '%d+') do list[#list + 1] = tonumber(w) end end
  return list
end
-- units scored in (low, high] that a window of `span` counts
local function sum(z, low, high, span)
  local total = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', z, '(' .. s(low), high)) do
    local cost, w = parse(m)
    if w <= span then total = total + cost end
  end
  return total
end
-- expire the `span` window over log (z, h) to now; returns what it holds. A window new
-- to the log, or one whose entries the log dropped since it was last read, is recounted.
local function window(z, h, span)
  local row = redis.call('HMGET', h, 't' .. s(span), 'e' .. s(span), 'floor')
  local total, edge, floor = tonumber(row[1]), tonumber(row[2]), tonumber(row[3] or NEVER)
  local cutoff = now - span
  if total == nil or edge < floor then
    if total == nil then
      local text = redis.call('HGET', h, 'spans')
      redis.call('HSET', h, 'spans', (text and (text .. ',') or '') .. s(span))
      if span > tonumber(redis.call('HGET', h, 'longest') or '0') then
        redis.call('HSET', h, 'longest', s(span))
      end
    end
    total = sum(z, cutoff, '+inf', span)
  elseif edge < cutoff then
    total = total - sum(z, edge, s(cutoff), span)
  end
  redis.call('HSET', h, 't' .. s(span), s(total), 'e' .. s(span), s(cutoff))
  return total
end
-- drop entries that have left the longest window
local function prune(z, h)
  local cutoff = now - tonumber(redis.call('HGET', h, 'longest') or '0')
  if redis.call('ZREMRANGEBYSCORE', z, '-inf', s(cutoff)) > 0 then
    redis.call('HSET', h, 'floor', s(cutoff))
  end
end
-- log `cost` units scored `stamp`: every window at least `span` long counts them
local function add(z, h, stamp, cost, span, member)
  redis.call('ZADD', z, s(stamp), member)
  for _, w in ipairs(spans(h)) do
    if w >= span then redis.call('HINCRBY', h, 't' .. s(w), cost) end
  end
end
local function entry(h, cost, span)
  return s(now) .. '.' .. redis.call('HINCRBY', h, 'seq', 1) .. ':' .. cost .. ':' .. s(span)
end
-- both keys live while an entry (landed, or in flight until its deadline) can count
local function keep(z, h, flight)
  local row = redis.call('HMGET', h, 'longest', 'flight')
  local longest, most = tonumber(row[1] or '0'), tonumber(row[2] or '0')
  if flight > most then
    redis.call('HSET', h, 'flight', s(flight))
    most = flight
  end
  local ttl = math.floor((longest + most) / 1000) + 1000
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', h, ttl)
end
"""

# KEYS: pause, then (zset, hash) per log. ARGV: ticket ('' to log the call at once),
# flight µs, number of logs, then per log: cost, number of windows, (span µs, ceiling) each.
# Returns {wait µs, now µs}; wait 0 means taken.
_TAKE = (
    _COMMON
    + """
local till = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > now then return {till - now, now} end
local ticket, flight = ARGV[1], tonumber(ARGV[2])
local logs, i = {}, 4
for n = 1, tonumber(ARGV[3]) do
  local log = {z = KEYS[2 * n], h = KEYS[2 * n + 1], cost = tonumber(ARGV[i]), windows = {}}
  local count = tonumber(ARGV[i + 1])
  i = i + 2
  for w = 1, count do
    log.windows[w] = {tonumber(ARGV[i]), tonumber(ARGV[i + 1])}
    i = i + 2
  end
  logs[n] = log
end
local wait = 0
for _, log in ipairs(logs) do
  for _, w in ipairs(log.windows) do
    local span = w[1]
    local excess = window(log.z, log.h, span) + log.cost - w[2]
    if excess > 0 then
      -- units in flight leave one window after they land, which is now at the earliest
      local delay, freed, offset = span, 0, 0
      while delay == span do
        local batch = redis.call('ZRANGEBYSCORE', log.z, '(' .. s(now - span), '+inf',
          'WITHSCORES', 'LIMIT', offset, 100)
        if #batch == 0 then break end
        for j = 1, #batch, 2 do
          local cost, ws = parse(batch[j])
          if ws <= span then
            freed = freed + cost
            if freed >= excess then
              delay = math.min(tonumber(batch[j + 1]), now) + span - now
              break
            end
          end
        end
        offset = offset + 100
      end
      if delay > wait then wait = delay end
    end
  end
  prune(log.z, log.h)
end
if wait > 0 then return {wait, now} end
for _, log in ipairs(logs) do
  if ticket == '' then
    add(log.z, log.h, now, log.cost, 0, entry(log.h, log.cost, 0))
  else
    add(log.z, log.h, now + flight, log.cost, 0, 'f' .. ticket .. ':' .. log.cost .. ':0')
  end
  keep(log.z, log.h, flight)
end
return {0, now}
"""
)

# KEYS: (zset, hash) per log of the admission, then per report. ARGV: ticket, number of
# logs, cost per log, then (span µs, reported) per report.
_LAND = (
    _COMMON
    + """
local ticket, count = ARGV[1], tonumber(ARGV[2])
for n = 1, count do
  local z, h, cost = KEYS[2 * n - 1], KEYS[2 * n], tonumber(ARGV[2 + n])
  local member = 'f' .. ticket .. ':' .. cost .. ':0'
  local old = tonumber(redis.call('ZSCORE', z, member) or NEVER)
  redis.call('ZREM', z, member)
  redis.call('ZADD', z, s(now), entry(h, cost, 0))
  if old <= now then
    -- past its deadline: windows that let it go count it again, from now
    for _, w in ipairs(spans(h)) do
      if tonumber(redis.call('HGET', h, 'e' .. s(w)) or NEVER) >= old then
        redis.call('HINCRBY', h, 't' .. s(w), cost)
      end
    end
  end
  keep(z, h, 0)
end
local i = 3 + count
for n = count + 1, #KEYS / 2 do
  local z, h = KEYS[2 * n - 1], KEYS[2 * n]
  local span, reported = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local total = window(z, h, span)
  local flying = sum(z, now, '+inf', span)  -- in flight: the venue may not have them yet
  local missing = reported - (total - flying)
  if missing > 0 then add(z, h, now, missing, span, entry(h, missing, span)) end
  keep(z, h, 0)
end
return 0
"""
)

# KEYS: pause. ARGV: µs to pause (0: only read). Returns µs left.
_PAUSE = (
    _COMMON
    + """
local till = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = now + tonumber(ARGV[1])
if tonumber(ARGV[1]) > 0 and wanted > till then
  till = wanted
  redis.call('SET', KEYS[1], s(till), 'PX', math.floor((till - now) / 1000) + 1000)
end
if till > now then return till - now end
return 0
"""
)

# KEYS: (zset, hash) per window. ARGV: span µs per window. Returns totals.
_USED = (
    _COMMON
    + """
local result = {}
for i = 1, #KEYS / 2 do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  result[i] = window(z, h, tonumber(ARGV[i]))
  keep(z, h, 0)
end
return result
"""
)

_Plan = tuple[list[str], list[int], list[int]]  # keys, arguments, cost per log


class _Admission(NamedTuple):
    """An admission in flight (its own type: the limiter checks it before :meth:`land`)."""

    ticket: str
    keys: list[str]  # (zset, hash) per log
    costs: list[int]  # per log


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class RedisBackend(Backend):
    """Windows in Redis at ``url`` (or an existing ``redis.Redis`` client)."""

    shared = True
    admission_type = _Admission

    def __init__(self, url: str | Any) -> None:
        self._redis: Any = redis_client(url, what="RateLimiter.redis", socket_timeout=10.0)
        self._owned = isinstance(url, str)
        self._take = self._redis.register_script(_TAKE)
        self._land = self._redis.register_script(_LAND)
        self._pause = self._redis.register_script(_PAUSE)
        self._used = self._redis.register_script(_USED)
        # Tickets name admissions in flight: unique across processes and hosts.
        self._prefix = secrets.token_hex(6)
        self._count = itertools.count()

    def compile(self, pause_key: str, draws: Sequence[Draw], *, flight: float = 60.0) -> _Plan:
        logs: dict[str, tuple[int, list[int]]] = {}
        for draw in draws:
            cost, windows = logs.get(draw.bucket, (0, []))
            windows += [_us(draw.seconds), draw.ceiling]
            logs[draw.bucket] = (max(cost, draw.cost), windows)
        keys = [pause_key]
        args = [_us(flight), len(logs)]
        for bucket, (cost, windows) in logs.items():
            keys += [bucket, bucket + ":h"]
            args += [cost, len(windows) // 2, *windows]
        return keys, args, [cost for cost, _ in logs.values()]

    def acquire_at(self, plan: _Plan) -> tuple[float, float]:
        wait, now = self._take(keys=plan[0], args=["", *plan[1]])
        return int(wait) / 1_000_000, int(now) / 1_000_000

    def admit(self, plan: _Plan) -> tuple[float, _Admission | None]:
        keys, args, costs = plan
        ticket = f"{self._prefix}{next(self._count):x}"
        wait, _ = self._take(keys=keys, args=[ticket, *args])
        if int(wait) > 0:
            return int(wait) / 1_000_000, None
        return 0.0, _Admission(ticket, keys[1:], costs)

    def land(self, admission: _Admission, reports: Sequence[tuple[str, float, int]] = ()) -> None:
        ticket, keys, costs = admission
        self._land(
            keys=keys + [name for bucket, _, _ in reports for name in (bucket, bucket + ":h")],
            args=[ticket, len(costs), *costs, *(v for _, s, n in reports for v in (_us(s), n))],
        )

    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        if reports:
            self.land(_Admission("", [], []), reports)

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=[key], args=[max(1, _us(seconds))])

    def paused_for(self, key: str) -> float:
        return int(self._pause(keys=[key], args=[0])) / 1_000_000

    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        if not buckets:
            return []
        keys = [name for bucket, _ in buckets for name in (bucket, bucket + ":h")]
        return [int(v) for v in self._used(keys=keys, args=[_us(s) for _, s in buckets])]

    def close(self) -> None:
        if self._owned:
            self._redis.close()
