"""The async client's group commit: the journal writes of concurrent orders share commits.

Every order writes the journal three times: its claim, its attempt (durable before the
first byte) and its outcome; twice when its claim and first attempt are fused. Made one
by one on the event loop, those commits cost more CPU than the rest of the order.
Grouped, the writes of every order ready in one loop turn share one transaction, and the
attempts among them one ``fdatasync``. Each order still waits for its own write: an
attempt is answered only once a flush that began after its commit has returned.

Where the flush is waited for depends on the disk. Handing it to a worker thread lets the
loop serve replies meanwhile, but the hand-off costs the process context switches and
GIL round trips: measured on a 2-CPU VM, about 0.5 ms of CPU per flush round, 20% of an
order's CPU under load. A disk that syncs the log in well under that (most local SSDs) is
cheaper to wait for on the loop, so the flush is made there while the smoothed
``fdatasync`` time stays under ``INLINE_FLUSH_S``. When a disk is slower, or slows down,
the flushes go to a thread for ``THREAD_PERIOD_S``; then one flush on the loop measures
the disk again. The loop is thus held up at most once a period by a slow disk.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import weakref
from typing import Any, Final

from ..errors import InvalidRequest
from .effects import Claim, JournalCall, Persist
from .journal import Journal, JournalBusy, JournalError, JournalStore

__all__ = ["INLINE_FLUSH_S", "THREAD_PERIOD_S", "GroupCommit"]

#: A flush is waited for on the event loop while the smoothed ``fdatasync`` time of the
#: journal's log stays under this many seconds; above it, in a worker thread.
INLINE_FLUSH_S: Final = 0.001
#: How long flushes go to a worker thread once the disk was measured slow.
THREAD_PERIOD_S: Final = 1.0
#: Weight of the newest ``fdatasync`` time in the smoothed one: a 3 ms hiccup on a disk
#: that usually takes 0.2 ms is ridden out on the loop; one 10 ms flush, or a disk that
#: stays at 2 ms for a few flushes, sends the next ones to the thread.
_SMOOTHING: Final = 0.1


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
        self._journal = journal
        self._sqlite = isinstance(journal, Journal)
        self._needs_flush = isinstance(journal, Journal) and journal.needs_flush
        self._queue: list[tuple[JournalCall, asyncio.Future[Any]]] = []
        # Attempts committed, not yet on disk, each with the answer it gets once it is.
        self._unflushed: list[tuple[asyncio.Future[Any], Any]] = []
        self._draining: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_s: float | None = None  # smoothed fdatasync seconds on the loop
        self._thread_until = 0.0  # loop time until which flushes go to a worker thread

    async def perform(self, call: JournalCall) -> Any:
        """Perform ``call`` with the others of this loop turn; its result, or its error."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (asyncio.run again): start afresh
            _check_one_loop(self._loop)
            self._queue, self._unflushed = [], []
            self._draining = self._flushing = None
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
        for (call, future), result in zip(batch, results, strict=True):
            if future.done():  # its task was cancelled meanwhile
                continue
            if isinstance(result, _Raised):
                future.set_exception(_own(result.error))
            elif durable and result is True and type(call) is Persist:
                self._unflushed.append((future, True))
            elif durable and type(call) is Claim and call.durable and result[1]:
                self._unflushed.append((future, result))  # a claim fused with attempt 1
            else:
                future.set_result(result)
        if self._unflushed and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Flush rounds until no committed attempt waits: each round covers the commits
        made before it began; attempts committed during a round wait for the next."""
        journal = self._journal
        assert isinstance(journal, Journal)
        try:
            while self._unflushed:
                waiting, self._unflushed = self._unflushed, []
                try:
                    loop = asyncio.get_running_loop()
                    if loop.time() >= self._thread_until and journal.flush_here():
                        self._learn(journal.last_sync_s, loop)
                    else:
                        await asyncio.to_thread(journal.flush)
                except Exception as exc:  # not durable: those orders must not be sent
                    error = _journal_error(exc)
                    for future, _ in waiting:
                        if not future.done():
                            future.set_exception(_own(error))
                    continue
                except BaseException:
                    for future, _ in waiting:
                        future.cancel()
                    raise
                for future, answer in waiting:
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._flushing = None

    def _learn(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """Fold a flush made on the loop into the smoothed ``fdatasync`` time; past
        ``INLINE_FLUSH_S``, send the next ``THREAD_PERIOD_S`` of flushes to a thread.
        (Only flushes made here are timed: in a thread, the wait for the GIL after the
        ``fdatasync`` would count as the disk's.)"""
        before = self._sync_s
        smoothed = seconds if before is None else before + _SMOOTHING * (seconds - before)
        if smoothed < INLINE_FLUSH_S:
            self._sync_s = smoothed
        else:  # measured afresh by the first flush on the loop after the period
            self._sync_s = None
            self._thread_until = loop.time() + THREAD_PERIOD_S


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
