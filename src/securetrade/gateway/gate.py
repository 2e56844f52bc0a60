"""One admission per request: lock-outs, store epoch, nonce and rate limits in one atomic step.

The gateway used to spend ~18 SQLite statements per request (the replay store, then the
outbound limiter's admission for two windows, each its own transaction). Inbound counting
needs none of the outbound machinery (in-flight deadlines, landing, reconciling with a
venue's headers), so a gate does it all at once: one ``BEGIN IMMEDIATE`` transaction of
five statements on SQLite, one Lua script on Redis, one lock in memory. Same order and same
answers on all three:

1. the request is older than the store's epoch (a store that lost its memory) .. restarted
2. the caller's address or key id is locked out (shared by every process) ..... locked_out
3. the nonce is already there and live ......................................... replayed
4. a bucket has no room (GCRA) ............................................. rate_limited
5. else the nonce is recorded and every bucket spent, in the same atomic step

On Redis, before all of these, the store must not be behind this process's watermark
(restored from an older snapshot) ................................... rolled_back
(see :mod:`.redis_gate`).

A refused request records nothing: a replay spends no budget, and a request refused for
its rate can be sent again once its wait is over (its nonce is still unused).

Rate limits are GCRA (the generic cell rate algorithm): a bucket keeps one number, the
theoretical arrival time ``tat``; a call of cost ``c`` on ``Limit(n, w)`` moves it to
``max(tat, now) + c*w/n`` and is admitted if that lies at most ``w`` ahead of now. A full
bucket admits ``n`` calls at once, then one every ``w/n``: exact across processes because
the read and the write happen under the store's write lock (or inside the script).
"""

from __future__ import annotations

import functools
import heapq
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from .. import _fork
from .._sqlite import retry_locked, wal
from ..errors import InboundRejected, InvalidRequest

