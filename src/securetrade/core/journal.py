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
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._sqlite import busy
from ..errors import InvalidRequest, JournalError
from ..models import Fill
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

log = logging.getLogger("securetrade.journal")

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

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deadline_ms INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    order_json TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS intents_state ON intents(account, state)",
    """CREATE TABLE IF NOT EXISTS leases (
    account TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
)""",
    # One row per venue trade: the primary key is what makes a fill reported twice one fill.
    """CREATE TABLE IF NOT EXISTS fills (
    client_order_id TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    commission TEXT NOT NULL,
    commission_asset TEXT,
    PRIMARY KEY (client_order_id, trade_id)
)""",
    # Earlier version 3 files recorded an answer's fills with a trigger that parsed the
    # answer's JSON; settle() now takes the fills themselves, in the same transaction.
    "DROP TRIGGER IF EXISTS fills_of_answer",
    """CREATE TABLE IF NOT EXISTS tombstones (
    client_order_id TEXT PRIMARY KEY,
    purged_at REAL NOT NULL,
    expires_at REAL NOT NULL
)""",
)

_VERSION = 3

# How long a statement waits for another process's write lock before it fails.
_BUSY_MS = 30_000

# With a durable journal the log is checkpointed every this many flushes (see _checkpoint),
# and kept at most this long on disk once checkpointed.
_CHECKPOINT_EVERY = 32
_WAL_LIMIT_BYTES = 16 * 1024 * 1024

_INSERT_FILL = (
    "INSERT OR IGNORE INTO fills (client_order_id, trade_id, price, quantity, commission, "
    "commission_asset) VALUES (?, ?, ?, ?, ?, ?)"
)
_READABLE = (2, 3)  # version 3 only adds tables: a version 2 file is upgraded in place

_COLUMNS = (
    "idempotency_key, client_order_id, account, symbol, fingerprint, state, attempts, "
    "deadline_ms, owner, order_json, error, created_at, updated_at"
)


class JournalBusy(Exception):
    """The journal is held by another thread or process right now (see
    :meth:`Journal.transaction`); internal: the group commit retries off the loop."""


# JournalError is defined in securetrade.errors (a SecureTradeError); this module's name
# for it stays, for the code and tests that import it from here.
_JOURNAL_TABLES = frozenset({"intents", "leases", "fills", "tombstones"})


def _unusable(path: str, exc: BaseException) -> JournalError:
    """The error for a path that cannot hold a journal: what is wrong, and what to do.

    SQLite's own words ("unable to open database file") name neither the cause nor the fix;
    the path is looked at again to tell which case it is.
    """
    where = Path(path)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    elsewhere = "or pass journal= a path in a directory this process can write"
    if where.is_dir():
        reason = "it is a directory"
        fix = f"pass journal= a file inside it, such as {where / 'journal.sqlite3'}"
    elif isinstance(exc, OSError):  # creating the parent directory failed
        blocker = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a directory"
            fix = f"move that file, {elsewhere}"
        else:
            reason = f"its directory {where.parent} cannot be created ({exc.strerror or exc})"
            fix = f"create it, writable by this process, {elsewhere}"
    elif name == "SQLITE_NOTADB" or "not a database" in text:
        reason = "it is not an SQLite database (some other file is in the way)"
        fix = f"move that file, {elsewhere}"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text:
        reason = "it is read-only (SQLite writes it, and its -wal and -shm files beside it)"
        fix = f"make the file and its directory writable by this process, {elsewhere}"
    elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        reason = f"it cannot be opened or created in {where.parent}"
        fix = f"make that directory writable by this process, {elsewhere}"
    elif name.startswith("SQLITE_BUSY") or "locked" in text:
        reason = "another connection kept it locked for 30 s"
        fix = "retry once that process is done, or give each process its own journal"
    elif name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        reason = "it is damaged"
        fix = "keep it for inspection, and pass journal= a new path"
    else:
        reason = f"it cannot be used ({type(exc).__name__}: {text})"
        fix = elsewhere
    error = JournalError(f"journal {path}: {reason}; {fix}. Nothing was sent.")
    error.__cause__ = exc
    return error


