"""The write-ahead order journal: an intent is durable before any byte of it is sent.

SQLite in WAL mode with ``synchronous=FULL``: the row that says "we are about to send
client order id X, valid at the venue until T" survives a crash or a ``kill -9``, and the
same file coordinates threads and processes on one host (the INSERT that creates an
intent succeeds exactly once).

Besides the intents, the journal keeps each order's **fills**, one row per venue trade id
(the same trade reported twice, by the order answer and by a trades query, is one fill),
and **tombstones**: a finished intent older than the retention period is purged to a
tombstone, and while that lasts the same idempotency key raises
:class:`~securetrade.errors.IdempotencyKeyExpired` instead of placing a second order.

:class:`Journal` is built in three layers, each on the one below: :mod:`.journal_file`
(opening the file, WAL mode, schema and migration, refusing a file that cannot be one),
:mod:`.journal_durability` (transactions, commits, the log's flush and checkpoints), and
this module, the intents themselves (begin, send, settle, leases, fills, retention). The
intent operations are the only ones an order flow calls; the layers below are its plumbing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import _fork
from ..errors import InvalidRequest, JournalError
from ..models import Fill
from .journal_durability import JournalBusy as JournalBusy
from .journal_durability import _DurableJournalFile
from .journal_file import _BUSY_MS, UNFINISHED_SQL, _unusable
from .states import (
    GUARDED,
    PURGEABLE,
    SENDABLE,
    SOURCES,
    UNFINISHED,
    Intent,
    IntentState,
    View,
)
from .store import (
    RETENTION_S,
    TOMBSTONE_S,
    JournalStore,
    _expired,
    _wire,
    check_attempts,
    check_begin,
    check_fills,
    check_id,
    check_ids,
    check_lease_seconds,
    check_settle,
    derive_client_order_id,
    is_ours,
    owner_is_gone,
    process_token,
    retention_period,
)

__all__ = [
    "PURGEABLE",
    "UNFINISHED",
    "Intent",
    "IntentState",
    "View",
    "Journal",
    "JournalError",
    "JournalStore",
    "derive_client_order_id",
    "is_ours",
    "owner_is_gone",
    "process_token",
]


# States as the rows store them, read once (``.value`` is a Python-level property and
# these are written on every order).
_PENDING = IntentState.PENDING.value
_SENDING = IntentState.SENDING.value
_PENDING_STATE, _SENDING_STATE = IntentState.PENDING, IntentState.SENDING  # read once, too

# A fill is keyed by its intent's created_at (see journal_file), client order id and trade
# id; by 0 instead of created_at when the journal holds no intent of the order, and for
# as long as fills recorded so stay (a trade query about an order placed elsewhere, then
# a begin here), so that each trade has one key. VALUES, not SELECT: an INSERT whose
# SELECT reads the table it writes goes through a temporary table, on every fill.
# A process still on version 3 code (a rolling upgrade) records under 0 whatever the
# intent: once it has, a trade already recorded under the intent keeps that key here (the
# last EXISTS, read only then), and fills() skips a trade id it has already read.
_INTENT_AT = "COALESCE((SELECT created_at FROM intents WHERE client_order_id = ?1), 0)"
_INSERT_FILL = (
    "INSERT OR IGNORE INTO fills (intent_at, client_order_id, trade_id, price, quantity, "
    "commission, commission_asset) VALUES (COALESCE((SELECT created_at FROM intents AS i "
    "WHERE client_order_id = ?1 AND (NOT EXISTS (SELECT 1 FROM fills WHERE intent_at = 0 "
    "AND client_order_id = ?1) OR EXISTS (SELECT 1 FROM fills WHERE intent_at = i.created_at "
    "AND client_order_id = ?1 AND trade_id = ?2))), 0), ?1, ?2, ?3, ?4, ?5, ?6)"
)

_COLUMNS = (
    "idempotency_key, client_order_id, account, symbol, fingerprint, state, attempts, "
    "deadline_ms, owner, order_json, error, created_at, updated_at"
)

# JournalError is defined in securetrade.errors (a SecureTradeError); this module's name
# for it stays, for the code and tests that import it from here. So does JournalBusy's,
# defined with the transactions in journal_durability.


class Journal(_DurableJournalFile):
    """SQLite order journal. ``path=":memory:"`` keeps it in this process only.

    Only the commit that precedes a send waits for the disk (``synchronous``, FULL by
    default); the others are ordered before it in the write-ahead log, so they are durable
    once it is, and losing a later one only costs recovery one question to the venue.
    """

    blocking = False  # a local file: its calls are short (the one disk wait is flush())

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        retention: float = RETENTION_S,
        tombstone_ttl: float = TOMBSTONE_S,
    ) -> None:
        """``retention``: seconds a finished intent (see :data:`PURGEABLE`) is kept after
        its last change; ``tombstone_ttl``: seconds its tombstone then refuses the key.

        Raises :class:`JournalError`, saying what to change, when ``path`` cannot hold a
        journal: a directory, a file that is not SQLite or is another program's database,
        a place this process cannot write. A client opens its journal before sending.
        """
        if synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise InvalidRequest("synchronous must be FULL, EXTRA or NORMAL")
        retention_period("retention", retention)
        retention_period("tombstone_ttl", tombstone_ttl)
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidRequest(
                f"journal path must be a str or Path, got {type(path).__name__}; "
                "pass journal=':memory:' for a journal that lives in this process only"
            )
        self.retention = retention
        self.tombstone_ttl = tombstone_ttl
        self.path = os.fspath(path)
        if not isinstance(self.path, str):  # a bytes path from os.PathLike
            raise InvalidRequest("journal path must be text, not bytes")
        self._synchronous = synchronous
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                if Path(self.path).is_dir():
                    raise IsADirectoryError(self.path)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000
            )
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(self.path, exc) from exc
        # Reentrant: writes made inside :meth:`transaction` by its thread join it.
        self._lock = threading.RLock()
        self._wal_lock = threading.Lock()  # the log's descriptor, opened at the first flush
        self._wal_fd: int | None = None
        self._batching = False  # inside transaction(): writes join it, it commits them
        self._closed = False
        self._flush_failure: str | None = None  # once a flush failed, no later one is trusted
        self._checkpointer: sqlite3.Connection | None = None  # see _checkpoint()
        self._flushes = 0
        with self._lock:
            try:
                self._prepare()
            except sqlite3.Error as exc:
                self._db.close()
                raise _unusable(self.path, exc) from exc
            except BaseException:
                self._db.close()
                raise
            self._open_log()
        _fork.watch(self)  # a forked child refuses to use it

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        account: str,
        symbol: str,
        fingerprint: str,
        *,
        sending_deadline_ms: int | None = None,
    ) -> tuple[Intent, bool]:
        """Record the intent as PENDING. Returns ``(intent, created)``; ``created`` is False
        when it already existed (then its owner sends, or has sent). The client order id is
        derived from venue, account and idempotency key, so it is the row key.

        With ``sending_deadline_ms`` (the order path, when the policy and the rate limiter
        have admitted the order at once) the new row is attempt 1, SENDING, valid at the
        venue until that deadline: the claim and the attempt in one write, durable (as
        :meth:`sending`) before this returns. To a crash, a reader or recovery it is
        exactly the row a claim followed by :meth:`sending` leaves; an existing row is
        left as it is, so a second claimant still rejoins.

        Raises :class:`IdempotencyKeyExpired` when the key's intent was purged and its
        tombstone still stands (one statement: the tombstone check is part of the INSERT).
        """
        check_begin(idempotency_key, client_order_id, account, symbol, fingerprint,
                    sending_deadline_ms)  # fmt: skip
        now = time.time()
        fused = sending_deadline_ms is not None
        state, attempts, deadline = (
            (_SENDING_STATE, 1, sending_deadline_ms)
            if sending_deadline_ms is not None
            else (_PENDING_STATE, 0, 0)
        )
        with self._lock:
            joined = self._batching  # inside transaction(): its caller commits and flushes
            sqlite_flushes = fused and not joined and self._sqlite_flushes
            if sqlite_flushes:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            try:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO intents (idempotency_key, client_order_id, account, "
                    "symbol, fingerprint, state, attempts, deadline_ms, owner, created_at, "
                    "updated_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM tombstones WHERE client_order_id = ?2 AND expires_at > ?10)",
                    (
                        idempotency_key,
                        client_order_id,
                        account,
                        symbol,
                        fingerprint,
                        state._value_,
                        attempts,
                        deadline,
                        process_token(),
                        now,
                        now,
                    ),
                )
            finally:
                if sqlite_flushes:
                    self._db.execute("PRAGMA synchronous=NORMAL")
            created = cursor.rowcount == 1
            intent: Intent | None
            if created:  # the row is exactly what was just written: no need to read it back
                intent = Intent(
                    idempotency_key, client_order_id, account, symbol, fingerprint,
                    state, attempts, deadline, process_token(), None, None, now, now,
                )  # fmt: skip
            else:
                intent = self._get(client_order_id)
                if intent is None:
                    until = self._db.execute(
                        "SELECT expires_at FROM tombstones WHERE client_order_id = ?",
                        (client_order_id,),
                    ).fetchone()
        if intent is None:
            raise _expired(client_order_id, until[0] if until else now)
        if created and fused and not joined and not self._sqlite_flushes:
            self.flush()  # an attempt: on disk before any byte of it leaves
        return intent, created

    def get(self, client_order_id: str) -> Intent | None:
        """The intent recorded under ``client_order_id``, or ``None`` if there is none."""
        check_id("client_order_id", client_order_id)
        with self._lock:
            return self._get(client_order_id)

    def _get(self, client_order_id: str) -> Intent | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM intents WHERE client_order_id = ?",  # noqa: S608 constant  # nosec B608
            (client_order_id,),
        ).fetchone()
        return None if row is None else _intent(row)

    def sending(self, client_order_id: str, seen: View, deadline_ms: int) -> bool:
        """Durably record that attempt ``seen.attempts + 1``, valid at the venue until
        ``deadline_ms``, is about to go out (the transition to SENDING); False (nothing
        recorded, do not send) when the row is no longer ``seen``: somebody else sent,
        claimed or settled the intent since we read it."""
        return self.sending_many([(client_order_id, seen, deadline_ms)])[0]

    def sending_many(
        self, attempts: Sequence[tuple[str, View, int]], *, flush: bool = True
    ) -> list[bool]:
        """:meth:`sending` for several ``(client_order_id, seen, deadline_ms)`` in one
        transaction: one wait for the disk however many orders are about to go out.

        The commit itself does not wait (``synchronous=NORMAL``); the write-ahead log is
        then flushed with one ``fdatasync`` outside the lock. A WAL transaction is durable
        once its commit frame is on disk, so the attempt is durable when this returns, and
        meanwhile other threads (the event loop's begins and settles) are not held up
        behind the disk. Where the log file cannot be opened, SQLite's own flush is used.

        ``flush=False`` leaves the wait for the disk to the caller, who must call
        :meth:`flush` before sending (the async client commits on its event loop and
        flushes in a worker thread). :attr:`needs_flush` says whether there is any. Inside
        :meth:`transaction` the attempts join it: committed with it, flushed by the caller.
        """
        attempts = check_attempts(attempts)
        if flush is not True and flush is not False:  # read after the commit: checked first
            raise InvalidRequest("flush must be True or False (False: call flush() yourself)")
        results: list[bool] = []
        with self._lock:
            joined = self._batching  # inside transaction() (held by this thread): it commits
            sqlite_flushes = not joined and self._sqlite_flushes
            if sqlite_flushes:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            try:
                if not joined:
                    self._db.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time()
                    for client_order_id, seen, deadline_ms in attempts:
                        if seen.state not in SENDABLE:
                            results.append(False)
                            continue
                        cursor = self._db.execute(
                            "UPDATE intents SET state = ?, attempts = attempts + 1, "
                            "deadline_ms = ?, owner = ?, error = NULL, updated_at = ? "
                            "WHERE client_order_id = ? AND state = ? AND attempts = ?",
                            (
                                _SENDING,
                                deadline_ms,
                                process_token(),
                                now,
                                client_order_id,
                                seen.state._value_,
                                seen.attempts,
                            ),
                        )
                        results.append(cursor.rowcount == 1)
                except BaseException:
                    if not joined:
                        self._db.execute("ROLLBACK")
                    raise
                if not joined:
                    self._commit()
            finally:
                if sqlite_flushes:
                    self._db.execute("PRAGMA synchronous=NORMAL")
        if flush and not joined and not self._sqlite_flushes and any(results):
            self.flush()
        return results

    def settle(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        expect: View | None = None,
        order_json: str | None = None,
        error: str | None = None,
        fills: Sequence[Fill] = (),
    ) -> bool:
        """Record what became of the intent, if that is a transition from the row as it
        is now (see :mod:`.states`): a guarded target needs ``expect``, the state and
        attempt count the writer read, to be still in place. Returns whether it applied.

        ``fills``, the executions the answer carries, are recorded (once per trade id) in
        the same transaction. Not waiting for the disk: see the class."""
        check_settle(client_order_id, state, expect, order_json, error)
        where, args = _transition(state, expect)
        rows = _fill_rows(client_order_id, fills)
        with self._lock:
            own = bool(rows) and not self._batching  # else one statement: atomic
            if own:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                if error is None:  # an answer: NULL in the text, not a None to bind,
                    # which sqlite3 sends through its adapter lookup first
                    cursor = self._db.execute(
                        "UPDATE intents SET state = ?, order_json = COALESCE(?, order_json), "  # noqa: S608 placeholders  # nosec B608
                        f"error = NULL, updated_at = ? WHERE client_order_id = ? AND {where}",
                        (state._value_, order_json, time.time(), client_order_id, *args),
                    )
                else:
                    cursor = self._db.execute(
                        "UPDATE intents SET state = ?, order_json = COALESCE(?, order_json), "  # noqa: S608 placeholders  # nosec B608
                        f"error = ?, updated_at = ? WHERE client_order_id = ? AND {where}",
                        (state._value_, order_json, error, time.time(), client_order_id, *args),
                    )
                applied = cursor.rowcount == 1
                if rows and applied:  # fills of intents it keeps, only
                    self._db.executemany(_INSERT_FILL, rows)
            except BaseException:
                if own:
                    self._db.execute("ROLLBACK")
                raise
            if own:
                self._commit()
        return applied

    def unfinished(self, account: str) -> list[Intent]:
        """This account's intents the venue has not confirmed (PENDING, SENDING, UNKNOWN)."""
        check_id("account", account)
        with self._lock:
            rows = self._db.execute(  # the partial index's own condition: it is used
                f"SELECT {_COLUMNS} FROM intents "  # noqa: S608 constant  # nosec B608
                f"WHERE account = ? AND {UNFINISHED_SQL} ORDER BY created_at",
                (account,),
            ).fetchall()
        return [_intent(r) for r in rows]

    def unresolved(self, account: str | None = None) -> list[Intent]:
        """Intents whose outcome is not known: SENDING or UNKNOWN."""
        query = (  # among the unfinished: the partial index on them is used
            f"SELECT {_COLUMNS} FROM intents WHERE {UNFINISHED_SQL} AND state IN (?, ?)"  # noqa: S608 constant  # nosec B608
        )
        args: tuple[str, ...] = (IntentState.SENDING.value, IntentState.UNKNOWN.value)
        if account is not None:
            check_id("account", account)
            query += " AND account = ?"
            args += (account,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at", args).fetchall()
        return [_intent(r) for r in rows]

    def lease(self, account: str, seconds: float) -> bool:
        """Take (or renew) the account's reconciliation lease for ``seconds``; False when
        another live process holds it. One reconciler per account at a time."""
        check_id("account", account)
        check_lease_seconds(seconds)
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO leases (account, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT(account) DO UPDATE SET owner = excluded.owner, "
                "until = excluded.until WHERE leases.owner = excluded.owner OR leases.until < ?",
                (account, process_token(), now + seconds, now),
            )
            if cursor.rowcount == 1:
                return True
            row = self._db.execute(
                "SELECT owner FROM leases WHERE account = ?", (account,)
            ).fetchone()
            if row is not None and owner_is_gone(row[0]):
                # Compare-and-set on the dead holder: of two processes that both saw it
                # dead, only the first one's update finds it still there.
                cursor = self._db.execute(
                    "UPDATE leases SET owner = ?, until = ? WHERE account = ? AND owner = ?",
                    (process_token(), now + seconds, account, row[0]),
                )
                return cursor.rowcount == 1
            return False

    def release(self, account: str) -> None:
        """Give the lease back (if this process holds it)."""
        check_id("account", account)
        with self._lock:
            self._db.execute(
                "DELETE FROM leases WHERE account = ? AND owner = ?", (account, process_token())
            )

    def record_fills(self, client_order_id: str, fills: Iterable[Fill]) -> int:
        """Record executions of the order; returns how many were new.

        A fill is identified by its venue trade id, so the same trade reported twice (by
        the order answer and by a trades query, or by two overlapping queries) is recorded
        once. Fills without a trade id cannot be told apart and are not recorded.
        """
        rows = _fill_rows(client_order_id, fills)
        with self._lock:
            before = self._db.total_changes
            self._db.executemany(_INSERT_FILL, rows)
            return self._db.total_changes - before

    def fills(self, client_order_id: str) -> list[Fill]:
        """The order's recorded fills, oldest first."""
        check_id("client_order_id", client_order_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT trade_id, price, quantity, commission, commission_asset FROM fills "  # noqa: S608 constant  # nosec B608
                f"WHERE intent_at IN (0, {_INTENT_AT}) AND client_order_id = ?1 ORDER BY id",
                (client_order_id,),
            ).fetchall()
        found: dict[str, Fill] = {}  # one per trade: version 3 code may have recorded it
        for t, p, q, c, a in rows:  # again (see _INSERT_FILL); the first kept, in order
            if t not in found:
                found[t] = Fill(trade_id=t, price=p, quantity=q, commission=c, commission_asset=a)
        return list(found.values())

    def purge(self) -> int:
        """Apply the retention policy now; returns how many intents became tombstones.

        Finished intents (:data:`PURGEABLE`) unchanged for ``retention`` seconds are
        deleted with their fills and leave a tombstone for ``tombstone_ttl`` seconds;
        tombstones past their time are deleted. Runs at every recovery.
        """
        now = time.time()
        states = tuple(s.value for s in PURGEABLE)
        marks = ",".join("?" * len(states))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM tombstones WHERE expires_at <= ?", (now,))
                old: list[tuple[str, float]] = self._db.execute(
                    f"SELECT client_order_id, created_at FROM intents WHERE state IN ({marks}) "  # noqa: S608 placeholders  # nosec B608
                    "AND updated_at < ?",
                    (*states, now - self.retention),
                ).fetchall()
                self._db.executemany(
                    "INSERT OR REPLACE INTO tombstones (client_order_id, purged_at, expires_at) "
                    "VALUES (?, ?, ?)",
                    [(cid, now, now + self.tombstone_ttl) for cid, _ in old],
                )
                self._db.executemany(  # under its intent, or recorded before it (see fills)
                    "DELETE FROM fills WHERE intent_at IN (0, ?) AND client_order_id = ?",
                    [(created, cid) for cid, created in old],
                )
                self._db.executemany(
                    "DELETE FROM intents WHERE client_order_id = ?", [(cid,) for cid, _ in old]
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._commit()
        return len(old)

    def tombstone(self, client_order_id: str) -> float | None:
        """Until when (epoch seconds) a purged intent's key is refused; None: no tombstone."""
        check_id("client_order_id", client_order_id)
        with self._lock:
            row = self._db.execute(
                "SELECT expires_at FROM tombstones WHERE client_order_id = ? AND expires_at > ?",
                (client_order_id, time.time()),
            ).fetchone()
        return None if row is None else float(row[0])

    def known(self, client_order_ids: list[str]) -> set[str]:
        """Which of these client order ids have a journal row."""
        client_order_ids = check_ids(client_order_ids)
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(client_order_ids), 500):
                chunk = client_order_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    row[0]
                    for row in self._db.execute(
                        f"SELECT client_order_id FROM intents "  # noqa: S608 placeholders  # nosec B608
                        f"WHERE client_order_id IN ({marks})",
                        chunk,
                    )
                )
        return found


def _transition(state: IntentState, expect: View | None) -> tuple[str, tuple[Any, ...]]:
    """The SQL condition under which a write of ``state`` applies (see :mod:`.states`)."""
    if state in GUARDED:
        if expect is None:
            raise InvalidRequest(
                f"a write of {state.value} must name the row it read: pass expect=intent.view"
            )
        if expect.state not in SOURCES[state]:
            return "0", ()
        return "state = ? AND attempts = ?", (expect.state._value_, expect.attempts)
    return _FROM[state]


# The condition of each evidence transition, built once: its allowed source states, as
# literals (the enum's own values: capitals and underscores) compared one by one. Not "state IN
# (...)": SQLite builds a temporary b-tree for an IN list of more than two values, on every
# settle (a quarter of its cost); and no parameters to bind, seven on every settle.
_FROM: dict[IntentState, tuple[str, tuple[str, ...]]] = {
    target: ("(" + " OR ".join(f"state = '{s.value}'" for s in sources) + ")", ())
    for target, sources in SOURCES.items()
    if target not in GUARDED and sources
}


def _fill_rows(
    client_order_id: str, fills: Iterable[Fill]
) -> list[tuple[str, str, str, str, str, str | None]]:
    """Rows of the fills table; a fill without a trade id cannot be told apart: not kept."""
    check_id("client_order_id", client_order_id)
    return [
        (
            client_order_id,
            f.trade_id,
            _wire(f.price),
            _wire(f.quantity),
            _wire(f.commission),
            f.commission_asset,
        )
        for f in check_fills(fills)
        if f.trade_id is not None
    ]


def _intent(row: tuple[Any, ...]) -> Intent:
    (key, cid, account, symbol, fingerprint, state, attempts, deadline, owner, order_json,
     error, created, updated) = row  # fmt: skip
    return Intent(
        idempotency_key=key,
        client_order_id=cid,
        account=account,
        symbol=symbol,
        fingerprint=fingerprint,
        state=IntentState(state),
        attempts=attempts,
        deadline_ms=deadline,
        owner=owner,
        order_json=order_json,
        error=error,
        created_at=created,
        updated_at=updated,
    )