__all__ = ["Bucket", "Gate", "MemoryGate", "SqliteGate", "Verdict", "boot_id"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rate window: ``requests`` per ``seconds``, this call spending ``cost``."""

    name: str
    requests: int
    seconds: float
    cost: int
    #: (step, width) in nanoseconds, worked out once: the SQLite gate's hot path reads them.
    ns: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ns", (self.step(_NS), self.width(_NS)))

    def step(self, unit: int) -> int:
        """What one call adds to the bucket's tat, in clock units (``unit`` per second);
        never 0, so no bucket is unlimited by rounding."""
        return max(1, round(self.seconds * unit) * self.cost // self.requests)

    def width(self, unit: int) -> int:
        return round(self.seconds * unit)


class Verdict(NamedTuple):
    """``outcome`` is ok, locked_out, restarted, rolled_back (Redis), replayed or
    rate_limited; ``wait`` the seconds to wait before trying again; ``remaining`` calls
    left in the first bucket."""

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
        remaining: bool = False,
    ) -> Verdict:
        """Decide on one authenticated request (the steps of the module docstring);
        ``remaining`` asks for the first bucket's room (one more read on SQLite)."""
        ...

    def failed(self, counts: Mapping[str, int], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        """Count ``counts[name]`` authentication failures against each name; per name, the
        seconds it is now locked for (0 if not) and whether it was locked already before."""
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
) -> tuple[Verdict, list[tuple[str, int]]]:
    """The new tat of each bucket, or the refusal (the longest wait) if one has no room."""
    updates = []
    wait = -1
    for bucket in buckets:
        tat = max(tats.get(bucket.name, now), now) + bucket.step(unit)
        if tat - now > bucket.width(unit):
            wait = max(wait, tat - now - bucket.width(unit))
        updates.append((bucket.name, tat))
    if wait >= 0:
        return Verdict("rate_limited", wait / unit), []
    remaining = _remaining(buckets[0], updates[0][1], now, unit) if buckets else None
    return Verdict("ok", 0.0, remaining), updates


class MemoryGate:
    """This process only (tests, one-process apps, and the ``fail_open`` fallback)."""

    shared = False

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise InvalidRequest("max_entries must be positive")
        self.max_entries = max_entries
        self._nonces: dict[str, int] = {}  # token -> expiry (ms)
        self._expiry: list[tuple[int, str]] = []  # a heap of (expiry, token)
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
        remaining: bool = False,
    ) -> Verdict:
        now = time.time_ns()
        now_ms = now // 1_000_000
        with self._lock:
            until = max((self._strikes.get(n, (0, 0, 0))[2] for n in locks), default=0)
            if until > now_ms:
                return Verdict("locked_out", (until - now_ms) / 1000)
            heap, nonces = self._expiry, self._nonces
            while heap and heap[0][0] <= now_ms:
                stamp, old = heapq.heappop(heap)
                if nonces.get(old) == stamp:
                    del nonces[old]
            if token in nonces:
                return Verdict("replayed")
            verdict, updates = _gcra(buckets, self._tats, now, _NS)
            if verdict.outcome != "ok":
                return verdict  # a refused request records nothing
            if len(nonces) >= self.max_entries:
                raise InboundRejected(
                    "the gateway's memory store is full: refusing new messages until ids "
                    "expire (or give the gateway SharedState.sqlite or .redis)",
                    reason="capacity",
                )
            nonces[token] = expires_ms
            heapq.heappush(heap, (expires_ms, token))
            for name, tat in updates:
                self._tats[name] = tat
            if len(self._tats) > 100_000:  # drop buckets that are empty again
                for name in [n for n, t in self._tats.items() if t <= now]:
                    del self._tats[name]
            return verdict

    def failed(self, counts: Mapping[str, int], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        now = time.time_ns() // 1_000_000
        out = {}
        with self._lock:
            for name, n in counts.items():
                count, first, until = self._strikes.get(name, (0, now, 0))
                if until > now:
                    out[name] = ((until - now) / 1000, True)
                    continue
                if first <= now - strikes.window_ms or until:
                    count, first = 0, now
                count += n
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
    # Nonces ("n:" + token, value = expiry in ms) and rate buckets ("r:" + name, value = tat
    # in ns) share one table, so one upsert records both and a commit writes few pages.
    # ``step`` and ``width`` travel with a bucket's row so the upsert can judge it (NULL for
    # a nonce). No index on the expiry: the purge every 1,000 writes scans the table.
    """CREATE TABLE IF NOT EXISTS st_gate (name TEXT PRIMARY KEY, value INTEGER NOT NULL,
       step INTEGER, width INTEGER) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS st_gate_strike (name TEXT PRIMARY KEY, count INTEGER NOT NULL,
       first_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS st_gate_epoch
       (one INTEGER PRIMARY KEY CHECK (one = 1), boot TEXT NOT NULL, start_ms INTEGER NOT NULL)""",
)
# A strike resets when its window has passed or its lock has ended; a lock stays as it is.
_RESET = "(first_ms <= :now - :window OR (until_ms > 0 AND until_ms <= :now))"
_STRIKE = f"""INSERT INTO st_gate_strike (name, count, first_ms, until_ms)
    VALUES (:name, :n, :now, CASE WHEN :n >= :threshold THEN :now + :duration ELSE 0 END)
    ON CONFLICT (name) DO UPDATE SET
      count = CASE WHEN until_ms > :now THEN count + :n WHEN {_RESET} THEN :n
              ELSE count + :n END,
      first_ms = CASE WHEN until_ms > :now THEN first_ms WHEN {_RESET} THEN :now
                 ELSE first_ms END,
      until_ms = CASE WHEN until_ms > :now THEN until_ms
                 WHEN (CASE WHEN {_RESET} THEN :n ELSE count + :n END) >= :threshold
                 THEN :now + :duration ELSE 0 END
    RETURNING count, until_ms"""  # noqa: S608 - a constant