class Journal:
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
        #: Seconds the last ``fdatasync`` of the log took: how fast this disk is now.
        self.last_sync_s = 0.0
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

    def _prepare(self) -> None:
        """WAL mode, our settings and the schema. Processes opening a new file at once can
        meet SQLite's deadlock guard, which answers "locked" at once instead of waiting:
        tried again, with jitter, for as long as a busy wait would have lasted."""
        deadline = time.monotonic() + _BUSY_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                if self.needs_flush:  # our flushes checkpoint, off the committing thread
                    self._db.execute("PRAGMA wal_autocheckpoint=0")
                    self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._migrate()
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not busy(exc) or time.monotonic() > deadline:
                    raise
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                time.sleep(random.uniform(0.002, 0.02))  # noqa: S311  # nosec B311 - jitter

    def _migrate(self) -> None:
        """Create or upgrade the schema; refuse a file that is not one of our journals
        (another program's database would otherwise gain our tables silently)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        foreign = sorted(tables - _JOURNAL_TABLES)
        if "intents" not in tables and (tables or version != 0):
            raise JournalError(
                f"journal {self.path}: it is another program's SQLite database (tables: "
                f"{', '.join(foreign) or 'none'}; user_version {version}), not an order "
                "journal; pass journal= a path of its own (a new file is made there). "
                "Nothing was sent."
            )
        if version not in (0, *_READABLE):
            raise JournalError(
                f"journal {self.path}: it is a journal of schema {version}, and this version "
                f"reads {_VERSION}; open it with the securetrade that wrote it. Nothing was sent."
            )
        if version == 0 and tables:  # intents, but no version: a pre-release file
            raise JournalError(
                f"journal {self.path}: it was written by a pre-release securetrade; resolve its "
                "intents with that version, then start a new journal. Nothing was sent."
            )
        if version != _VERSION:
            self._db.execute(f"PRAGMA user_version={_VERSION}")
        for statement in _SCHEMA:  # IF NOT EXISTS: adds what a file lacks
            self._db.execute(statement)

    def close(self) -> None:
        """Flush and close the journal file; what was committed stays for recovery."""
        with self._lock:
            self._closed = True
            with self._wal_lock:
                if self._checkpointer is not None:
                    self._checkpointer.close()
                    self._checkpointer = None
                if self._wal_fd is not None:
                    os.close(self._wal_fd)
                    self._wal_fd = None
            self._db.close()

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

    @contextlib.contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[None]:
        """One transaction, one commit, for every write this thread makes inside it.

        The async client's group commit: the claims, attempts and outcomes of the orders
        ready in one event-loop turn cost one commit instead of one each. Other threads
        wait for it. A write that raises inside it (an expired key) leaves the others in.
        Attempts made inside are durable only after :meth:`flush`, as with ``flush=False``.

        ``wait=False`` (the event loop's way in): if another thread of this process or
        another process holds the journal, raise :class:`JournalBusy` at once instead of
        waiting for it; the caller then makes the same transaction in a worker thread.
        """
        if not self._lock.acquire(blocking=wait):
            raise JournalBusy(self.path)
        try:
            sqlite_flushes = self._sqlite_flushes
            if sqlite_flushes:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            try:
                self._begin_immediate(wait)
                self._batching = True
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                finally:
                    self._batching = False
                self._commit()
            finally:
                if sqlite_flushes:
                    self._db.execute("PRAGMA synchronous=NORMAL")
        finally:
            self._lock.release()

    def _begin_immediate(self, wait: bool) -> None:
        """Take the file's write lock; without ``wait``, only if it is free right now."""
        if wait:
            self._db.execute("BEGIN IMMEDIATE")
            return
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if busy(exc):
                raise JournalBusy(self.path) from exc
            raise
        finally:
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")

    def _commit(self) -> None:
        """COMMIT; if it fails, roll back, so that no later write can join a transaction
        nobody will commit (and no attempt is reported recorded that is not)."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @property
    def _sqlite_flushes(self) -> bool:
        """No descriptor on the log to flush it ourselves: SQLite's commit must wait."""
        return self.needs_flush and self._wal_fd is None

    @property
    def needs_flush(self) -> bool:
        """Whether a commit waits for the disk at all (not in memory, not NORMAL)."""
        return self.path != ":memory:" and self._synchronous != "NORMAL"

    def flush(self) -> None:
        """Make every commit so far durable (see :meth:`sending_many`); safe from any thread.

        Raises :class:`JournalError` when that cannot be proven: the journal is closed, the
        flush failed, or an earlier one did (after a failed ``fdatasync`` the system may
        have dropped the pages it could not write, so a later success proves nothing).
        """
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        if self.needs_flush:
            self._flush_log()

    def _open_log(self) -> None:
        """Open the ``-wal`` file for :meth:`_flush_log` (it exists once WAL mode wrote)."""
        if self.path == ":memory:":
            return
        try:
            self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY)
        except OSError:
            self._wal_fd = None  # sending_many falls back to a FULL commit

    def flush_here(self) -> bool:
        """:meth:`flush` on the calling thread, when it is only a wait for the log's
        ``fdatasync``: the event loop's way (see ``GroupCommit``). False, having done
        nothing, when a checkpoint is due with this flush or another thread is flushing
        or checkpointing right now: then call :meth:`flush` from a worker thread."""
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        if not self.needs_flush:
            return True
        if not self._wal_lock.acquire(blocking=False):
            return False
        try:
            if (self._flushes + 1) % _CHECKPOINT_EVERY == 0:
                return False
            self._sync_log()
        finally:
            self._wal_lock.release()
        return True

    def _flush_log(self) -> None:
        """Put everything committed so far on disk (:meth:`_sync_log`), and checkpoint
        every ``_CHECKPOINT_EVERY`` flushes."""
        with self._wal_lock:
            self._sync_log()
            if self._flushes % _CHECKPOINT_EVERY == 0:
                self._checkpoint()

    def _sync_log(self) -> None:
        """``fdatasync`` of the ``-wal`` file, timed into :attr:`last_sync_s`; the caller
        holds ``_wal_lock``.

        A checkpoint that moved frames into the database file flushed the log before it
        and the database after it, so whatever it took is on disk as well. If the log file
        was replaced meanwhile (every connection closed and a new one opened it), the new
        one is opened and flushed.
        """
        wal = self.path + "-wal"
        if self._flush_failure is not None:
            raise JournalError(f"{wal}: {self._flush_failure}; reopen the journal")
        fd = self._wal_fd
        if fd is None:
            return
        try:
            if os.fstat(fd).st_ino != os.stat(wal).st_ino:
                self._wal_fd = None
                os.close(fd)
                fd = self._wal_fd = os.open(wal, os.O_RDONLY)
            started = time.perf_counter()
            if self._synchronous == "EXTRA" or not hasattr(os, "fdatasync"):
                os.fsync(fd)
            else:
                os.fdatasync(fd)
            self.last_sync_s = time.perf_counter() - started
        except OSError as exc:  # not durable: the caller must not send
            self._flush_failure = f"a flush of the journal failed ({exc})"
            raise JournalError(f"{wal}: could not flush the journal ({exc})") from exc
        self._flushes += 1

    def _checkpoint(self) -> None:
        """Copy the log into the database file, from the flushing thread (the async client's
        worker), on a connection of its own: SQLite would otherwise do it inside a commit,
        on the event loop, with two waits for the disk. PASSIVE: writers go on meanwhile.
        A checkpoint that fails is retried at a later flush; it costs only log length."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0.5
                )
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("journal checkpoint deferred: %s", exc)

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
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM intents "  # noqa: S608 constant  # nosec B608
                "WHERE account = ? AND state IN (?, ?, ?) ORDER BY created_at",
                (account, *(s.value for s in UNFINISHED)),
            ).fetchall()
        return [_intent(r) for r in rows]

    def unresolved(self, account: str | None = None) -> list[Intent]:
        """Intents whose outcome is not known: SENDING or UNKNOWN."""
        query = f"SELECT {_COLUMNS} FROM intents WHERE state IN (?, ?)"  # noqa: S608 constant  # nosec B608
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
                "SELECT trade_id, price, quantity, commission, commission_asset FROM fills "
                "WHERE client_order_id = ? ORDER BY rowid",
                (client_order_id,),
            ).fetchall()
        return [
            Fill(trade_id=t, price=p, quantity=q, commission=c, commission_asset=a)
            for t, p, q, c, a in rows
        ]

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
                old = [
                    row[0]
                    for row in self._db.execute(
                        f"SELECT client_order_id FROM intents WHERE state IN ({marks}) "  # noqa: S608 placeholders  # nosec B608
                        "AND updated_at < ?",
                        (*states, now - self.retention),
                    )
                ]
                self._db.executemany(
                    "INSERT OR REPLACE INTO tombstones (client_order_id, purged_at, expires_at) "
                    "VALUES (?, ?, ?)",
                    [(cid, now, now + self.tombstone_ttl) for cid in old],
                )
                self._db.executemany(
                    "DELETE FROM fills WHERE client_order_id = ?", [(cid,) for cid in old]
                )
                self._db.executemany(
                    "DELETE FROM intents WHERE client_order_id = ?", [(cid,) for cid in old]
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
