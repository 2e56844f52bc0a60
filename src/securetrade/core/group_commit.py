"""The async client's group commit: the journal writes of concurrent orders share commits.

Every order writes the journal three times: its claim, its attempt (durable before the
first byte) and its outcome; twice when its claim and first attempt are fused. Made one
by one on the event loop, those commits cost more CPU than the rest of the order.
Grouped, the writes of every order ready in one loop turn share one transaction, and the
attempts among them one ``fdatasync``, made in a thread of the group's own while the loop
goes on serving replies. Each order still waits for its own write: an attempt is answered
only once a flush that began after its commit has returned.
Reads of a row on the order path (:class:`~.flows.Lookup`) take the same queue, so they
see every write queued before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import sqlite3
import threading
import weakref
from typing import Any

from ..errors import InvalidRequest
from .effects import Claim, JournalCall, Persist
from .journal import Journal, JournalBusy, JournalError, JournalStore

__all__ = ["GroupCommit"]


class _Raised:
    """A write of the batch that raised (an expired key): its order alone gets the error."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def apply_all(journal: JournalStore, calls: list[JournalCall]) -> list[Any]:
    """Perform ``calls`` in order; a result, or :class:`_Raised`, per call.

    The attempts go to the journal in one ``sending_many`` call; in SQLite they are not
    flushed here (the caller flushes once for the batch). A refusal (an expired key) is
    that write's alone; a database error is raised, so that the whole transaction rolls
    back rather than keep half of a write.
    """
    attempts = [(w.client_order_id, w.seen, w.deadline_ms) for w in calls if type(w) is Persist]
    claimed: list[Any] = []
    if attempts:
        try:
            if isinstance(journal, Journal):
                claimed = list(journal.sending_many(attempts, flush=False))
            else:
                claimed = list(journal.sending_many(attempts))
        except sqlite3.Error:
            raise
        except Exception as exc:
            claimed = [_Raised(exc)] * len(attempts)
    claims = iter(claimed)
    results: list[Any] = []
    for call in calls:
        if type(call) is Persist:
            results.append(next(claims))
            continue
        try:
            results.append(call.apply(journal))
        except sqlite3.Error:
            raise
        except Exception as exc:
            results.append(_Raised(exc))
    return results


