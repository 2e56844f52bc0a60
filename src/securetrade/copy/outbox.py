"""The embedded engine's durable outbox: every leader event, and each follower's outcome.

An event is written before its fan-out starts and marked done when every follower has an
outcome; each follower's outcome is written as it is known. A process that dies mid
fan-out finds the event not done when it starts again, and resumes it: followers with an
outcome are not touched again, the others are planned and placed again under the same
idempotency keys, so the journal returns any order that already went out instead of
sending a second one. SQLite in WAL mode, like the order journal.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .. import _fork
from .._checks import instance
from .._sqlite import retry_locked, wal
from ..errors import InvalidRequest, JournalError
from ..models import Side
from ..privacy.tags import Category, Personal, tagged
from .model import LeaderEvent, Movement

__all__ = ["Outbox", "Outcome"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS copy_events (
    event_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    received_at REAL NOT NULL,
    done_at REAL
)""",
    """CREATE TABLE IF NOT EXISTS copy_outcomes (
    event_id TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    leg INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    client_order_id TEXT,
    order_id TEXT,
    latency_ms REAL,
    at REAL NOT NULL,
    PRIMARY KEY (event_id, follower_id, leg)
)""",
    "CREATE INDEX IF NOT EXISTS copy_outcomes_follower ON copy_outcomes(follower_id, at)",
    # A follower's manual close of a copied position: reconciliation never reopens it while
    # ``active``; ``written_off`` is the copied quantity the follower closed by hand, taken
    # off what its copies count for from then on (a decimal string).
    """CREATE TABLE IF NOT EXISTS copy_overrides (
    follower_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    reason TEXT NOT NULL,
    written_off TEXT NOT NULL,
    active INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (follower_id, symbol)
)""",
)


@tagged
@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one follower's copy of one event (one leg)."""

    event_id: str
    follower_id: str = field(metadata={"pii": Personal(Category.FOLLOWER_ID, subject=True)})
    leg: int
    status: str  # placed, skipped, failed, quarantined
    reason: str = ""
    client_order_id: str | None = None
    order_id: str | None = None
    latency_ms: float | None = None


