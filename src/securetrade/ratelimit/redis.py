"""The Redis backend: processes on many hosts share windows through one Redis server.

Each acquire is one Lua script, which Redis runs atomically: it reads the pause, expires
and checks every window of the call, and either logs the call in all of them or returns
the wait. Times are the Redis server's ``TIME`` in whole microseconds, so the hosts' own
clocks never matter. Scripts are sent once and then called by hash (``EVALSHA``; redis-py
reloads them if the server has forgotten them).

Per window: a sorted set of entries (score = time in µs, member = ``time:seq:cost``) and a
hash with the running ``total`` and a ``seq`` counter; both expire when the window would
be empty anyway, so idle scopes leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import Backend, Draw

__all__ = ["RedisBackend"]

# Shared by every script: expire one window (KEYS z, h) at `now`; returns its total.
_EXPIRE = """
local function expire(z, h, span, now)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - span)
  local total = tonumber(redis.call('HGET', h, 'total') or '0')
  if #old > 0 then
    local freed = 0
    for _, member in ipairs(old) do
      freed = freed + tonumber(string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - span)
    total = total - freed
    redis.call('HSET', h, 'total', total)
  end
  return total
end
local function add(z, h, span, now, cost)
  local seq = redis.call('HINCRBY', h, 'seq', 1)
  redis.call('ZADD', z, now, string.format('%.0f:%d:%d', now, seq, cost))
  redis.call('HINCRBY', h, 'total', cost)
  local ttl = math.floor(span / 1000) + 1000
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', h, ttl)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: pause, then (zset, hash) per draw. ARGV: (span µs, ceiling, cost) per draw.
# Returns {wait µs, now µs}; wait 0 means admitted.
_ACQUIRE = (
    _EXPIRE
    + """
local till = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > now then return {till - now, now} end
local wait = 0
local n = (#KEYS - 1) / 2
for i = 1, n do
  local z, h = KEYS[2 * i], KEYS[2 * i + 1]
  local span, ceiling, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),
    tonumber(ARGV[3 * i])
  local excess = expire(z, h, span, now) + cost - ceiling
  if excess > 0 then
    local delay = span
    local freed, offset = 0, 0
    while delay == span do
      local batch = redis.call('ZRANGE', z, offset, offset + 99, 'WITHSCORES')
      if #batch == 0 then break end
      for j = 1, #batch, 2 do
        freed = freed + tonumber(string.match(batch[j], ':(%d+)$'))
        if freed >= excess then
          delay = tonumber(batch[j + 1]) + span - now
          break
        end
      end
      offset = offset + 100
    end
    if delay > wait then wait = delay end
  end
end
if wait > 0 then return {wait, now} end
for i = 1, n do
  add(KEYS[2 * i], KEYS[2 * i + 1], tonumber(ARGV[3 * i - 2]), now, tonumber(ARGV[3 * i]))
end
return {0, now}
"""
)

# KEYS: (zset, hash) per report. ARGV: (span µs, reported) per report.
_RECONCILE = (
    _EXPIRE
    + """
for i = 1, #KEYS / 2 do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local span = tonumber(ARGV[2 * i - 1])
  local missing = tonumber(ARGV[2 * i]) - expire(z, h, span, now)
  if missing > 0 then add(z, h, span, now, missing) end
end
return 0
"""
)

# KEYS: pause. ARGV: µs to pause (0: only read). Returns µs left.
_PAUSE = (
    _EXPIRE
    + """
local till = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = now + tonumber(ARGV[1])
if tonumber(ARGV[1]) > 0 and wanted > till then
  till = wanted
  redis.call('SET', KEYS[1], till, 'PX', math.floor((till - now) / 1000) + 1000)
end
if till > now then return till - now end
return 0
"""
)

# KEYS: (zset, hash) per bucket. ARGV: span µs per bucket. Returns totals.
_USED = (
    _EXPIRE
    + """
local result = {}
for i = 1, #KEYS / 2 do
  result[i] = expire(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[i]), now)
end
return result
"""
)

# KEYS: target zset, target hash, source zset. ARGV: span µs.
_SEED = (
    _EXPIRE
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local span = tonumber(ARGV[1])
local rows = redis.call('ZRANGEBYSCORE', KEYS[3], string.format('(%.0f', now - span), '+inf',
  'WITHSCORES')
local total = 0
for j = 1, #rows, 2 do
  redis.call('ZADD', KEYS[1], rows[j + 1], rows[j])
  total = total + tonumber(string.match(rows[j], ':(%d+)$'))
end
redis.call('HSET', KEYS[2], 'total', total)
local ttl = math.floor(span / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return total
"""
)

_Plan = tuple[list[str], list[int]]


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class RedisBackend(Backend):
    """Windows in Redis at ``url`` (or an existing ``redis.Redis`` client)."""

    shared = True

    def __init__(self, url: str | Any) -> None:
        import redis

        self._redis: Any = (
            redis.Redis.from_url(url, socket_timeout=10.0) if isinstance(url, str) else url
        )
        self._owned = isinstance(url, str)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._reconcile = self._redis.register_script(_RECONCILE)
        self._pause = self._redis.register_script(_PAUSE)
        self._used = self._redis.register_script(_USED)
        self._seed = self._redis.register_script(_SEED)

    def compile(self, pause_key: str, draws: Sequence[Draw]) -> _Plan:
        keys = [pause_key]
        args: list[int] = []
        for draw in draws:
            keys += [draw.bucket, draw.bucket + ":h"]
            args += [_us(draw.seconds), draw.ceiling, draw.cost]
        return keys, args

    def acquire_at(self, plan: _Plan) -> tuple[float, float]:
        wait, now = self._acquire(keys=plan[0], args=plan[1])
        return int(wait) / 1_000_000, int(now) / 1_000_000

    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        if reports:
            keys = [name for bucket, _, _ in reports for name in (bucket, bucket + ":h")]
            args = [value for _, s, n in reports for value in (_us(s), n)]
            self._reconcile(keys=keys, args=args)

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=[key], args=[max(1, _us(seconds))])

    def paused_for(self, key: str) -> float:
        return int(self._pause(keys=[key], args=[0])) / 1_000_000

    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        if not buckets:
            return []
        keys = [name for bucket, _ in buckets for name in (bucket, bucket + ":h")]
        return [int(v) for v in self._used(keys=keys, args=[_us(s) for _, s in buckets])]

    def seed(self, target: str, source: str, seconds: float) -> None:
        self._seed(keys=[target, target + ":h", source], args=[_us(seconds)])

    def close(self) -> None:
        if self._owned:
            self._redis.close()