class GroupCommit:
    """Queues the journal calls of one event loop's orders and commits them in groups.

    One per journal (:meth:`of`): every client writing to a journal (a copy engine's
    followers, say) joins the same groups, so their orders share commits too.
    """

    @classmethod
    def of(cls, journal: JournalStore) -> GroupCommit:
        """The group commit of ``journal``, made on first use."""
        group = _GROUPS.get(journal)
        if group is None:
            group = _GROUPS.setdefault(journal, cls(journal))
        return group

    def __init__(self, journal: JournalStore) -> None:
        # Not the journal itself: _GROUPS is keyed by it, weakly, and a strong reference
        # from its own value would keep every journal a group commit ever served alive.
        self._journal_ref = weakref.ref(journal)
        self._sqlite = isinstance(journal, Journal)
        self._needs_flush = isinstance(journal, Journal) and journal.needs_flush
        self._queue: list[tuple[JournalCall, asyncio.Future[Any]]] = []
        # Attempts committed, not yet on disk, each with the answer it gets once it is,
        # by round: the number of the commit that made them (see _flush_rounds).
        self._unflushed: list[tuple[int, list[tuple[asyncio.Future[Any], Any]]]] = []
        self._committed = 0  # rounds committed so far; read by the flusher, under _wake
        self._wake = threading.Condition(threading.Lock())
        self._flusher: threading.Thread | None = None
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def _journal(self) -> JournalStore:
        journal = self._journal_ref()
        if journal is None:  # only its clients call: they hold it (the flusher too)
            raise JournalError("this group commit's journal no longer exists")
        return journal

    async def perform(self, call: JournalCall) -> Any:
        """Perform ``call`` with the others of this loop turn; its result, or its error."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (asyncio.run again): start afresh
            _check_one_loop(self._loop)
            self._queue, self._unflushed = [], []
            self._draining = None
            with self._wake:  # read by the flusher, which wakes this loop
                self._loop = loop
        future: asyncio.Future[Any] = loop.create_future()
        item = (call, future)
        self._queue.append(item)
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        try:
            return await future
        except asyncio.CancelledError:
            if item in self._queue:  # not taken yet: it never happens
                self._queue.remove(item)
            raise

    async def _drain(self) -> None:
        try:
            while self._queue:
                await asyncio.sleep(0)  # let every order ready in this loop turn join
                batch, self._queue = self._queue, []
                calls = [call for call, _ in batch]
                try:
                    if self._sqlite:
                        journal = self._journal
                        assert isinstance(journal, Journal)
                        try:
                            with journal.transaction(wait=False):  # a commit, no disk wait
                                results = apply_all(journal, calls)
                        except JournalBusy:  # held elsewhere: wait for it off the loop
                            results = await asyncio.to_thread(_in_transaction, journal, calls)
                    else:  # another store (Redis): its calls are network I/O
                        results = await asyncio.to_thread(apply_all, self._journal, calls)
                except Exception as exc:  # the transaction failed: none of them happened
                    _fail(batch, _journal_error(exc))
                    continue
                except BaseException:
                    _cancel(batch)
                    raise
                try:
                    self._answer(batch, results)
                except BaseException as exc:  # never leave a task waiting for an answer
                    _fail(batch, _journal_error(exc))
                    raise
        finally:
            self._draining = None

    def _answer(
        self, batch: list[tuple[JournalCall, asyncio.Future[Any]]], results: list[Any]
    ) -> None:
        durable = self._needs_flush
        waiting: list[tuple[asyncio.Future[Any], Any]] = []
        for (call, future), result in zip(batch, results, strict=True):
            if future.done():  # its task was cancelled meanwhile
                continue
            if isinstance(result, _Raised):
                future.set_exception(_own(result.error))
            elif durable and result is True and type(call) is Persist:
                waiting.append((future, True))
            elif durable and type(call) is Claim and call.durable and result[1]:
                waiting.append((future, result))  # a claim fused with attempt 1
            else:
                future.set_result(result)
        if waiting:
            self._flush_after(waiting)

    def _flush_after(self, waiting: list[tuple[asyncio.Future[Any], Any]]) -> None:
        """Have the flusher thread flush the round just committed, then answer ``waiting``."""
        with self._wake:
            self._committed += 1
            self._unflushed.append((self._committed, waiting))
            if self._flusher is None or not self._flusher.is_alive():  # none, or not in
                # this process (a child made by fork() with its parent's journal object)
                self._flusher = threading.Thread(
                    target=self._flush_rounds, name="securetrade-journal-flush", daemon=True
                )
                self._flusher.start()
            else:
                self._wake.notify()

    def _flush_rounds(self) -> None:
        """The flusher thread: flush for as long as rounds are committed, and wake the loop
        once per flush with the last round it covers, every round committed before the flush
        began (a round committed during it waits for the next). Ends after _IDLE_S idle.

        Its own thread, rather than one of the loop's default executor, so that it can be
        a batch thread (below): every ``fdatasync`` woke a worker that took the one CPU
        from the event loop at once, and each of its returns to Python then took the GIL
        from the loop, with two context switches each (about 17 per flush)."""
        _batch_thread()
        journal = self._journal
        assert isinstance(journal, Journal)
        done = 0
        while True:
            with self._wake:
                while self._committed <= done:
                    if not self._wake.wait(_IDLE_S) and self._committed <= done:
                        self._flusher = None
                        return
                covered, loop = self._committed, self._loop
            try:
                journal.flush()
                error: BaseException | None = None
            except BaseException as exc:  # not durable: those orders must not be sent
                error = exc
            done = covered
            try:
                if loop is not None:
                    loop.call_soon_threadsafe(self._flushed, covered, error)
            except RuntimeError:  # that loop is closed: nobody waits for its rounds
                pass

    def _flushed(self, covered: int, error: BaseException | None) -> None:
        """On the loop: answer the attempts of every round up to ``covered``, with the
        flush's error if it failed."""
        rounds = self._unflushed
        n = 0
        while n < len(rounds) and rounds[n][0] <= covered:
            n += 1
        answered, self._unflushed = rounds[:n], rounds[n:]
        failure = None if error is None else _journal_error(error)
        for _, waiting in answered:
            for future, answer in waiting:
                if future.done():  # its task was cancelled meanwhile
                    continue
                if failure is None:
                    future.set_result(answer)
                else:
                    future.set_exception(_own(failure))


# How long the flusher thread waits for another round before it ends.
_IDLE_S = 1.0


def _batch_thread() -> None:
    """Make the calling thread a batch thread (Linux): its wake-ups do not preempt the
    running thread, here the event loop. Its share of the CPU is unchanged, so a flush
    is never starved; it runs when the loop waits (for the flush, or for replies) or its
    time slice ends, and the commits made meanwhile join the next flush."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    with contextlib.suppress(OSError):  # refused (a sandbox): flushes work, only dearer
        os.sched_setscheduler(0, policy, os.sched_param(0))


_GROUPS: weakref.WeakKeyDictionary[JournalStore, GroupCommit] = weakref.WeakKeyDictionary()


def _in_transaction(journal: Journal, calls: list[JournalCall]) -> list[Any]:
    with journal.transaction():
        return apply_all(journal, calls)


def _check_one_loop(previous: asyncio.AbstractEventLoop | None) -> None:
    """Refuse a second event loop while the first still runs (two threads sharing one
    client): each would take the other's queue and leave its orders waiting forever."""
    if previous is not None and previous.is_running():
        raise InvalidRequest(
            "this AsyncClient, or its journal, is in use on another running event loop: make "
            "one client per event loop (thread), each with a Journal object of its own (the "
            "same file is fine)"
        )


def _journal_error(exc: BaseException) -> Exception:
    """What the orders of a failed batch raise: the database's errors as
    :class:`JournalError` (the cause kept), ours as they are."""
    if isinstance(exc, sqlite3.Error):
        error = JournalError(f"the journal could not record the order: {exc}")
        error.__cause__ = exc
        return error
    if isinstance(exc, Exception):
        return exc
    return JournalError(f"the journal write was interrupted: {exc!r}")


def _own(error: Exception) -> Exception:
    """A copy of ``error`` for one order: each task raising the same object would grow one
    traceback across all of them."""
    try:
        clone = copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error
    clone.__cause__ = error.__cause__
    return clone


def _fail(batch: list[tuple[JournalCall, asyncio.Future[Any]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(_own(error))


def _cancel(batch: list[tuple[JournalCall, asyncio.Future[Any]]]) -> None:
    for _, future in batch:
        future.cancel()
