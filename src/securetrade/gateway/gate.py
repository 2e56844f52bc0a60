"""One admission per request: lock-outs, store epoch, nonce and rate limits in one atomic step.

The gateway used to spend ~18 SQLite statements per request (the replay store, then the
outbound limiter's admission for two windows, each its own transaction). Inbound counting
needs none of the outbound machinery (in-flight deadlines, landing, reconciling with a
venue's headers), so a gate does it all at once: one ``BEGIN IMMEDIATE`` transaction of
five statements on SQLite, one Lua script on Redis, one lock in memory. Same order and same
answers on all three:

1. the caller's address or key id is locked out (shared by every process) ..... locked_out
2. the request is older than the store's epoch (a store that lost its memory) .. restarted
3. the nonce is recorded, or is already there and live ......................... replayed
4. every bucket has room (GCRA), then all are spent, or none ................... rate_limited

Rate limits are GCRA (the generic cell rate algorithm): a bucket keeps one number, the
theoretical arrival time ``tat``; a call of cost ``c`` on ``Limit(n, w)`` moves it to
``max(tat, now) + c*w/n`` and is admitted if that lies at most ``w`` ahead of now. A full
bucket admits ``n`` calls at once, then one every ``w/n``: exact across processes because
the read and the write happen under the store's write lock (or inside the script).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from .._sqlite import retry_locked, wal
from ..verify.replay import MemoryReplayStore

__all__ = ["Bucket", "Gate", "MemoryGate", "SqliteGate", "Verdict", "boot_id"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rate window: ``requests`` per ``seconds``, this call spending ``cost``."""

    name: str
    requests: int
    seconds: float
    cost: int

    def step(self, unit: int) -> int:
        """What one call adds to the bucket's tat, in clock units (``unit`` per second);
        never 0, so no bucket is unlimited by rounding."""
        return max(1, round(self.seconds * unit) * self.cost // self.requests)

    def width(self, unit: int) -> int:
        return round(self.seconds * unit)


class Verdict(NamedTuple):
    """``outcome`` is ok, locked_out, restarted, replayed or rate_limited; ``wait`` the
    seconds to wait before trying again; ``remaining`` calls left in the first bucket."""

    outcome: str
    wait: float = 0.0
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class Strikes:
    """A failure counted against ``names``: ``threshold`` within ``window_ms`` lock a name
    for ``duration_ms``."""

    threshold: int
    window_ms: int
    duration_ms: int


class Gate(Protocol):
    """Where the gateway's processes share what they decide on (see the module docstring)."""

    shared: bool

    def admit(
        self,
        token: str,
        stamp_ms: int,
        expires_ms: int,
        ahead_ms: int,
        locks: Sequence[str],
        buckets: Sequence[Bucket],
    ) -> Verdict:
        """Decide on one authenticated request (the four steps of the module docstring)."""
        ...

    def failed(self, names: Sequence[str], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        """Count one authentication failure against each name; per name, the seconds it is
        now locked for (0 if not) and whether it was locked already before this failure."""
        ...

    def close(self) -> None: ...


def boot_id() -> str:
    """This boot of the host (Linux), else '': a SQLite file written before a reboot may have
    lost its last commits (``synchronous=NORMAL``), so the gate starts a new epoch."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text("ascii").strip()
    except OSError:
        return ""


def _remaining(bucket: Bucket, tat: int, now: int, unit: int) -> int:
    per_call = max(1, bucket.width(unit) // bucket.requests)
    return max(0, (bucket.width(unit) - (tat - now)) // per_call)


def _gcra(
    buckets: Sequence[Bucket], tats: dict[str, int], now: int, unit: int
) -> tuple[Verdict | None, list[tuple[str, int]]]:
    """The new tat of each bucket, or the refusal if one has no room."""
    updates = []
    for bucket in buckets:
        tat = max(tats.get(bucket.name, now), now) + bucket.step(unit)
        if tat - now > bucket.width(unit):
            return Verdict("rate_limited", (tat - now - bucket.width(unit)) / unit), []
        updates.append((bucket.name, tat))
    remaining = _remaining(buckets[0], updates[0][1], now, unit) if buckets else None
    return Verdict("ok", 0.0, remaining), updates


class MemoryGate:
    """This process only (tests, one-process apps, and the ``fail_open`` fallback)."""

    shared = False

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        self._nonces = MemoryReplayStore(max_entries)
        self._tats: dict[str, int] = {}
        self._strikes: dict[str, tuple[int, int, int]] = {}  # name -> (count, first, until)
        self._lock = threading.Lock()

    def admit(
        self,
        token: str,
        stamp_ms: int,
        expires_ms: int,
        ahead_ms: int,
        locks: Sequence[str],
        buckets: Sequence[Bucket],
    ) -> Verdict:
        now = time.time_ns()
        now_ms = now // 1_000_000
        with self._lock:
            until = max((self._strikes.get(n, (0, 0, 0))[2] for n in locks), default=0)
            if until > now_ms:
                return Verdict("locked_out", (until - now_ms) / 1000)
            if not self._nonces.remember(token, expires_ms, now_ms):
                return Verdict("replayed")
            verdict, updates = _gcra(buckets, self._tats, now, _NS)
            for name, tat in updates:
                self._tats[name] = tat
            if len(self._tats) > 100_000:  # drop buckets that are empty again
                for name in [n for n, t in self._tats.items() if t <= now]:
                    del self._tats[name]
            return verdict if verdict is not None else Verdict("ok")

    def failed(self, names: Sequence[str], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        now = time.time_ns() // 1_000_000
        out = {}
        with self._lock:
            for name in names:
                count, first, until = self._strikes.get(name, (0, now, 0))
                if until > now:
                    out[name] = ((until - now) / 1000, True)
                    continue
                if first <= now - strikes.window_ms or until:
                    count, first = 0, now
                count += 1
                until = now + strikes.duration_ms if count >= strikes.threshold else 0
                self._strikes[name] = (count, first, until)
                out[name] = ((until - now) / 1000 if until else 0.0, False)
            if len(self._strikes) > 100_000:
                stale = now - strikes.window_ms
                for old in [n for n, (_, f, u) in self._strikes.items() if u <= now and f <= stale]:
                    del self._strikes[old]
        return out

    def close(self) -> None:
        pass


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS st_gate_nonce
       (token TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS st_gate_nonce_expiry ON st_gate_nonce (expires_ms)",
    "CREATE TABLE IF NOT EXISTS st_gate_rate (name TEXT PRIMARY KEY, tat INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS st_gate_strike (name TEXT PRIMARY KEY, count INTEGER NOT NULL,
       first_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS st_gate_epoch
       (one INTEGER PRIMARY KEY CHECK (one = 1), boot TEXT NOT NULL, start_ms INTEGER NOT NULL)""",
)
# A strike resets when its window has passed or its lock has ended; a lock stays as it is.
_RESET = "(first_ms <= :now - :window OR (until_ms > 0 AND until_ms <= :now))"
_STRIKE = f"""INSERT INTO st_gate_strike (name, count, first_ms, until_ms)
    VALUES (:name, 1, :now, CASE WHEN :threshold <= 1 THEN :now + :duration ELSE 0 END)
    ON CONFLICT (name) DO UPDATE SET
      count = CASE WHEN until_ms > :now THEN count + 1 WHEN {_RESET} THEN 1 ELSE count + 1 END,
      first_ms = CASE WHEN until_ms > :now THEN first_ms WHEN {_RESET} THEN :now
                 ELSE first_ms END,
      until_ms = CASE WHEN until_ms > :now THEN until_ms
                 WHEN (CASE WHEN {_RESET} THEN 1 ELSE count + 1 END) >= :threshold
                 THEN :now + :duration ELSE 0 END
    RETURNING count, until_ms"""  # noqa: S608 - a constant


@functools.cache
def _statements(locks: int, buckets: int) -> tuple[str, str]:
    """The read and the write of one admission, for that many locks and buckets: the same
    text each time, so sqlite3's statement cache keeps them prepared."""
    read = (
        "SELECT 0, name, until_ms FROM st_gate_strike WHERE name IN ("  # noqa: S608 - only ?
        + ",".join("?" * locks)
        + ") UNION ALL SELECT 1, name, tat FROM st_gate_rate WHERE name IN ("
        + ",".join("?" * buckets)
        + ")"
    )
    write = (
        "INSERT INTO st_gate_rate (name, tat) VALUES "  # noqa: S608 - only ?
        + ",".join("(?, ?)" for _ in range(buckets))
        + " ON CONFLICT (name) DO UPDATE SET tat = excluded.tat"
    )
    return read, write


_NONCE = """INSERT INTO st_gate_nonce (token, expires_ms) VALUES (?, ?)
    ON CONFLICT (token) DO UPDATE SET expires_ms = excluded.expires_ms
    WHERE st_gate_nonce.expires_ms <= ?"""


class SqliteGate:
    """Processes on one host: one SQLite file in WAL mode; each admission is one
    ``BEGIN IMMEDIATE`` transaction (read locks and tats, insert the nonce, write the tats,
    commit), so SQLite's write lock makes every step exact across processes.

    The epoch: the file records the boot it was last opened under. Opened after a reboot
    (a power cut may have lost the last commits, nonces among them), it starts a new epoch
    now, and requests signed before it are refused until they are stale.
    """

    shared = True
    _PURGE_EVERY = 1000

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 2.0) -> None:
        self._db = sqlite3.connect(
            os.fspath(path), isolation_level=None, check_same_thread=False, timeout=timeout
        )
        wal(self._db, timeout=10.0)
        self._lock = threading.Lock()
        self._writes = 0
        self.epoch_ms = retry_locked(self._db, self._open, 10.0)

    def _open(self) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            boot = boot_id()
            row = db.execute("SELECT boot, start_ms FROM st_gate_epoch").fetchone()
            if row is None:  # a new file: nothing was ever recorded here to lose
                db.execute("INSERT INTO st_gate_epoch VALUES (1, ?, 0)", (boot,))
                start = 0
            elif row[0] != boot:  # written under another boot: its tail may be lost
                start = time.time_ns() // 1_000_000
                db.execute("UPDATE st_gate_epoch SET boot = ?, start_ms = ?", (boot, start))
            else:
                start = int(row[1])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return start

    def admit(
        self,
        token: str,
        stamp_ms: int,
        expires_ms: int,
        ahead_ms: int,
        locks: Sequence[str],
        buckets: Sequence[Bucket],
    ) -> Verdict:
        # A future-dated request accepted just before the epoch began may carry a stamp up
        # to ahead_ms past it: refuse up to there.
        if stamp_ms <= self.epoch_ms + ahead_ms:
            return Verdict("restarted", (self.epoch_ms + ahead_ms - stamp_ms) / 1000)
        read, write = _statements(len(locks), len(buckets))
        names = (*locks, *(b.name for b in buckets))
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time_ns()
                now_ms = now // 1_000_000
                until, tats = 0, {}
                for kind, name, value in db.execute(read, names):
                    if kind == 0:
                        until = max(until, value)
                    else:
                        tats[name] = value
                if until > now_ms:
                    verdict = Verdict("locked_out", (until - now_ms) / 1000)
                elif db.execute(_NONCE, (token, expires_ms, now_ms)).rowcount != 1:
                    verdict = Verdict("replayed")
                else:
                    found, updates = _gcra(buckets, tats, now, _NS)
                    verdict = found if found is not None else Verdict("ok")
                    if updates:
                        db.execute(write, [v for pair in updates for v in pair])
                    self._writes += 1
                    if self._writes % self._PURGE_EVERY == 0:
                        db.execute("DELETE FROM st_gate_nonce WHERE expires_ms <= ?", (now_ms,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return verdict

    def failed(self, names: Sequence[str], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        out = {}
        with self._lock:
            now = time.time_ns() // 1_000_000
            params = {
                "now": now,
                "window": strikes.window_ms,
                "duration": strikes.duration_ms,
                "threshold": strikes.threshold,
            }
            for name in names:  # each statement is its own atomic transaction
                count, until = self._db.execute(_STRIKE, {**params, "name": name}).fetchone()
                locked = until > now
                out[name] = (
                    (until - now) / 1000 if locked else 0.0,
                    locked and count > strikes.threshold,
                )
            self._writes += 1
            if self._writes % self._PURGE_EVERY == 0:
                self._db.execute(
                    "DELETE FROM st_gate_strike WHERE until_ms <= :now AND first_ms <= :old",
                    {"now": now, "old": now - strikes.window_ms},
                )
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
