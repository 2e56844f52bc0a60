"""The SQLite order journal's durability: when a commit is on disk, and who may write.

The middle of the journal's three layers (:mod:`.journal_file`, :mod:`.journal_durability`,
:mod:`.journal`): transactions and their commit (the group commit's one transaction per
event-loop turn, :class:`JournalBusy` when another thread or process holds the file), and
the write-ahead log's own descriptor, flushed with one ``fdatasync`` outside the lock and
checkpointed off the committing thread. Kept apart from the intents because this is the
part that decides what "durable before send" means; the intent operations above only say
which of their writes must be flushed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any, cast

from .. import _fork
from .._sqlite import busy
from ..errors import JournalError
from .journal_file import _BUSY_MS, _JournalFile

__all__ = ["JournalBusy"]

log = logging.getLogger("securetrade.journal")

# With a durable journal the log is checkpointed every this many flushes (see _checkpoint).
_CHECKPOINT_EVERY = 32


class JournalBusy(Exception):
    """The journal is held by another thread or process right now (see
    :meth:`Journal.transaction`); internal: the group commit retries off the loop."""


class _DurableJournalFile(_JournalFile):
    """Transactions, commits and flushes on the journal's connection."""

    # Set, and said what each is, by Journal.__init__ (securetrade.core.journal).
    _lock: threading.RLock
    _wal_lock: threading.Lock
    _wal_fd: int | None
    _batching: bool
    _closed: bool
    _flush_failure: str | None
    _checkpointer: sqlite3.Connection | None
    _flushes: int

    _inherited = False  # set in a child forked while the journal was open

    def _after_fork(self) -> None:
        """In a child forked while this journal was open (see :mod:`securetrade._fork`):
        every call raises :class:`~securetrade.errors.InheritedAcrossFork` before touching
        the file, and the parent's SQLite connections are parked, never used or closed."""
        self._inherited = True
        _fork.park(self._db, self._checkpointer)
        refusing = cast(Any, _fork.RefusingLock("Journal"))
        self._lock = refusing
        self._wal_lock = refusing

    def close(self) -> None:
        """Flush and close the journal file; what was committed stays for recovery. In a
        child forked while it was open it does nothing: the file is the parent's."""
        if self._inherited:
            return
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

    def _flush_log(self) -> None:
        """Put everything committed so far on disk: ``fdatasync`` of the ``-wal`` file.

        A checkpoint that moved frames into the database file flushed the log before it
        and the database after it, so whatever it took is on disk as well. If the log file
        was replaced meanwhile (every connection closed and a new one opened it), the new
        one is opened and flushed.
        """
        with self._wal_lock:
            wal = self.path + "-wal"
            if self._closed:  # by another thread since flush() looked: the log is gone
                raise JournalError(f"{self.path}: the journal is closed")
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
                if self._synchronous == "EXTRA" or not hasattr(os, "fdatasync"):
                    os.fsync(fd)
                else:
                    os.fdatasync(fd)
            except OSError as exc:  # not durable: the caller must not send
                self._flush_failure = f"a flush of the journal failed ({exc})"
                raise JournalError(f"{wal}: could not flush the journal ({exc})") from exc
            self._flushes += 1
            if self._flushes % _CHECKPOINT_EVERY == 0:
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the log into the database file, from the flushing thread (the async client's
        worker), on a connection of its own: SQLite would otherwise do it inside a commit,
        on the event loop, with two waits for the disk.

        PASSIVE first, writers going on meanwhile: it copies nearly all of the log. Then
        RESTART copies the frames committed during that, with writers held for as long
        (an event loop's commit goes to a worker thread then, see :meth:`transaction`),
        so that the next commit starts the log from its beginning. Without it, under a
        steady flow of orders the log was never wholly copied when a commit began, and
        grew for as long as the flow lasted (34 MB in 4,500 orders), each commit writing
        new blocks (allocated and their size committed at every flush) instead of
        rewriting the same ones. RESTART waits at most 50 ms for the write lock and for
        readers of the log (another process's long read); a checkpoint that fails is
        retried at a later flush, and costs only log length."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0.05
                )
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointer.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:
            log.warning("journal checkpoint deferred: %s", exc)
