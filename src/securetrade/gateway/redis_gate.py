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

A restore from an older snapshot (RDB or AOF) keeps the epoch but not the latest nonces.
The store counts the admissions it records (``seq``), and each gateway process keeps the
highest (epoch, seq) it has seen, its watermark (in memory, and in a file if given one).
A store behind the watermark (same epoch, lower seq, or an older epoch) has been rolled
back: the script refuses every request there (``rolled_back``, which the middleware
answers 503 and reports) until an operator acknowledges it with
:meth:`SharedState.acknowledge_rollback`, which starts a new epoch, so the requests
whose nonces the snapshot lost are refused until stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _fork
from ..errors import InvalidRequest
from .gate import Bucket, Strikes, Verdict

__all__ = ["RedisGate"]

log = logging.getLogger("securetrade.gateway")

_US = 1_000_000

# KEYS: epoch, nonce, seq, locks..., buckets...  ARGV: stamp_ms, ahead_ms, nonce_ms, nlocks,
# watermark epoch, watermark seq, then (step_us, width_us, requests) per bucket. Every
# answer ends with the store's epoch and sequence (the admissions it has recorded).
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
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local mark_epoch, mark_seq = tonumber(ARGV[5]), tonumber(ARGV[6])
if epoch < mark_epoch or (epoch == mark_epoch and seq < mark_seq) then
  return {'rolled_back', '0', tostring(epoch), tostring(seq)}
end
local edge = epoch + tonumber(ARGV[2])
if tonumber(ARGV[1]) <= edge then
  return {'restarted', tostring(edge - tonumber(ARGV[1])), tostring(epoch), tostring(seq)}
end
local nlocks = tonumber(ARGV[4])
local locked = 0
for i = 4, 3 + nlocks do
  local left = redis.call('PTTL', KEYS[i])
  if left > locked then locked = left end
end
if locked > 0 then return {'locked_out', tostring(locked), tostring(epoch), tostring(seq)} end
local tats = {}
local wait = -1
for i = 4 + nlocks, #KEYS do
  local j = 7 + (i - 4 - nlocks) * 3
  local step, width = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + step
  if tat - now > width then wait = math.max(wait, tat - now - width) end
  tats[i] = tat
end
if wait >= 0 then  -- a refused request records nothing
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {'replayed', '0', tostring(epoch), tostring(seq)}
  end
  return {'rate_limited', tostring(wait / 1000), tostring(epoch), tostring(seq)}
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return {'replayed', '0', tostring(epoch), tostring(seq)}
end
seq = redis.call('INCR', KEYS[3])
local remaining = '-1'
for i = 4 + nlocks, #KEYS do
  local left = tats[i] - now
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil(left / 1000) + 1)
  if i == 4 + nlocks then
    local width, requests = tonumber(ARGV[8]), tonumber(ARGV[9])
    local per = math.max(1, math.floor(width / requests))
    remaining = tostring(math.max(0, math.floor((width - left) / per)))
  end