class Outbox:
    """Leader events and follower outcomes in one SQLite file (``":memory:"`` for tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            wal(self._db, synchronous="FULL")
            retry_locked(self._db, lambda: [self._db.execute(s) for s in _SCHEMA], 30.0)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"copy outbox {self.path} cannot be used: {exc}") from exc
        self._lock = threading.Lock()
        _fork.watch(self)  # a forked child refuses to use it

    _inherited = False  # set in a child forked while it was open

    def _after_fork(self) -> None:
        """In a child forked while this was open (see :mod:`securetrade._fork`): every call
        raises :class:`~securetrade.errors.InheritedAcrossFork` before touching the file,
        and the parent's SQLite connection is parked, never used or closed."""
        _fork.disown(self, "copy Outbox")

    def receive(self, event: LeaderEvent) -> bool:
        """Record ``event`` before its fan-out; False when it was already received."""
        instance("event", event, LeaderEvent, optional=False)
        body = json.dumps(_event_body(event), separators=(",", ":"))
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO copy_events (event_id, body, received_at) VALUES (?, ?, ?)",
                (event.id, body, time.time()),
            )
        return cursor.rowcount == 1

    def outcomes(self, event_id: str) -> dict[tuple[str, int], Outcome]:
        """The outcomes recorded for ``event_id``, by (follower id, leg)."""
        _id("event_id", event_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, follower_id, leg, status, reason, client_order_id, order_id, "
                "latency_ms FROM copy_outcomes WHERE event_id = ?",
                (event_id,),
            ).fetchall()
        return {(r[1], r[2]): Outcome(*r) for r in rows}

    def record(self, outcomes: list[Outcome]) -> None:
        """Write outcomes (the first one per follower and leg stays: a resumed fan-out
        never rewrites what an earlier run concluded)."""
        if isinstance(outcomes, (str, bytes)) or not isinstance(outcomes, Iterable):
            raise InvalidRequest("outcomes must be a list of Outcome")
        outcomes = list(outcomes)
        if not all(isinstance(o, Outcome) for o in outcomes):
            raise InvalidRequest("outcomes must be a list of Outcome")
        now = time.time()
        with self._lock, self._db:  # one transaction: one sync for a whole fan-out
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO copy_outcomes (event_id, follower_id, leg, status, "
                "reason, client_order_id, order_id, latency_ms, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (  # one row at a time: a fan-out's thousand rows are never all held at once
                    (o.event_id, o.follower_id, o.leg, o.status, o.reason, o.client_order_id,
                     o.order_id, o.latency_ms, now)
                    for o in outcomes
                ),
            )  # fmt: skip

    def done(self, event_id: str) -> None:
        """Mark ``event_id`` finished: every follower has a final outcome, nothing to resume."""
        _id("event_id", event_id)
        with self._lock:
            self._db.execute(
                "UPDATE copy_events SET done_at = ? WHERE event_id = ?", (time.time(), event_id)
            )

    def pending(self) -> list[LeaderEvent]:
        """Events received and not done: a fan-out a crash interrupted, to resume."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM copy_events WHERE done_at IS NULL ORDER BY received_at"
            ).fetchall()
        return [_event_of(json.loads(row[0])) for row in rows]

    def history(self, follower_id: str) -> list[Outcome]:
        """Every outcome of one follower, oldest first."""
        _id("follower_id", follower_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, follower_id, leg, status, reason, client_order_id, order_id, "
                "latency_ms FROM copy_outcomes WHERE follower_id = ? ORDER BY at",
                (follower_id,),
            ).fetchall()
        return [Outcome(*r) for r in rows]

    def override(self, follower_id: str, symbol: str, reason: str, closed: Decimal) -> bool:
        """Record that ``follower_id`` closed ``closed`` of its copies in ``symbol`` (its
        venue's symbol) by hand: the override is active until cleared, and ``closed`` is
        written off its copies for good. False when an active one was already on record."""
        _id("follower_id", follower_id)
        _id("symbol", symbol)
        _id("reason", reason)
        if not isinstance(closed, Decimal) or not closed.is_finite():
            raise InvalidRequest("closed must be a finite Decimal (the quantity closed by hand)")
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute(
                "SELECT written_off, active FROM copy_overrides WHERE follower_id = ? "
                "AND symbol = ?",
                (follower_id, symbol),
            ).fetchone()
            before = Decimal(row[0]) if row else Decimal(0)
            self._db.execute(
                "INSERT OR REPLACE INTO copy_overrides (follower_id, symbol, reason, "
                "written_off, active, at) VALUES (?, ?, ?, ?, 1, ?)",
                (follower_id, symbol, reason, str(before + closed), time.time()),
            )
        return not (row and row[1])

    def clear_override(self, follower_id: str, symbol: str) -> None:
        """End an override (the leader is flat there too); what it wrote off stays off."""
        _id("follower_id", follower_id)
        _id("symbol", symbol)
        with self._lock:
            self._db.execute(
                "UPDATE copy_overrides SET active = 0, at = ? WHERE follower_id = ? AND symbol = ?",
                (time.time(), follower_id, symbol),
            )

    def overrides(self) -> dict[tuple[str, str], tuple[bool, Decimal]]:
        """(follower id, symbol) -> (active, quantity written off), for every one on record."""
        with self._lock:
            rows = self._db.execute(
                "SELECT follower_id, symbol, active, written_off FROM copy_overrides"
            ).fetchall()
        return {(r[0], r[1]): (bool(r[2]), Decimal(r[3])) for r in rows}

    def close(self) -> None:
        """Close the outbox database; received events and outcomes stay for a later resume
        (in a forked child, nothing: the connection is the parent's)."""
        if self._inherited:
            return
        with self._lock:
            self._db.close()


def _event_body(event: LeaderEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "symbol": event.symbol,
        "side": event.side.value,
        "quantity": str(event.quantity),
        "price": str(event.price),
        "at_ms": event.at_ms,
        "movement": event.movement.value,
        "close_fraction": str(event.close_fraction),
        "leader_equity": None if event.leader_equity is None else str(event.leader_equity),
        "venue": event.venue,
    }


def _event_of(body: dict[str, object]) -> LeaderEvent:
    equity = body["leader_equity"]
    return LeaderEvent(
        id=str(body["id"]),
        symbol=str(body["symbol"]),
        side=Side(body["side"]),
        quantity=Decimal(str(body["quantity"])),
        price=Decimal(str(body["price"])),
        at_ms=int(str(body["at_ms"])),
        movement=Movement(body["movement"]),
        close_fraction=Decimal(str(body["close_fraction"])),
        leader_equity=None if equity is None else Decimal(str(equity)),
        venue=str(body["venue"]),
    )


def _id(name: str, value: object) -> str:
    """An id, symbol or reason to store or look up by: text."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text (a str), not {type(value).__name__}")
    return value
