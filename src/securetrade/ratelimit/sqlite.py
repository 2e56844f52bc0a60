"""The SQLite backend: processes on one host share windows through one file.

Each call is one ``BEGIN IMMEDIATE`` transaction, so SQLite's write lock serialises every
process that opens the file: expire what left each window, check every draw, log the call,
commit. Times are the host's monotonic clock in whole nanoseconds, which all processes of
one boot share, so every comparison is exact. A file written before a reboot (its times
lie ahead of the restarted clock) is emptied when opened. WAL mode without fsync per
commit: a power cut loses recent usage, which the venue's own counters (read back from its
headers) restore.

One table of events per log (a kind of cost in one scope), whatever the windows over it:
``ratelimit_window`` keeps each window's running total and the time up to which events
have left it (``edge``). An admission in flight is an event dated at its deadline
(admission + ``flight``) and tagged with a ticket; landing re-dates it to the landing time,
so a process that dies with requests in flight leaves nothing that outlives the deadline.
Units the venue reported for a window of ``span`` count only in windows that long or
longer.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from .. import _fork
from .._checks import function
from .._checks import path as checked_path
from .._checks import seconds as duration
from .._sqlite import retry_locked, wal
from .backend import Backend, Draw

__all__ = ["SQLiteBackend"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ratelimit_event (
        log TEXT NOT NULL, stamp INTEGER NOT NULL, cost INTEGER NOT NULL,
        span INTEGER NOT NULL, ticket INTEGER, granted INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ratelimit_event_at ON ratelimit_event (log, stamp, span, cost)",
    """CREATE INDEX IF NOT EXISTS ratelimit_event_flight ON ratelimit_event (ticket)
        WHERE ticket IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS ratelimit_window (
        log TEXT NOT NULL, span INTEGER NOT NULL, total INTEGER NOT NULL,
        edge INTEGER NOT NULL, PRIMARY KEY (log, span)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS ratelimit_log (
        log TEXT PRIMARY KEY, longest INTEGER NOT NULL, floor INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS ratelimit_pause (
        key TEXT PRIMARY KEY, until REAL NOT NULL, set_at REAL NOT NULL) WITHOUT ROWID""",
)

_NEVER = -(2**62)  # before any time the clock can give
_NS = 1_000_000_000

# Per log: (log, cost, ((span ns, ceiling), ...)).
_Logs = tuple[tuple[str, int, tuple[tuple[int, int], ...]], ...]
_Plan = tuple[str, _Logs, int]  # pause key, logs, flight ns


class _Admission(NamedTuple):
    """An admission in flight (its own type: the limiter checks it before :meth:`land`)."""

    ticket: int
    logs: tuple[tuple[str, int], ...]  # (log, cost) per log


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


class SQLiteBackend(Backend):
    """Windows in the SQLite file at ``path``, shared by every process that opens it."""

    shared = True
    admission_type = _Admission

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
    ) -> None:
        checked_path("RateLimiter.sqlite path", path)
        function("clock", clock)
        duration("timeout", timeout, above=0)
        self._clock = clock
        self._now: Callable[[], int] = (
            time.monotonic_ns if clock is time.monotonic else lambda: _ns(clock())
        )
        self._lock = threading.Lock()
        # Tickets name admissions in flight: unique ids, not secrets. A generator of its own,
        # so that a program seeding the global one cannot make two processes agree.
        self._tickets = random.Random()  # noqa: S311  # nosec B311
        self._db = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        wal(self._db, timeout=timeout)
        retry_locked(self._db, self._prepare, timeout)
        _fork.watch(self)  # a forked child refuses to use it

    _inherited = False  # set in a child forked while it was open

    def _after_fork(self) -> None:
        """In a child forked while this was open (see :mod:`securetrade._fork`): every call
        raises :class:`~securetrade.errors.InheritedAcrossFork` before touching the file,
        and the parent's SQLite connection is parked, never used or closed."""
        _fork.disown(self, "SQLite rate limiter")

    def _prepare(self) -> None:
        with self._transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            now = self._now()
            if db.execute(
                "SELECT 1 FROM ratelimit_event WHERE granted > ? "
                "UNION ALL SELECT 1 FROM ratelimit_window WHERE edge > ? LIMIT 1",
                (now, now),
            ).fetchone():  # written before a reboot: the clock it was dated by is gone
                db.execute("DELETE FROM ratelimit_event")
                db.execute("DELETE FROM ratelimit_window")
                db.execute("DELETE FROM ratelimit_log")

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

    def compile(self, pause_key: str, draws: Sequence[Draw], *, flight: float = 60.0) -> _Plan:
        logs: dict[str, tuple[int, list[tuple[int, int]]]] = {}
        for draw in draws:
            cost, windows = logs.get(draw.bucket, (0, []))
            windows.append((_ns(draw.seconds), draw.ceiling))
            logs[draw.bucket] = (max(cost, draw.cost), windows)
        compiled = tuple((log, cost, tuple(windows)) for log, (cost, windows) in logs.items())
        return pause_key, compiled, _ns(flight)

    def acquire_at(self, plan: _Plan) -> tuple[float, float]:
        pause_key, logs, _ = plan
        with self._transaction() as db:
            now = self._now()  # read inside the write lock: an entry is dated when admitted
            wait = self._check(db, pause_key, logs, now)
            if wait == 0:
                for log, cost, _ in logs:
                    self._add(db, log, now, cost, 0, None, now)
            return wait / _NS, now / _NS

    def admit(self, plan: _Plan) -> tuple[float, _Admission | None]:
        pause_key, logs, flight = plan
        with self._transaction() as db:
            now = self._now()
            wait = self._check(db, pause_key, logs, now)
            if wait > 0:
                return wait / _NS, None
            ticket = self._tickets.getrandbits(62)
            for log, cost, _ in logs:
                self._add(db, log, now + flight, cost, 0, ticket, now)
            return 0.0, _Admission(ticket, tuple((log, cost) for log, cost, _ in logs))

    def land(self, admission: _Admission, reports: Sequence[tuple[str, float, int]] = ()) -> None:
        ticket, logs = admission
        with self._transaction() as db:
            now = self._now()
            rows = {
                log: (rowid, int(stamp))
                for rowid, log, stamp in db.execute(
                    "SELECT rowid, log, stamp FROM ratelimit_event WHERE ticket = ?", (ticket,)
                )
            }
            if len(rows) == len(logs) and all(stamp > now for _, stamp in rows.values()):
                db.execute(  # before its deadline: every window still counts it, as it should
                    "UPDATE ratelimit_event SET stamp = ?, ticket = NULL WHERE ticket = ?",
                    (now, ticket),
                )
            else:
                for log, cost in logs:
                    self._land_late(db, log, cost, rows.get(log), now)
            self._reconcile(db, reports, now)

    def _land_late(
        self, db: sqlite3.Connection, log: str, cost: int, row: tuple[int, int] | None, now: int
    ) -> None:
        """Landed after its deadline: windows may have let it go (and the log may have
        dropped it). It counts again, from now, in each window that did."""
        if row is None:
            old = _NEVER
            db.execute(
                "INSERT INTO ratelimit_event (log, stamp, cost, span, ticket, granted) "
                "VALUES (?, ?, ?, 0, NULL, ?)",
                (log, now, cost, now),
            )
        else:
            old = row[1]
            db.execute(
                "UPDATE ratelimit_event SET stamp = ?, ticket = NULL WHERE rowid = ?", (now, row[0])
            )
        db.execute(
            "UPDATE ratelimit_window SET total = total + ? WHERE log = ? AND edge >= ?",
            (cost, log, old),
        )

    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        if reports:
            with self._transaction() as db:
                self._reconcile(db, reports, self._now())

    def _reconcile(
        self, db: sqlite3.Connection, reports: Sequence[tuple[str, float, int]], now: int
    ) -> None:
        for bucket, seconds, reported in reports:
            span = _ns(seconds)
            total = self._window(db, bucket, span, now)
            (flying,) = db.execute(  # in flight: the venue may not have counted them yet
                "SELECT COALESCE(SUM(cost), 0) FROM ratelimit_event WHERE log = ? AND stamp > ?",
                (bucket, now),
            ).fetchone()
            missing = reported - (total - int(flying))
            if missing > 0:
                self._add(db, bucket, now, missing, span, None, now)

    def pause(self, key: str, seconds: float) -> None:
        with self._transaction() as db:
            now = self._now() / _NS
            until = max(now + seconds, now + self._paused(db, key, now))
            db.execute(
                "INSERT INTO ratelimit_pause (key, until, set_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET until = excluded.until, set_at = excluded.set_at",
                (key, until, now),
            )

    def paused_for(self, key: str) -> float:
        with self._transaction() as db:
            return self._paused(db, key, self._now() / _NS)

    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        with self._transaction() as db:
            now = self._now()
            return [self._window(db, bucket, _ns(seconds), now) for bucket, seconds in buckets]

    def close(self) -> None:
        """Close the database; in a forked child, nothing (it is the parent's)."""
        if self._inherited:
            return
        with self._lock:
            self._db.close()

    # --- inside a transaction -----------------------------------------------------------------

    def _check(self, db: sqlite3.Connection, pause_key: str, logs: _Logs, now: int) -> int:
        """0 if every window of ``logs`` has room for its cost, else the wait (ns)."""
        paused = self._paused(db, pause_key, now / _NS)
        if paused > 0.0:
            return max(1, _ns(paused))
        wait = 0
        for log, cost, windows in logs:
            for span, ceiling in windows:
                excess = self._window(db, log, span, now) + cost - ceiling
                if excess > 0:
                    wait = max(wait, self._delay(db, log, span, now, excess))
            self._prune(db, log, now)
        return wait

    def _paused(self, db: sqlite3.Connection, key: str, now: float) -> float:
        row = db.execute(
            "SELECT until, set_at FROM ratelimit_pause WHERE key = ?", (key,)
        ).fetchone()
        if row is None or row[1] > now:  # none, or set before a reboot: the clock restarted
            return 0.0
        return max(0.0, float(row[0]) - now)

    def _window(self, db: sqlite3.Connection, log: str, span: int, now: int) -> int:
        """Expire the ``span`` window over ``log`` to ``now``; return what it holds.

        A window new to the log, or one whose events the log has dropped since it was
        last read (it belongs to a table no longer drawn on), is counted afresh.
        """
        row = db.execute(
            "SELECT w.total, w.edge, l.floor FROM ratelimit_log AS l "
            "LEFT JOIN ratelimit_window AS w ON w.log = l.log AND w.span = ? WHERE l.log = ?",
            (span, log),
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO ratelimit_log (log, longest, floor) VALUES (?, ?, ?)",
                (log, span, _NEVER),
            )
            row = (None, None, _NEVER)
        total, edge, floor = row
        cutoff = now - span  # an event has left the window when stamp <= cutoff
        if total is None or edge < floor:
            if total is None:
                db.execute(
                    "UPDATE ratelimit_log SET longest = MAX(longest, ?) WHERE log = ?", (span, log)
                )
            (counted,) = db.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM ratelimit_event "
                "WHERE log = ? AND stamp > ? AND span <= ?",
                (log, cutoff, span),
            ).fetchone()
            db.execute(
                "INSERT INTO ratelimit_window (log, span, total, edge) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (log, span) DO UPDATE "
                "SET total = excluded.total, edge = excluded.edge",
                (log, span, int(counted), cutoff),
            )
            return int(counted)
        total = int(total)
        if edge < cutoff:
            (freed,) = db.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM ratelimit_event "
                "WHERE log = ? AND stamp > ? AND stamp <= ? AND span <= ?",
                (log, edge, cutoff, span),
            ).fetchone()
            total -= int(freed)
            db.execute(
                "UPDATE ratelimit_window SET total = ?, edge = ? WHERE log = ? AND span = ?",
                (total, cutoff, log, span),
            )
        return total

    def _prune(self, db: sqlite3.Connection, log: str, now: int) -> None:
        """Drop events that have left the longest window over ``log``."""
        row = db.execute("SELECT longest FROM ratelimit_log WHERE log = ?", (log,)).fetchone()
        if row is None:
            return
        cutoff = now - int(row[0])
        if db.execute(
            "DELETE FROM ratelimit_event WHERE log = ? AND stamp <= ?", (log, cutoff)
        ).rowcount:
            db.execute("UPDATE ratelimit_log SET floor = ? WHERE log = ?", (cutoff, log))

    def _delay(self, db: sqlite3.Connection, log: str, span: int, now: int, excess: int) -> int:
        """Nanoseconds until ``excess`` units have left the window; units in flight leave
        one window after they land, which is now at the earliest."""
        freed = 0
        for stamp, cost in db.execute(
            "SELECT stamp, cost FROM ratelimit_event WHERE log = ? AND stamp > ? AND span <= ? "
            "ORDER BY stamp",
            (log, now - span, span),
        ):
            freed += cost
            if freed >= excess:
                return min(int(stamp), now) + span - now
        return span

    def _add(
        self,
        db: sqlite3.Connection,
        log: str,
        stamp: int,
        cost: int,
        span: int,
        ticket: int | None,
        now: int,
    ) -> None:
        """Log ``cost`` units dated ``stamp``; every window at least ``span`` long counts them."""
        db.execute(
            "INSERT INTO ratelimit_event (log, stamp, cost, span, ticket, granted) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (log, stamp, cost, span, ticket, now),
        )
        db.execute(
            "UPDATE ratelimit_window SET total = total + ? WHERE log = ? AND span >= ?",
            (cost, log, span),
        )