end
return {'ok', remaining, tostring(epoch), tostring(seq)}
"""

# Acknowledging a rollback: a new epoch from now, so every request signed before it (the
# nonces the older snapshot lost among them) is refused until it is stale.
_NEW_EPOCH = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
if now_ms <= epoch then now_ms = epoch + 1 end
redis.call('SET', KEYS[1], now_ms)
return now_ms
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
    """Hosts sharing one Redis server (``client`` is a ``redis.Redis``).

    ``watermark`` is a file where this process keeps the highest (epoch, sequence) it has
    seen the store at, so that a gateway restarted together with a restored Redis still
    knows how far the store had got (written at most once a second: a snapshot taken in
    the last second before such a restart can go unnoticed). Without it, the watermark
    lives in this process's memory only.
    """

    shared = True

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "{securetrade:gateway}:",
        owned: bool = False,
        watermark: str | os.PathLike[str] | None = None,
    ) -> None:
        self._client = client
        self._owned = owned
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._failed = client.register_script(_FAILED)
        self._new_epoch = client.register_script(_NEW_EPOCH)
        self._lock = threading.Lock()
        self._file = Path(watermark) if watermark is not None else None
        self.mark = _read_mark(self._file)  # (epoch, seq): the store is never behind it
        self._saved = (self.mark, time.monotonic())
        try:  # the epoch starts when the first gateway connects (else at the first request)
            seconds, micros = client.time()
            client.set(prefix + "epoch", str(seconds * 1000 + micros // 1000), nx=True)
        except Exception:  # noqa: S110 - down at start: the first admission writes it
            pass
        _fork.watch(self)

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking server's worker, see :mod:`securetrade._fork`):
        redis-py's pool notices the new pid at its next call and opens the child's own
        connections (the parent's sockets are left alone); the watermark lock is renewed
        (the parent's may have been held by a thread that does not exist here)."""
        self._lock = threading.Lock()

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
        keys = [p + "epoch", p + "nonce:" + token, p + "seq"]
        keys += [p + "lock:" + name for name in locks]
        keys += [p + "rate:" + b.name for b in buckets]
        # The nonce lives until the request is stale by this host's clock, as it was judged.
        live_ms = max(1, expires_ms - time.time_ns() // 1_000_000)
        mark_epoch, mark_seq = self.mark
        args: list[int] = [stamp_ms, ahead_ms, live_ms, len(locks), mark_epoch, mark_seq]
        for bucket in buckets:
            args += [bucket.step(_US), bucket.width(_US), bucket.requests]
        outcome, value, epoch, seq = self._admit(keys=keys, args=args)
        kind = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if kind != "rolled_back":
            self._observe((int(epoch), int(seq)))
        number = float(value)
        if kind == "ok":
            return Verdict("ok", 0.0, None if number < 0 else int(number))
        return Verdict(kind, number / 1000)

    def _observe(self, seen: tuple[int, int]) -> None:
        """Raise the watermark to what the store just answered (never lower it)."""
        with self._lock:
            if seen <= self.mark:
                return
            self.mark = seen
            if self._file is not None and time.monotonic() - self._saved[1] >= 1.0:
                self._save_or_warn()

    def _save_or_warn(self) -> None:
        """Write the watermark file; if it cannot be written, the watermark in memory
        still guards this process, so say so and go on."""
        try:
            self._save()
        except OSError:
            self._saved = (self._saved[0], time.monotonic())  # try again in a second
            log.warning(
                "the gateway's watermark file %s could not be written: a Redis restored "
                "from an older snapshot is still noticed while this process runs",
                self._file,
            )

    def _save(self) -> None:
        """Write the watermark, never below what the file holds: the workers of a
        pre-forking server share the file (built in the master), and one that saw the store
        at a lower point, saving last, would move it back. Read and replaced under an
        ``flock`` of a file beside it, so that two savers do not interleave."""
        if self._file is None or self._saved[0] == self.mark:
            return
        mark = self.mark
        with _locked(self._file.with_name(self._file.name + ".lock")):
            try:
                kept = _read_mark(self._file)
            except InvalidRequest:  # unreadable: ours replaces it
                kept = (0, 0)
            if mark > kept:
                temporary = self._file.with_name(f"{self._file.name}.{os.getpid()}.tmp")
                temporary.write_text(f"{mark[0]} {mark[1]}\n", "ascii")
                os.replace(temporary, self._file)
        self._saved = (mark, time.monotonic())

    def acknowledge(self) -> int:
        """Accept the store as it is now (after a rollback): a new epoch begins, so every
        request signed before it is refused until stale; returns the epoch (ms)."""
        epoch = int(self._new_epoch(keys=[self._prefix + "epoch"]))
        with self._lock:
            self.mark = (epoch, 0)
            self._save()
        return epoch

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
        with self._lock:
            self._save_or_warn()
        if self._owned:
            self._client.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``path`` (made if missing) for the block; none where the
    system has no ``fcntl`` (Windows: no fork there, so no workers sharing the file)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX has it
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_mark(path: Path | None) -> tuple[int, int]:
    """The watermark a previous run of this process left in ``path``, else (0, 0)."""
    if path is None:
        return (0, 0)
    try:
        epoch, seq = path.read_text("ascii").split()
        return (int(epoch), int(seq))
    except FileNotFoundError:
        return (0, 0)
    except (OSError, ValueError):
        raise InvalidRequest(
            f"the gateway's watermark file {os.fspath(path)!r} is unreadable: restore it, "
            "or delete it to start without a watermark (an older Redis snapshot restored "
            "meanwhile would then go unnoticed)"
        ) from None
