"""The gate on Redis: one Lua script per request, one per failure (see :mod:`.gate`).

Redis runs a script alone, so reading a bucket and writing it are one step for every host.
Time is the server's (``TIME``), so hosts with skewed clocks share buckets and lock-outs
exactly. All keys share one hash tag (the prefix's ``{...}``), so a cluster keeps them in
one slot.

The epoch: the first gateway to connect, or the first script to find no ``epoch`` key,
writes the server's time there. A
server that restarted without its data has lost every nonce, so requests stamped before it
came back (plus the sender's allowed lead, ``ahead_ms``) are refused with ``restarted``
until they are stale; a server kept in memory or restored with its data keeps its epoch.
A restore from an older snapshot (RDB) keeps the epoch but not the latest nonces: run
Redis with ``appendonly yes`` and ``appendfsync always``, or without persistence at all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .gate import Bucket, Strikes, Verdict

__all__ = ["RedisGate"]

_US = 1_000_000

# KEYS: epoch, nonce, locks..., buckets...  ARGV: stamp_ms, ahead_ms, nonce_ms, nlocks,
# then (step_us, width_us, requests) per bucket.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local epoch = redis.call('GET', KEYS[1])
if epoch then
  epoch = tonumber(epoch)
else
  epoch = now_ms
  redis.call('SET', KEYS[1], epoch)
end
local edge = epoch + tonumber(ARGV[2])
if tonumber(ARGV[1]) <= edge then
  return {'restarted', tostring(edge - tonumber(ARGV[1]))}
end
local nlocks = tonumber(ARGV[4])
local locked = 0
for i = 3, 2 + nlocks do
  local left = redis.call('PTTL', KEYS[i])
  if left > locked then locked = left end
end
if locked > 0 then return {'locked_out', tostring(locked)} end
local tats = {}
local wait = -1
for i = 3 + nlocks, #KEYS do
  local j = 5 + (i - 3 - nlocks) * 3
  local step, width = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + step
  if tat - now > width then wait = math.max(wait, tat - now - width) end
  tats[i] = tat
end
if wait >= 0 then  -- a refused request records nothing
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'replayed', '0'} end
  return {'rate_limited', tostring(wait / 1000)}
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return {'replayed', '0'} end
local remaining = '-1'
for i = 3 + nlocks, #KEYS do
  local left = tats[i] - now
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil(left / 1000) + 1)
  if i == 3 + nlocks then
    local width, requests = tonumber(ARGV[6]), tonumber(ARGV[7])
    local per = math.max(1, math.floor(width / requests))
    remaining = tostring(math.max(0, math.floor((width - left) / per)))
  end
end
return {'ok', remaining}
"""

# KEYS: lock, strikes per name.  ARGV: threshold, window_ms, duration_ms, then the number
# of failures per name.
_FAILED = """
local out = {}
for i = 1, #KEYS, 2 do
  local left = redis.call('PTTL', KEYS[i])
  if left > 0 then
    table.insert(out, left)
    table.insert(out, 1)
  else
    local n = tonumber(ARGV[4 + (i - 1) / 2])
    local count = redis.call('INCRBY', KEYS[i + 1], n)
    if count == n then redis.call('PEXPIRE', KEYS[i + 1], ARGV[2]) end
    if count >= tonumber(ARGV[1]) then
      redis.call('SET', KEYS[i], '1', 'PX', ARGV[3])
      redis.call('DEL', KEYS[i + 1])
      table.insert(out, tonumber(ARGV[3]))
    else
      table.insert(out, 0)
    end
    table.insert(out, 0)
  end
end
return out
"""


class RedisGate:
    """Hosts sharing one Redis server (``client`` is a ``redis.Redis``)."""

    shared = True

    def __init__(
        self, client: Any, *, prefix: str = "{securetrade:gateway}:", owned: bool = False
    ) -> None:
        self._client = client
        self._owned = owned
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._failed = client.register_script(_FAILED)
        try:  # the epoch starts when the first gateway connects (else at the first request)
            seconds, micros = client.time()
            client.set(prefix + "epoch", str(seconds * 1000 + micros // 1000), nx=True)
        except Exception:  # noqa: S110 - down at start: the first admission writes it
            pass

    def admit(
        self,
        token: str,
        stamp_ms: int,
        expires_ms: int,
        ahead_ms: int,
        locks: Sequence[str],
        buckets: Sequence[Bucket],
        remaining: bool = False,
    ) -> Verdict:
        p = self._prefix
        keys = [p + "epoch", p + "nonce:" + token]
        keys += [p + "lock:" + name for name in locks]
        keys += [p + "rate:" + b.name for b in buckets]
        # The nonce lives until the request is stale by this host's clock, as it was judged.
        live_ms = max(1, expires_ms - time.time_ns() // 1_000_000)
        args: list[int] = [stamp_ms, ahead_ms, live_ms, len(locks)]
        for bucket in buckets:
            args += [bucket.step(_US), bucket.width(_US), bucket.requests]
        outcome, value = self._admit(keys=keys, args=args)
        kind = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        number = float(value)
        if kind == "ok":
            return Verdict("ok", 0.0, None if number < 0 else int(number))
        return Verdict(kind, number / 1000)

    def failed(self, counts: Mapping[str, int], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        keys = []
        names = list(counts)
        for name in names:
            keys += [self._prefix + "lock:" + name, self._prefix + "strikes:" + name]
        args = [strikes.threshold, strikes.window_ms, strikes.duration_ms, *counts.values()]
        flat = self._failed(keys=keys, args=args)
        return {
            name: (int(flat[2 * i]) / 1000, bool(int(flat[2 * i + 1])))
            for i, name in enumerate(names)
        }

    def close(self) -> None:
        if self._owned:
            self._client.close()
