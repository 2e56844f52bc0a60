"""Opening a shared SQLite file in WAL mode, the one way every store here does it.

Processes that open a new file at the same moment can meet SQLite's deadlock guard, which
answers "database is locked" at once instead of waiting for the busy timeout (switching
to WAL needs an exclusive lock). Such an answer is tried again, with jitter, for as long
as the busy timeout would have waited.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ._checks import path
from .errors import InvalidRequest

__all__ = ["busy", "connect", "retry_locked", "wal"]

T = TypeVar("T")


def connect(file: Any, *, what: str, timeout: float) -> sqlite3.Connection:
    """Open the SQLite file ``file`` (creating its directory) for a store named ``what``;
    a path that cannot hold one is refused with :class:`~securetrade.errors.InvalidRequest`
    saying so, never a raw ``sqlite3`` or ``OSError``."""
    name = os.fspath(path(f"{what} path", file))
    try:
        if name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(name, isolation_level=None, check_same_thread=False, timeout=timeout)
    except (OSError, sqlite3.Error) as exc:
        raise InvalidRequest(
            f"{what} {name}: cannot open a database there ({exc}); pass a writable file path"
        ) from None


def busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds a lock."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def retry_locked(db: sqlite3.Connection, work: Callable[[], T], timeout: float) -> T:
    """Run ``work`` (statements on ``db``), again while SQLite answers "locked" at once,
    for at most ``timeout`` seconds; a transaction left open by a failed try is rolled
    back first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not busy(exc) or time.monotonic() > deadline:
                raise
            if db.in_transaction:
                db.execute("ROLLBACK")
            time.sleep(random.uniform(0.002, 0.02))  # noqa: S311  # nosec B311 - jitter


def wal(db: sqlite3.Connection, *, synchronous: str = "NORMAL", timeout: float = 30.0) -> None:
    """Put ``db`` in WAL mode with ``synchronous`` (FULL, NORMAL...), riding out the
    immediate "locked" of processes opening the same new file together."""

    def switch() -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")

    retry_locked(db, switch, timeout)
