"""The async client's group commit: concurrent orders share journal commits and flushes,
and still each order gets its own answer (its own error, its own durable attempt)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from securetrade import AsyncClient, IdempotencyKeyExpired, LimitOrder, OrderStatus
from securetrade.core import IntentState, Journal, JournalStore, RedisJournal, View
from securetrade.core.journal import JournalError
from securetrade.sim import Simulator

ORDER = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="90000")


FRESH = View(IntentState.PENDING, 0)  # a row as claimed: no attempt yet


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


class Counting(Journal):
    """Counts commits (explicit ones, and writes made outside a transaction, each of which
    is its own commit) and the threads that write."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.commits = 0
        self.writers: set[int] = set()
        self._db.set_trace_callback(self._traced)

    def _traced(self, statement: str) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb == "COMMIT" or (
            verb in ("INSERT", "UPDATE", "DELETE") and not self._db.in_transaction
        ):
            self.commits += 1

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        self.writers.add(threading.get_ident())
        return super().begin(*args, **kwargs)


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per fdatasync/fsync made."""
    seen: list[int] = []
    real_datasync, real_fsync = os.fdatasync, os.fsync

    def datasync(fd: int) -> None:
        seen.append(fd)
        real_datasync(fd)

    def fsync(fd: int) -> None:
        seen.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", datasync)
    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def _place_all(sim: Simulator, journal: JournalStore, keys: list[str], **options: Any) -> list[Any]:
    """Place one order per idempotency key concurrently; the order or the error of each."""
    key = options.pop("key", None) or sim.create_key()

    async def run() -> list[Any]:
        async with AsyncClient(
            key, transport=sim.async_transport(), journal=journal, **options
        ) as client:
            await client.recover()
            return await asyncio.gather(
                *(client.place_order(ORDER, idempotency_key=k) for k in keys),
                return_exceptions=True,
            )

    return asyncio.run(run())


def test_concurrent_orders_share_commits_and_flushes(
    sim: Simulator, tmp_path: Path, flushes: list[int]
) -> None:
    journal = Counting(tmp_path / "j.sqlite3")
    flushes.clear()
    journal.commits = 0
    # The widest receive window: on a loaded machine a stamp can age past the default
    # before the venue reads it, and the resend would make a second attempt.
    orders = _place_all(sim, journal, [f"k-{i}" for i in range(50)], recv_window_ms=60_000)
    assert all(o.status is OrderStatus.FILLED for o in orders)
    # Three writes per order (claim, attempt, outcome), one by one 150 commits and 50
    # flushes; grouped, far fewer of each.
    assert journal.commits < 50
    assert 1 <= len(flushes) < 25
    assert journal.writers == {threading.main_thread().ident}  # SQLite: on the loop
    for order in orders:
        intent = journal.get(order.client_order_id)
        assert intent is not None
        assert intent.state is IntentState.FILLED
        assert intent.attempts == 1
    assert _posts(sim) == 50
    journal.close()


def test_flushes_are_made_by_one_batch_thread_that_ends_when_idle(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's own flusher thread makes every fdatasync, as a batch thread (its
    wake-ups do not preempt the event loop), and ends once nothing is left to flush."""
    from securetrade.core import group_commit

    monkeypatch.setattr(group_commit, "_IDLE_S", 0.05)
    seen: list[tuple[str, int]] = []
    real_datasync = os.fdatasync

    def datasync(fd: int) -> None:
        seen.append((threading.current_thread().name, os.sched_getscheduler(0)))
        real_datasync(fd)

    monkeypatch.setattr(os, "fdatasync", datasync)
    journal = Journal(tmp_path / "j.sqlite3")
    seen.clear()
    orders = _place_all(sim, journal, [f"k-{i}" for i in range(20)], recv_window_ms=60_000)
    assert all(o.status is OrderStatus.FILLED for o in orders)
    assert seen
    assert {name for name, _ in seen} == {"securetrade-journal-flush"}
    if hasattr(os, "SCHED_BATCH"):
        assert {policy for _, policy in seen} == {os.SCHED_BATCH}
    deadline = time.monotonic() + 10
    while any(t.name == "securetrade-journal-flush" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the flusher thread did not end"
        time.sleep(0.01)
    assert os.sched_getscheduler(0) != getattr(os, "SCHED_BATCH", -1)  # the loop's thread
    journal.close()


def test_a_flusher_thread_that_is_gone_is_replaced(sim: Simulator, tmp_path: Path) -> None:
    """As in a child made by fork() with its parent's journal object: the thread the group
    knows of does not run there, and the next round starts one instead of waiting on it."""
    from securetrade.core.group_commit import GroupCommit

    journal = Journal(tmp_path / "j.sqlite3")
    gone = threading.Thread(target=lambda: None)
    gone.start()
    gone.join()
    GroupCommit.of(journal)._flusher = gone

    async def run() -> Any:
        async with AsyncClient(
            sim.create_key(), transport=sim.async_transport(), journal=journal
        ) as client:
            return await asyncio.wait_for(client.place_order(ORDER, idempotency_key="k"), 20)

    assert asyncio.run(run()).status is OrderStatus.FILLED
    journal.close()


def test_an_expired_key_fails_only_its_own_order(sim: Simulator, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3", retention=0.2, tombstone_ttl=60)
    key = sim.create_key()
    (first,) = _place_all(sim, journal, ["old"], key=key)
    time.sleep(0.3)
    assert journal.purge() == 1  # "old" is now a tombstone that refuses the key
    results = _place_all(sim, journal, ["old", *(f"new-{i}" for i in range(9))], key=key)
    assert isinstance(results[0], IdempotencyKeyExpired)
    assert results[0].client_order_id == first.client_order_id
    assert all(r.status is OrderStatus.FILLED for r in results[1:])
    assert _posts(sim) == 10  # the first "old", then the nine new ones
    journal.close()


def test_a_failed_flush_sends_nothing(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    monkeypatch.setattr(os, "fsync", broken)
    results = _place_all(sim, journal, [f"k-{i}" for i in range(10)])
    assert all(isinstance(r, JournalError) for r in results), results
    assert len({id(r) for r in results}) == len(results)  # each order raises its own
    assert _posts(sim) == 0  # not durable, so not sent
    journal.close()


def test_each_new_event_loop_gets_a_working_group(sim: Simulator, tmp_path: Path) -> None:
    """asyncio.run twice with one client (a notebook restarting its loop)."""
    journal = Journal(tmp_path / "j.sqlite3")
    client = AsyncClient(sim.create_key(), transport=sim.async_transport(), journal=journal)

    async def some(prefix: str) -> list[Any]:
        return await asyncio.gather(
            *(client.place_order(ORDER, idempotency_key=f"{prefix}-{i}") for i in range(5))
        )

    first = asyncio.run(some("a"))
    second = asyncio.run(some("b"))
    assert all(o.status is OrderStatus.FILLED for o in first + second)
    assert _posts(sim) == 10
    journal.close()


@pytest.fixture
def redis_journal(redis_url: str) -> Iterator[RedisJournal]:
    class Watched(RedisJournal):
        """Records the threads that make each call."""

        writers: ClassVar[set[int]] = set()

        def begin(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().begin(*args, **kwargs)

        def lease(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().lease(*args, **kwargs)

        def purge(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().purge(*args, **kwargs)

        def unfinished(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().unfinished(*args, **kwargs)

        def known(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().known(*args, **kwargs)

        def release(self, *args: Any, **kwargs: Any) -> Any:
            self.writers.add(threading.get_ident())
            return super().release(*args, **kwargs)

    journal = Watched.create(redis_url, prefix=f"group-{os.getpid()}-{time.monotonic_ns()}:")
    yield journal
    journal.close()


def test_redis_journal_writes_leave_the_event_loop(sim: Simulator, redis_journal: Any) -> None:
    """A Redis journal call is network I/O: the async client makes it in a worker thread,
    on the order path (claims) and in recovery (lease, purge, unfinished, known)."""
    orders = _place_all(sim, redis_journal, [f"r-{i}" for i in range(20)])
    assert all(o.status is OrderStatus.FILLED for o in orders)
    assert redis_journal.writers
    assert threading.main_thread().ident not in redis_journal.writers
    for order in orders:
        intent = redis_journal.get(order.client_order_id)
        assert intent is not None
        assert intent.state is IntentState.FILLED


def test_a_transaction_is_one_commit_and_rolls_back_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    with journal.transaction():
        journal.begin("a", "cid-a", "acct", "BTCUSDT", "fp")
        journal.begin("b", "cid-b", "acct", "BTCUSDT", "fp")
        seen: list[Any] = []
        other = threading.Thread(target=lambda: seen.append(journal.get("cid-a")))
        other.start()
        other.join(0.2)
        assert other.is_alive()  # another thread waits for the commit
    other.join(5)
    assert seen
    assert seen[0] is not None

    def interrupted() -> None:
        with journal.transaction():
            journal.begin("c", "cid-c", "acct", "BTCUSDT", "fp")
            assert journal.sending_many([("cid-a", FRESH, 1)], flush=False) == [True]
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        interrupted()
    assert journal.get("cid-c") is None
    assert journal.get("cid-a").attempts == 0  # type: ignore[union-attr]
    journal.close()


def test_an_answer_learned_later_is_not_overwritten_by_an_older_one(sim: Simulator) -> None:
    """The place reply's outcome write is queued; a cancel answered meanwhile (another task)
    is written after it, through the same queue, so the row ends with the later fact."""
    from securetrade.sim import AsyncSimTransport
    from securetrade.transport.base import HttpRequest, HttpResponse

    resting = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="50000")
    journal = Journal(":memory:")
    cancels: list[asyncio.Task[Any]] = []

    class CancelAtOnce(AsyncSimTransport):
        async def send(self, request: HttpRequest) -> HttpResponse:
            response = await super().send(request)
            if request.method == "POST" and not cancels:  # the order's reply is in
                cid = client.core.venue.client_order_id(client.core.account, "k")
                cancels.append(
                    asyncio.get_running_loop().create_task(
                        client.cancel_order("BTCUSDT", client_order_id=cid)
                    )
                )
            return response

    client = AsyncClient(sim.create_key(), transport=CancelAtOnce(sim), journal=journal)

    async def run() -> tuple[Any, Any, Any]:
        await client.recover()
        placed = await client.place_order(resting, idempotency_key="k")
        canceled = await cancels[0]
        replay = await client.place_order(resting, idempotency_key="k")
        return placed, canceled, replay

    placed, canceled, replay = asyncio.run(run())
    assert placed.status is OrderStatus.NEW
    assert canceled.status is OrderStatus.CANCELED
    intent = journal.get(placed.client_order_id)
    assert intent is not None
    assert intent.state is IntentState.CANCELED
    assert replay.status is OrderStatus.CANCELED


@pytest.mark.parametrize("step", ["Claim", "Persist"])
def test_a_task_cancelled_while_its_write_waits_leaves_no_trace(sim: Simulator, step: str) -> None:
    """Cancelled before the group took its write: the write never happens (a queued attempt
    applied after the flow was closed would say SENDING for an order never sent). A new
    key's first write is its claim fused with attempt 1; a later attempt is a Persist (here
    the resend of a key proven NOT_PLACED)."""
    from securetrade.core.effects import Claim, Persist
    from securetrade.core.group_commit import GroupCommit

    kind = {"Claim": Claim, "Persist": Persist}[step]
    journal = Journal(":memory:")
    client = AsyncClient(sim.create_key(), transport=sim.async_transport(), journal=journal)

    class CancelWhileQueued(GroupCommit):
        async def perform(self, call: Any) -> Any:
            if type(call) is kind:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # lands at the await inside perform()
            return await super().perform(call)

    client.__dict__["_group"] = CancelWhileQueued(journal)
    cid = client.core.venue.client_order_id(client.core.account, "k")
    if step == "Persist":
        journal.begin("k", cid, client.core.account, ORDER.symbol, ORDER.fingerprint())
        assert journal.settle(cid, IntentState.NOT_PLACED, expect=View(IntentState.PENDING, 0))

    async def run() -> None:
        await client.recover()
        with pytest.raises(asyncio.CancelledError):
            await client.place_order(ORDER, idempotency_key="k")
        for _ in range(5):  # let a drain run, if anything was left queued
            await asyncio.sleep(0)

    asyncio.run(run())
    intent = journal.get(cid)
    if step == "Claim":
        assert intent is None
    else:
        assert intent is not None
        assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 0)
    assert _posts(sim) == 0


def test_a_closed_or_once_failed_journal_never_reports_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "a.sqlite3")
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.flush()

    journal = Journal(tmp_path / "b.sqlite3")
    journal.begin("k", "cid", "acct", "BTCUSDT", "fp")
    real = os.fdatasync

    def fails_once(fd: int) -> None:
        monkeypatch.setattr(os, "fdatasync", real)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", fails_once)
    with pytest.raises(JournalError):
        journal.sending("cid", FRESH, 1)
    # The disk answers again, but what the failed flush held may be lost: still refused.
    with pytest.raises(JournalError, match="reopen"):
        journal.flush()
    journal.close()


def test_the_log_is_checkpointed_by_flushes_not_by_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A durable journal leaves checkpoints (two waits for the disk) to its flushes, which
    the async client makes in a worker thread, never to a commit on the event loop."""
    from securetrade.core import journal_durability as journal_module

    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY", 4)
    journal = Journal(tmp_path / "j.sqlite3")
    checkpoints: list[str] = []
    committing: list[str] = []
    journal._db.set_trace_callback(committing.append)
    cids = [_claim(journal, n) for n in range(8)]
    for cid in cids:
        journal.sending(cid, FRESH, 1)
    assert journal._checkpointer is not None
    journal._checkpointer.set_trace_callback(checkpoints.append)
    for cid in cids:
        journal.settle(cid, IntentState.FILLED)
        journal.sending(cid, View(IntentState.SENDING, 10), 1)  # nothing to claim: no flush
    for n in range(8, 12):
        journal.sending(_claim(journal, n), FRESH, 1)
    assert checkpoints == ["PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA wal_checkpoint(RESTART)"]
    assert not any("checkpoint" in statement for statement in committing)
    assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    journal.close()


def _claim(journal: Journal, n: int) -> str:
    cid = f"st{n:030d}"
    journal.begin(f"key-{n}", cid, "acct", "BTCUSDT", "fp")
    return cid


def test_one_client_serves_one_running_event_loop_at_a_time(sim: Simulator) -> None:
    """Two threads, each with its own loop, sharing one client would take each other's
    queue and pool: the second is refused with a clear error before anything is written."""
    from securetrade import InvalidRequest

    journal = Journal(":memory:")
    client = AsyncClient(sim.create_key(), transport=sim.async_transport(), journal=journal)
    holding, release = threading.Event(), threading.Event()
    results: list[Any] = []

    async def hold() -> None:
        results.append(await client.place_order(ORDER, idempotency_key="first-loop"))
        holding.set()
        await asyncio.to_thread(release.wait, 30)

    other = threading.Thread(target=lambda: asyncio.run(hold()))
    other.start()
    try:
        assert holding.wait(30)
        with pytest.raises(InvalidRequest, match="one client per event loop"):
            asyncio.run(client.place_order(ORDER, idempotency_key="second-loop"))
    finally:
        release.set()
        other.join(30)
    assert results[0].status is OrderStatus.FILLED
    refused = client.core.venue.client_order_id(client.core.account, "second-loop")
    assert journal.get(refused) is None
    assert _posts(sim) == 1
    # The first loop has ended: a new one is welcome.
    third = asyncio.run(client.place_order(ORDER, idempotency_key="third"))
    assert third.status is OrderStatus.FILLED


def test_a_journal_held_by_another_process_is_waited_for_off_the_event_loop(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the journal file's write lock: the loop does not wait for it
    (up to SQLite's 30 s busy timeout); the group's transaction goes to a worker thread,
    which waits, and the orders go through once the lock is released."""
    import sqlite3

    from securetrade.core import group_commit

    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    waited_in: list[int] = []
    real = group_commit._in_transaction

    def watched(journal: Journal, calls: list[Any]) -> list[Any]:
        waited_in.append(threading.get_ident())
        return real(journal, calls)

    monkeypatch.setattr(group_commit, "_in_transaction", watched)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # elsewhere

    async def run() -> list[Any]:
        async with AsyncClient(
            sim.create_key(), transport=sim.async_transport(), journal=journal
        ) as client:
            await client.recover()
            other.execute("BEGIN IMMEDIATE")
            threading.Timer(0.5, lambda: other.execute("ROLLBACK")).start()
            return await asyncio.gather(
                *(client.place_order(ORDER, idempotency_key=k) for k in ("held-1", "held-2"))
            )

    orders = asyncio.run(run())
    other.close()
    journal.close()
    assert all(o.status is OrderStatus.FILLED for o in orders), orders
    assert waited_in
    assert threading.main_thread().ident not in waited_in


def test_a_journal_that_served_orders_is_freed_once_its_clients_are_gone(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group commits are kept per journal, weakly: a platform that opens and closes
    journals (one per follower batch, per tenant) must not keep every one it ever used."""
    import gc
    import weakref

    from securetrade.core import group_commit

    monkeypatch.setattr(group_commit, "_IDLE_S", 0.05)
    journal = Journal(tmp_path / "j.sqlite3")
    orders = _place_all(sim, journal, ["k-1", "k-2"], recv_window_ms=60_000)
    assert all(o.status is OrderStatus.FILLED for o in orders)
    deadline = time.monotonic() + 10
    while any(t.name == "securetrade-journal-flush" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the flusher thread did not end"
        time.sleep(0.01)
    journal.close()
    gone = weakref.ref(journal)
    del journal, orders
    gc.collect()
    assert gone() is None, "the journal is still referenced after its clients closed"
