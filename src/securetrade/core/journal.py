"""The write-ahead order journal: an intent is durable before any byte of it is sent.

SQLite in WAL mode with ``synchronous=FULL``: the row that says "we are about to send
client order id X, valid at the venue until T" survives a crash or a ``kill -9``, and the
same file coordinates threads and processes on one host (the INSERT that creates an
intent succeeds exactly once).
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Intent", "IntentState", "Journal", "derive_client_order_id"]


class IntentState(str, enum.Enum):
    SENDING = "SENDING"  # a request may be on its way; only the venue can say what happened
    ACKED = "ACKED"  # the venue holds the order (open)
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"  # the venue said no
    NOT_PLACED = "NOT_PLACED"  # certainly never reached the venue, or expired unexecuted
    UNKNOWN = "UNKNOWN"  # could not be resolved yet: needs another look, or a person


def derive_client_order_id(venue: str, account: str, idempotency_key: str) -> str:
    """The same intent gets the same id on any host: 32 characters of ``[0-9a-z]``.

    32 lowercase alphanumerics fit every supported venue's grammar (OKX allows at most
    32, alphanumeric only); the ``st`` prefix marks orders this SDK placed.
    """
    digest = hashlib.sha256(f"{venue}\x00{account}\x00{idempotency_key}".encode()).hexdigest()
    return "st" + digest[:30]


@dataclass(frozen=True, slots=True)
class Intent:
    idempotency_key: str
    client_order_id: str
    symbol: str
    fingerprint: str
    state: IntentState
    deadline_ms: int  # venue time after which the last attempt can no longer execute
    order_json: str | None
    error: str | None
    updated_at: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    symbol TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    deadline_ms INTEGER NOT NULL DEFAULT 0,
    order_json TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_state ON intents(state);
"""

_COLUMNS = (
    "idempotency_key, client_order_id, symbol, fingerprint, state, deadline_ms, order_json, "
    "error, updated_at"
)


class Journal:
    """SQLite order journal. ``path=":memory:"`` keeps it in this process only."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._synchronous = synchronous
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        symbol: str,
        fingerprint: str,
        deadline_ms: int,
    ) -> tuple[Intent, bool]:
        """Create the intent in state SENDING, durably. Returns ``(intent, created)``;
        ``created`` is False when it already existed (whoever created it sends). The client
        order id is derived from venue, account and idempotency key, so it is the row key."""
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO intents (idempotency_key, client_order_id, symbol, "
                "fingerprint, state, deadline_ms, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    idempotency_key,
                    client_order_id,
                    symbol,
                    fingerprint,
                    IntentState.SENDING.value,
                    deadline_ms,
                    now,
                    now,
                ),
            )
            created = cursor.rowcount == 1
            intent = self._get(client_order_id)
        assert intent is not None
        return intent, created

    def get(self, client_order_id: str) -> Intent | None:
        with self._lock:
            return self._get(client_order_id)

    def _get(self, client_order_id: str) -> Intent | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM intents WHERE client_order_id = ?",  # noqa: S608 constant
            (client_order_id,),
        ).fetchone()
        return None if row is None else _intent(row)

    def sending(self, client_order_id: str, deadline_ms: int) -> None:
        """Record, durably, that an attempt valid until ``deadline_ms`` is about to go out."""
        self._update(client_order_id, IntentState.SENDING, deadline_ms=deadline_ms)

    def claim(self, client_order_id: str, expected_deadline_ms: int, deadline_ms: int) -> bool:
        """Take over an abandoned intent (compare-and-set on its deadline)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE intents SET deadline_ms = ?, state = ?, updated_at = ? "
                "WHERE client_order_id = ? AND deadline_ms = ?",
                (
                    deadline_ms,
                    IntentState.SENDING.value,
                    time.time(),
                    client_order_id,
                    expected_deadline_ms,
                ),
            )
            return cursor.rowcount == 1

    def settle(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        order_json: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record what became of the intent.

        Committed without waiting for the disk: losing this row to a power cut only sends the
        intent back to SENDING, which recovery resolves by asking the venue.
        """
        self._update(client_order_id, state, order_json=order_json, error=error, durable=False)

    def _update(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        deadline_ms: int | None = None,
        order_json: str | None = None,
        error: str | None = None,
        durable: bool = True,
    ) -> None:
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "UPDATE intents SET state = ?, deadline_ms = COALESCE(?, deadline_ms), "
                "order_json = COALESCE(?, order_json), error = ?, updated_at = ? "
                "WHERE client_order_id = ?",
                (state.value, deadline_ms, order_json, error, time.time(), client_order_id),
            )
            if not durable:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")

    def unresolved(self) -> list[Intent]:
        """Intents whose outcome is not known: still SENDING, or UNKNOWN."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM intents WHERE state IN (?, ?) "  # noqa: S608 constant
                "ORDER BY created_at",
                (IntentState.SENDING.value, IntentState.UNKNOWN.value),
            ).fetchall()
        return [_intent(r) for r in rows]


def _intent(row: tuple[object, ...]) -> Intent:
    key, cid, symbol, fingerprint, state, deadline, order_json, error, updated = row
    return Intent(
        idempotency_key=str(key),
        client_order_id=str(cid),
        symbol=str(symbol),
        fingerprint=str(fingerprint),
        state=IntentState(state),
        deadline_ms=int(deadline),  # type: ignore[call-overload]
        order_json=None if order_json is None else str(order_json),
        error=None if error is None else str(error),
        updated_at=float(updated),  # type: ignore[arg-type]
    )
