"""The operational files that hold a person's traces, and how each forgets them.

Each store is a SQLite file the SDK wrote: the copy engine's outbox (follower ids and their
client order ids), the order journal (intents, fills and tombstones of those orders) and
the gateway's replay store (hashed nonces, no identifiers). Deletion runs with
``secure_delete`` on and ends with a WAL checkpoint to zero bytes and a ``VACUUM``, so the
bytes are not left in free pages or the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .._sqlite import retry_locked
from ..core.states import PURGEABLE
from ..errors import InvalidRequest
from .vault import compact

__all__ = ["CopyOutboxFile", "JournalFile", "ReplayFile"]

T = TypeVar("T")

# The journal's finished states, as stored.
_FINISHED = tuple(state.value for state in PURGEABLE)


def _run(path: str | Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one write transaction on ``path``, then compaction."""
    if not Path(path).is_file():
        raise InvalidRequest(f"{path}: no such file")
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    try:
        db.execute("PRAGMA secure_delete=ON")

        def transaction() -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        try:
            result = retry_locked(db, transaction, 30.0)
            compact(db)
        except sqlite3.DatabaseError as exc:
            raise InvalidRequest(f"{path}: cannot be changed ({exc})") from None
        return result
    finally:
        db.close()


class CopyOutboxFile:
    """The copy engine's outbox: one row per follower outcome."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def order_ids(self, follower_id: str) -> list[str]:
        """The client order ids of the follower's copies (their journal rows)."""
        return [
            str(row["client_order_id"])
            for row in self.history(follower_id)
            if row["client_order_id"] is not None
        ]

    def forget(self, follower_id: str) -> int:
        """Delete the follower's outcomes; returns how many."""

        def work(db: sqlite3.Connection) -> int:
            return int(
                db.execute(
                    "DELETE FROM copy_outcomes WHERE follower_id = ?", (follower_id,)
                ).rowcount
            )

        return _run(self.path, work)

    def history(self, follower_id: str) -> list[dict[str, object]]:
        """The follower's outcomes as rows (for an export)."""
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            cursor = db.execute(
                "SELECT event_id, leg, status, reason, client_order_id, order_id, at "
                "FROM copy_outcomes WHERE follower_id = ? ORDER BY at",
                (follower_id,),
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        except sqlite3.DatabaseError as exc:
            raise InvalidRequest(f"{self.path}: not a copy outbox ({exc})") from None
        finally:
            db.close()

    def sweep(self, now: float, seconds: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            gone = db.execute("DELETE FROM copy_outcomes WHERE at < ?", (now - seconds,)).rowcount
            db.execute(
                "DELETE FROM copy_events WHERE done_at IS NOT NULL AND done_at < ?",
                (now - seconds,),
            )
            return int(gone)

        return _run(self.path, work)


class JournalFile:
    """The order journal: intents, fills and tombstones by client order id."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def forget(self, client_order_ids: Sequence[str]) -> int:
        """Delete these orders' intents, fills and tombstones (the subject's copies)."""

        def work(db: sqlite3.Connection) -> int:
            gone = 0
            for table in ("fills", "tombstones", "intents"):
                gone += sum(
                    db.execute(
                        f"DELETE FROM {table} WHERE client_order_id = ?",  # noqa: S608  # nosec B608 - fixed names
                        (cid,),
                    ).rowcount
                    for cid in client_order_ids
                )
            return gone

        return _run(self.path, work)

    def sweep(self, now: float, terminal_seconds: float, tombstone_seconds: float) -> int:
        """Finished intents unchanged for ``terminal_seconds`` become tombstones (their key
        stays refused for ``tombstone_seconds``); tombstones past their time go."""
        marks = ",".join("?" * len(_FINISHED))

        def work(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM tombstones WHERE expires_at <= ?", (now,))
            old = [
                str(r[0])
                for r in db.execute(
                    f"SELECT client_order_id FROM intents WHERE state IN ({marks}) "  # noqa: S608  # nosec B608 - placeholders
                    "AND updated_at < ?",
                    (*_FINISHED, now - terminal_seconds),
                )
            ]
            db.executemany(
                "INSERT OR REPLACE INTO tombstones (client_order_id, purged_at, expires_at) "
                "VALUES (?, ?, ?)",
                [(cid, now, now + tombstone_seconds) for cid in old],
            )
            for table in ("fills", "intents"):
                db.executemany(
                    f"DELETE FROM {table} WHERE client_order_id = ?",  # noqa: S608  # nosec B608 - fixed names
                    [(cid,) for cid in old],
                )
            return len(old)

        return _run(self.path, work)


class ReplayFile:
    """The gateway's SQLite replay store: hashed (key id, nonce) tokens with an expiry.

    A token is a hash of the key id and the nonce, so it cannot be tied to a person; it
    lives for the signature window (seconds to minutes) and the sweep deletes it after.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def sweep(self, now: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            return int(
                db.execute(
                    "DELETE FROM st_replay WHERE expires_ms <= ?", (int(now * 1000),)
                ).rowcount
            )

        return _run(self.path, work)
