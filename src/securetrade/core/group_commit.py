"""The async client's group commit: the journal writes of concurrent orders share commits.

Every order writes the journal three times: its claim, its attempt (durable before the
first byte) and its outcome; twice when its claim and first attempt are fused. Made one
by one on the event loop, those commits cost more CPU than the rest of the order.
Grouped, the writes of every order ready in one loop turn share one transaction, and the
attempts among them one ``fdatasync``, made in a worker thread while the loop goes on
serving replies. Each order still waits for its own write: an attempt is answered only
once a flush that began after its commit has returned.
Reads of a row on the order path (:class:`~.flows.Lookup`) take the same queue, so they
see every write queued before them.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
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
        self._journal = journal
        self._sqlite = isinstance(journal, Journal)
        self._needs_flush = isinstance(journal, Journal) and journal.needs_flush
        self._queue: list[tuple[JournalCall, asyncio.Future[Any]]] = []
        # Attempts committed, not yet on disk, each with the answer it gets once it is.
        self._unflushed: list[tuple[asyncio.Future[Any], Any]] = []
        self._draining: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