@functools.cache
def _upsert(locks: int, buckets: int) -> str:
    """One admission as one statement, for that many locks and buckets (the same text each
    time, so sqlite3's statement cache keeps it prepared). Parameters: ?1 now in ms, ?2 now
    in ns, then the lock names, then (name, value, step, width) per row, the nonce first.

    No row is written while a lock is on (the WHERE). A live nonce or a full bucket makes
    its row's new value NULL, which its NOT NULL column refuses: the statement aborts and
    SQLite undoes every row it wrote. So one statement, in its own implicit transaction,
    is all or nothing; no BEGIN, COMMIT or RETURNING (whose temporary table costs more than
    the rest of the statement)."""
    # One EXISTS per lock name, not ``name IN (...)``: an IN list of parameters makes SQLite
    # build a temporary b-tree on every run (about a third of the statement's cost).
    unlocked = " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM st_gate_strike WHERE name = ?{3 + i} AND until_ms > ?1)"  # noqa: S608
        for i in range(locks)
    )
    first = 3 + locks
    rows = ",".join(
        f"(?{first + 4 * i}, ?{first + 4 * i + 1}, ?{first + 4 * i + 2}, ?{first + 4 * i + 3})"
        for i in range(1 + buckets)
    )
    return (
        "INSERT INTO st_gate (name, value, step, width) "  # noqa: S608 - only numbered ?
        f"SELECT * FROM (VALUES {rows}) WHERE {unlocked or 'true'} "
        "ON CONFLICT (name) DO UPDATE SET value = CASE WHEN excluded.step IS NULL "
        "THEN CASE WHEN value <= ?1 THEN excluded.value END "
        "ELSE CASE WHEN max(value, ?2) + excluded.step - ?2 <= excluded.width "
        "THEN max(value, ?2) + excluded.step END END"
    )


