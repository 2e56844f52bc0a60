"""The SQLite backend: processes on one host share windows through one file.

Each acquire is one ``BEGIN IMMEDIATE`` transaction, so SQLite's write lock serialises
every process that opens the file: expire what left the window, check every draw, insert
one log row per draw, commit. Times come from the host's monotonic clock, which all
processes of one boot share; rows dated in the future can only be from before a reboot
and are dropped. WAL mode without fsync per commit: a power cut loses recent usage, which
the venue's own counters (read back from its headers) restore.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .backend import Backend, Draw

__all__ = ["SQLiteBackend"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ratelimit_entry (
        bucket TEXT NOT NULL, stamp REAL NOT NULL, cost INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ratelimit_entry_at ON ratelimit_entry (bucket, stamp)",
    """CREATE TABLE IF NOT EXISTS ratelimit_total (
        bucket TEXT PRIMARY KEY, total INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS ratelimit_pause (
        key TEXT PRIMARY KEY, until REAL NOT NULL, set_at REAL NOT NULL) WITHOUT ROWID""",
)

_Plan = tuple[str, tuple[Draw, ...]]


class SQLiteBackend(Backend):
    """Windows in the SQLite file at ``path``, shared by every process that opens it."""

    shared = True

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def compile(self, pause_key: str, draws: Sequence[Draw]) -> _Plan:
        return pause_key, tuple(draws)

    def acquire_at(self, plan: _Plan) -> tuple[float, float]:
        pause_key, draws = plan
        with self._transaction() as db:
            now = self._clock()  # read inside the write lock: an entry is dated when admitted
            paused = self._paused(db, pause_key, now)
            if paused > 0.0:
                return paused, now
            wait = 0.0
            for bucket, seconds, ceiling, cost in draws:
                excess = self._expire(db, bucket, seconds, now) + cost - ceiling
                if excess > 0:
                    wait = max(wait, self._delay(db, bucket, seconds, now, excess))
            if wait > 0.0:
                return wait, now
            for bucket, _, _, cost in draws:
                self._add(db, bucket, now, cost)
            return 0.0, now

    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        with self._transaction() as db:
            now = self._clock()
            for bucket, seconds, reported in reports:
                missing = reported - self._expire(db, bucket, seconds, now)
                if missing > 0:
                    self._add(db, bucket, now, missing)

    def pause(self, key: str, seconds: float) -> None:
        with self._transaction() as db:
            now = self._clock()
            until = max(now + seconds, now + self._paused(db, key, now))
            db.execute(
                "INSERT INTO ratelimit_pause (key, until, set_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET until = excluded.until, set_at = excluded.set_at",
                (key, until, now),
            )

    def paused_for(self, key: str) -> float:
        with self._transaction() as db:
            return self._paused(db, key, self._clock())

    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        with self._transaction() as db:
            now = self._clock()
            return [self._expire(db, bucket, seconds, now) for bucket, seconds in buckets]

    def seed(self, target: str, source: str, seconds: float) -> None:
        with self._transaction() as db:
            now = self._clock()
            if db.execute("SELECT 1 FROM ratelimit_total WHERE bucket = ?", (target,)).fetchone():
                return
            rows = db.execute(
                "SELECT stamp, cost FROM ratelimit_entry WHERE bucket = ? AND stamp <= ?",
                (source, now),
            ).fetchall()
            kept = [(target, stamp, cost) for stamp, cost in rows if stamp + seconds > now]
            db.executemany(
                "INSERT INTO ratelimit_entry (bucket, stamp, cost) VALUES (?, ?, ?)", kept
            )
            db.execute(
                "INSERT INTO ratelimit_total (bucket, total) VALUES (?, ?)",
                (target, sum(cost for _, _, cost in kept)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- inside a transaction -----------------------------------------------------------------

    def _paused(self, db: sqlite3.Connection, key: str, now: float) -> float:
        row = db.execute(
            "SELECT until, set_at FROM ratelimit_pause WHERE key = ?", (key,)
        ).fetchone()
        if row is None or row[1] > now:  # none, or set before a reboot: the clock restarted
            return 0.0
        return max(0.0, float(row[0]) - now)

    def _expire(self, db: sqlite3.Connection, bucket: str, seconds: float, now: float) -> int:
        """Drop entries that left the window; return what is left in it."""
        # Candidates by index, then the exact test (stamp + seconds <= now) in Python, the
        # same float arithmetic as the wait computed in _delay.
        rows = db.execute(
            "SELECT stamp, cost FROM ratelimit_entry WHERE bucket = ? "
            "AND (stamp <= ? OR stamp > ?) ORDER BY stamp",
            (bucket, now - seconds + 1e-6, now),
        ).fetchall()
        freed, last = 0, None
        stale = False
        for stamp, cost in rows:
            if stamp > now:
                stale = True
                freed += cost
            elif stamp + seconds <= now:
                freed += cost
                last = stamp
        if last is not None:
            db.execute(
                "DELETE FROM ratelimit_entry WHERE bucket = ? AND stamp <= ?", (bucket, last)
            )
        if stale:
            db.execute("DELETE FROM ratelimit_entry WHERE bucket = ? AND stamp > ?", (bucket, now))
        row = db.execute("SELECT total FROM ratelimit_total WHERE bucket = ?", (bucket,)).fetchone()
        total = 0 if row is None else int(row[0])
        if freed:
            total -= freed
            db.execute("UPDATE ratelimit_total SET total = ? WHERE bucket = ?", (total, bucket))
        return total

    def _delay(
        self, db: sqlite3.Connection, bucket: str, seconds: float, now: float, excess: int
    ) -> float:
        freed = 0
        for stamp, cost in db.execute(
            "SELECT stamp, cost FROM ratelimit_entry WHERE bucket = ? ORDER BY stamp", (bucket,)
        ):
            freed += cost
            if freed >= excess:
                return float(stamp) + seconds - now
        return seconds

    def _add(self, db: sqlite3.Connection, bucket: str, now: float, cost: int) -> None:
        db.execute(
            "INSERT INTO ratelimit_entry (bucket, stamp, cost) VALUES (?, ?, ?)",
            (bucket, now, cost),
        )
        db.execute(
            "INSERT INTO ratelimit_total (bucket, total) VALUES (?, ?) "
            "ON CONFLICT (bucket) DO UPDATE SET total = total + excluded.total",
            (bucket, cost),
        )