class SqliteGate:
    """Processes on one host: one SQLite file in WAL mode; each admission is one upsert
    statement (the nonce and every bucket, unless a lock is on) that writes every row or
    none, under SQLite's write lock: exact across processes, and a refused request records
    nothing.

    The epoch: the file records the boot it was last opened under. Opened after a reboot
    (a power cut may have lost the last commits, nonces among them), it starts a new epoch
    now, and requests signed before it are refused until they are stale.
    """

    shared = True
    _PURGE_EVERY = 1000

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 2.0,
    ) -> None:
        self._path = os.fspath(path)
        self._timeout = timeout
        self._connect()
        self._lock = threading.Lock()
        self._writes = 0
        self._reopen = False  # a forked child's: open its own connection at the next call
        self.epoch_ms = retry_locked(self._db, self._open, 10.0)
        _fork.watch(self)

    def _connect(self) -> None:
        self._db = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=self._timeout
        )
        # Small pages for a new file (an existing one keeps its own): each admission writes
        # two pages to the WAL (the nonce's and the buckets'), and a 1 KiB page costs the
        # kernel and SQLite's checksums a quarter of what a 4 KiB one does.
        self._db.execute("PRAGMA page_size = 1024")
        wal(self._db, timeout=10.0)
        self._cursor = self._db.cursor()  # one for the admissions: no cursor made per request

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking server's worker, see :mod:`securetrade._fork`):
        the parent's connection is parked, never used or closed here, and the child opens
        its own to the same file at its first call, so nonces, buckets and lock-outs stay
        shared with every other process through the file. A lock of its own, too (the
        parent's may have been held by a thread that does not exist here)."""
        self._lock = threading.Lock()
        if self._path != ":memory:":  # one in memory is this process's copy, files none
            _fork.park(self._db, self._cursor)
            self._reopen = True

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
        remaining: bool = False,
    ) -> Verdict:
        # A future-dated request accepted just before the epoch began may carry a stamp up
        # to ahead_ms past it: refuse up to there.
        if stamp_ms <= self.epoch_ms + ahead_ms:
            return Verdict("restarted", (self.epoch_ms + ahead_ms - stamp_ms) / 1000)
        statement = _upsert(len(locks), len(buckets))
        nonce = "n:" + token
        params: list[object] = [0, 0, *locks, nonce, expires_ms, None, None]
        for bucket in buckets:
            params += ("r:" + bucket.name, 0, *bucket.ns)
        with self._lock:
            if self._reopen:
                self._reconnect()
            for _ in range(3):
                verdict = self._decide(statement, params, locks, nonce, buckets, remaining)
                if verdict is not None:
                    return verdict
        raise sqlite3.OperationalError("the gate could neither admit nor refuse")

    def _decide(
        self,
        statement: str,
        params: list[object],
        locks: Sequence[str],
        nonce: str,
        buckets: Sequence[Bucket],
        remaining: bool,
    ) -> Verdict | None:
        """The upsert; if it wrote nothing, why not, read in one snapshot (None in the rare
        case that the state changed in between: try again)."""
        db = self._db
        now = time.time_ns()
        now_ms = now // 1_000_000
        params[0], params[1] = now_ms, now
        at = len(locks) + 7
        for bucket in buckets:  # a new bucket starts full
            params[at] = now + bucket.ns[0]
            at += 4
        try:
            written = self._cursor.execute(statement, params).rowcount
        except sqlite3.IntegrityError:  # a row was refused: the statement wrote nothing
            written = 0
        if written == 1 + len(buckets):
            left = None
            if remaining and buckets:  # one more read, only when asked
                (tat,) = db.execute(
                    "SELECT value FROM st_gate WHERE name = ?", ("r:" + buckets[0].name,)
                ).fetchone()
                left = _remaining(buckets[0], tat, now, _NS)
            self._writes += 1
            if self._writes % self._PURGE_EVERY == 0:
                db.execute("DELETE FROM st_gate WHERE step IS NULL AND value <= ?", (now_ms,))
            return Verdict("ok", 0.0, left)
        db.execute("BEGIN")
        try:
            return self._why(locks, nonce, buckets, now)
        finally:
            db.execute("ROLLBACK")

    def _why(
        self, locks: Sequence[str], nonce: str, buckets: Sequence[Bucket], now: int
    ) -> Verdict | None:
        """Why the upsert would leave rows out, judged as it judges them."""
        now_ms = now // 1_000_000
        db = self._db
        marks = ",".join("?" * len(locks)) or "NULL"
        (until,) = db.execute(
            f"SELECT max(until_ms) FROM st_gate_strike WHERE name IN ({marks})",  # noqa: S608
            tuple(locks),
        ).fetchone()
        if until is not None and until > now_ms:
            return Verdict("locked_out", (until - now_ms) / 1000)
        row = db.execute("SELECT value FROM st_gate WHERE name = ?", (nonce,)).fetchone()
        if row is not None and row[0] > now_ms:
            return Verdict("replayed")
        wait = -1
        for bucket in buckets:
            row = db.execute(
                "SELECT value FROM st_gate WHERE name = ?", ("r:" + bucket.name,)
            ).fetchone()
            step, width = bucket.ns
            tat = max(row[0] if row else now, now) + step
            if tat - now > width:
                wait = max(wait, tat - now - width)
        return Verdict("rate_limited", wait / _NS) if wait >= 0 else None

    def failed(self, counts: Mapping[str, int], strikes: Strikes) -> dict[str, tuple[float, bool]]:
        out = {}
        with self._lock:
            if self._reopen:
                self._reconnect()
            now = time.time_ns() // 1_000_000
            params = {
                "now": now,
                "window": strikes.window_ms,
                "duration": strikes.duration_ms,
                "threshold": strikes.threshold,
            }
            for name, n in counts.items():  # each statement is its own atomic transaction
                row = {**params, "name": name, "n": n}
                count, until = self._db.execute(_STRIKE, row).fetchone()
                locked = until > now
                out[name] = (
                    (until - now) / 1000 if locked else 0.0,
                    locked and count - n >= strikes.threshold,  # it was locked before these
                )
            self._writes += 1
            if self._writes % self._PURGE_EVERY == 0:
                self._db.execute(
                    "DELETE FROM st_gate_strike WHERE until_ms <= :now AND first_ms <= :old",
                    {"now": now, "old": now - strikes.window_ms},
                )
        return out

    def _reconnect(self) -> None:
        """A forked child's own connection (under the lock); the epoch is the file's, read
        by the parent under this same boot."""
        self._connect()
        self._reopen = False

    def close(self) -> None:
        with self._lock:
            if not self._reopen:  # a child that never opened its own: the parent's stays
                self._db.close()
