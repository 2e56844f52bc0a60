"""Copy trading on several hosts: worker processes in one Redis Streams consumer group.

Real redis-server, the simulator over TLS, workers as separate processes. Every verdict
about orders is read from the venue's book: per follower, one order per event, whoever
died, froze or claimed what. A dead worker is left unreaped (a zombie) while the others
take over, so it looks alive to them, as a worker on another host would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets as random_names
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import InvalidRequest, JournalError, Settings
from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, copy_key
from securetrade.keys import Secret
from securetrade.sim import HttpsServer, SimLimits, Simulator
from securetrade.venues import get_venue

pytestmark = pytest.mark.redis

SECRET = Secret(b"copy-engine-test-secret-0000")
RICH = {"USDT": Decimal(1_000_000), "BTC": Decimal(10)}
WORKER = str(Path(__file__).with_name("copy_stream_worker.py"))
RECV_WINDOW_MS = get_venue("binance").recv_window_ms


@pytest.fixture
def venue() -> Any:
    limits = SimLimits(weight=10**8, orders=10**7, orders_seconds=10)
    with Simulator(limits=limits) as sim:
        yield sim


@pytest.fixture
def served(venue: Simulator) -> HttpsServer:
    return venue.serve_fast()


def _leader(sim: Simulator, event_id: str) -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", "BUY", "0.01", price, int(time.time() * 1000))


def _followers(sim: Simulator, n: int) -> list[Follower]:
    return [
        Follower(
            f"f{i}",
            sim.create_key(balances=RICH),
            Sizing("fixed_notional", "100"),
            slippage_bps=Decimal(300),
            ttl_ms=600_000,
        )
        for i in range(n)
    ]


def _orders_of(sim: Simulator, event: LeaderEvent, follower: Follower) -> int:
    """Orders the venue holds for this follower's copy of ``event`` (the oracle)."""
    cid = get_venue("binance").client_order_id(
        follower.account, copy_key(SECRET, event.id, follower.id, 0)
    )
    return len(sim.market.orders_with_client_id(cid))


class Group:
    """One stream, its consumer group, a shared journal, and the worker processes."""

    def __init__(self, redis_url: str, served: HttpsServer, followers: list[Follower]) -> None:
        from securetrade.core import RedisJournal

        self.redis_url = redis_url
        self.stream = f"copy-events-{random_names.token_hex(4)}"
        prefix = f"copy:{random_names.token_hex(4)}:"
        RedisJournal.create(redis_url, prefix=prefix).close()
        self.job = {
            "secret": SECRET.expose().decode(),
            "connect": {"base_url": served.base_url, "pins": served.pins, "cadata": served.ca_pem},
            "redis": redis_url,
            "prefix": prefix,
            "stream": self.stream,
            "followers": [
                {"id": f.id, "key_id": f.key.key_id, "secret": f.key.secret.expose().decode()}
                for f in followers
            ],
        }
        self.workers: list[subprocess.Popen[str]] = []

    def start(self, at: str = "", **extra: Any) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [sys.executable, WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        name = f"worker-{len(self.workers)}"
        child.stdin.write(json.dumps({**self.job, "name": name, "at": at, **extra}))
        child.stdin.close()
        self.workers.append(child)
        assert child.stdout.readline().strip() == "ready"
        return child

    def publish(self, events: list[LeaderEvent]) -> None:
        from securetrade.copy import EventStream

        async def put() -> None:
            stream = EventStream(self.redis_url, stream=self.stream)
            for event in events:
                await stream.publish(event)
            await stream.close()

        asyncio.run(put())

    def settled(self, admin: Any) -> bool:
        """Every entry delivered and acknowledged."""
        group = admin.xinfo_groups(self.stream)[0]
        last = admin.xinfo_stream(self.stream)["last-generated-id"]
        return bool(group["pending"] == 0 and group["last-delivered-id"] == last)

    def close(self) -> list[tuple[str, str]]:
        """Kill what still runs, reap every worker; returns each one's stdout and stderr."""
        outputs = []
        for child in self.workers:
            if child.poll() is None:
                child.kill()
            child.wait()
            assert child.stdout is not None
            assert child.stderr is not None
            outputs.append((child.stdout.read(), child.stderr.read()))
            child.stdout.close()
            child.stderr.close()
        return outputs


def _exited(child: subprocess.Popen[str]) -> bool:
    """Whether ``child`` has exited, without reaping it: a zombie's pid still answers
    ``kill(pid, 0)``, so the other workers cannot tell it died (as across hosts)."""
    info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


@pytest.mark.parametrize("at", ["lease", "claimed", "placed:1", "placed:8", "before_ack"])
@pytest.mark.timeout(240)
def test_a_worker_killed_at_each_step_has_its_events_completed_within_the_takeover_bound(
    venue: Simulator, served: HttpsServer, redis_url: str, at: str
) -> None:
    """Three workers share 6 events for 15 followers; the first is SIGKILLed at ``at``
    while it copies the first event. Another worker claims its entry and completes it
    within the takeover bound computed from the settings in force (docs/copy-trading.md),
    and each follower has exactly one order per event at the venue."""
    import redis as redis_sync

    from securetrade.copy import takeover_bound

    followers = _followers(venue, 15)
    events = [_leader(venue, f"stream-fill-{i}") for i in range(6)]
    group = Group(redis_url, served, followers)
    bound = takeover_bound(Settings(), recv_window_ms=RECV_WINDOW_MS)
    admin = redis_sync.Redis.from_url(redis_url)
    try:
        doomed = group.start(at)
        group.publish(events[:1])
        assert doomed.stdout is not None
        assert doomed.stdout.readline().split() == ["copy", events[0].id]  # it has the entry
        group.start()
        group.start()
        group.publish(events[1:])
        give_up = time.monotonic() + 3 * bound
        while not _exited(doomed) and time.monotonic() < give_up:
            time.sleep(0.02)
        assert _exited(doomed), "the worker never reached its kill point"
        said, when = doomed.stdout.readline().split()
        assert said == "dying"
        while not group.settled(admin) and time.monotonic() < give_up:
            time.sleep(0.1)
        took = time.time() - float(when)  # from the moment it killed itself
        assert group.settled(admin), "the dead worker's entry was never completed"
    finally:
        outputs = group.close()
        admin.close()
    assert doomed.returncode == -signal.SIGKILL, outputs[0][1]
    print(f"takeover at {at}: {took:.1f} s, {took / bound:.2f} of the bound")
    assert took <= bound, f"takeover took {took:.1f} s, over the bound of {bound:.1f} s"
    for event in events:
        assert [_orders_of(venue, event, f) for f in followers] == [1] * 15, event.id


@pytest.mark.timeout(240)
def test_a_frozen_worker_resumed_after_a_takeover_places_nothing_twice(
    venue: Simulator, served: HttpsServer, redis_url: str
) -> None:
    """A worker holding three entries is frozen (SIGSTOP) in the middle of the first
    fan-out, past the claim idle time; another claims the three and completes them. The
    frozen one is then resumed (SIGCONT): it finishes its fan-out under the same keys,
    leaves the two entries it never started to their new owner, and the venue holds one
    order per follower per event."""
    import redis as redis_sync

    from securetrade.copy import takeover_bound

    followers = _followers(venue, 10)
    events = [_leader(venue, f"frozen-fill-{i}") for i in range(3)]
    group = Group(redis_url, served, followers)
    bound = takeover_bound(Settings(), recv_window_ms=RECV_WINDOW_MS)
    admin = redis_sync.Redis.from_url(redis_url)
    group.publish(events)
    try:
        frozen = group.start("stop:4")  # its first read takes all three entries
        assert frozen.stdout is not None
        assert frozen.stdout.readline().split() == ["copy", events[0].id]
        stopped = os.waitid(os.P_PID, frozen.pid, os.WSTOPPED | os.WNOWAIT)
        assert stopped is not None
        assert stopped.si_status == signal.SIGSTOP
        assert frozen.stdout.readline().startswith("dying ")
        group.start()
        give_up = time.monotonic() + 3 * bound
        while not group.settled(admin) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert group.settled(admin), "the frozen worker's entries were never taken over"
        assert frozen.poll() is None  # still frozen, alive
        os.kill(frozen.pid, signal.SIGCONT)
        # Resumed: it finishes the fan-out it was in; give it time to do so, and to try
        # the two entries it never started.
        time.sleep(3)
        assert frozen.poll() is None
    finally:
        outputs = group.close()
        admin.close()
    for event in events:
        assert [_orders_of(venue, event, f) for f in followers] == [1] * 10, event.id
    out, err = outputs[0]
    # Resumed, it copied only the event it was in: the two others were the taker's.
    assert out == "", err  # after its first event's "copy" and "dying" lines, read above
    assert err.count("claimed by another worker") >= 2, err


@pytest.mark.timeout(120)
def test_a_live_worker_slower_than_the_claim_idle_time_keeps_its_entry(
    venue: Simulator, served: HttpsServer, redis_url: str
) -> None:
    """A fan-out that lasts three times the claim idle time: the heartbeat keeps the
    entry this worker's, so the other worker, polling all along, never copies it."""
    from securetrade.copy import EventStream
    from securetrade.core import RedisJournal

    followers = _followers(venue, 6)
    event = _leader(venue, "slow-fill")
    group = Group(redis_url, served, followers)
    journal = RedisJournal(redis_url, prefix=str(group.job["prefix"]))
    copies: list[str] = []

    async def worker(name: str, slow: float, stop: asyncio.Event) -> None:
        engine = CopyEngine(secret=SECRET, connect={"binance": group.job["connect"]},
                            journal=journal)  # fmt: skip
        copying = engine.copy

        async def copy(leader: LeaderEvent) -> Any:
            copies.append(name)
            return await copying(leader)

        engine.copy = copy  # type: ignore[method-assign]
        for follower in followers:
            engine.add(follower)
        for seat in engine._seats.values():  # each order sent ``slow`` seconds late
            sending = seat.client.place_order

            async def place_order(order: Any, *, _send: Any = sending, **options: Any) -> Any:
                await asyncio.sleep(slow)
                return await _send(order, **options)

            seat.client.place_order = place_order  # type: ignore[method-assign]
        stream = EventStream(redis_url, stream=group.stream, consumer=name)
        try:
            await stream.work(engine, stop=stop, claim_idle_ms=400, block_ms=50)
        finally:
            await stream.close()
            await engine.aclose()

    async def run() -> None:
        stop = asyncio.Event()
        # Its followers are placed at once, each 1.2 s late: three claim idle times.
        slow = asyncio.create_task(worker("slow", 1.2, stop))
        await asyncio.sleep(0.3)
        publisher = EventStream(redis_url, stream=group.stream)
        await publisher.publish(event)
        while not copies:
            await asyncio.sleep(0.01)
        other = asyncio.create_task(worker("other", 0, stop))
        while await publisher.pending():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # the other worker keeps polling a while after the ack
        stop.set()
        await asyncio.gather(slow, other)
        await publisher.close()

    try:
        asyncio.run(run())
    finally:
        journal.close()
    assert copies == ["slow"]
    assert [_orders_of(venue, event, f) for f in followers] == [1] * 6


def test_redis_failures_on_the_stream_are_journal_errors() -> None:
    """A server that goes away mid-work: the caller gets the SDK's JournalError saying
    what to check, not redis-py's exception."""
    from securetrade.copy import EventStream

    async def run() -> None:
        stream = EventStream("redis://127.0.0.1:1/0", stream="nowhere")
        try:
            with pytest.raises(JournalError, match="Redis server runs"):
                await stream.pending()
            with pytest.raises(JournalError, match="Redis server runs"):
                await stream.publish(LeaderEvent("e1", "BTCUSDT", "BUY", "0.01", "60000", 1_000))
        finally:
            await stream.close()

    asyncio.run(run())


def test_a_recovery_lease_on_an_unreachable_redis_is_a_journal_error(redis_url: str) -> None:
    from securetrade.core import RedisJournal

    journal = RedisJournal.create(redis_url, prefix=f"lease:{random_names.token_hex(4)}:")
    journal._redis.connection_pool.reset()
    journal._redis.connection_pool.connection_kwargs["port"] = 1
    try:
        with pytest.raises(JournalError, match="recovery lease"):
            journal.lease("acct", 10)
        with pytest.raises(JournalError, match="recovery lease"):
            journal.release("acct")
    finally:
        journal.close()


@pytest.mark.parametrize("lease", [0, -1, 0.01, float("nan"), float("inf"), True, "10"])
def test_a_recovery_lease_that_cannot_work_is_refused(lease: Any) -> None:
    with pytest.raises(InvalidRequest, match="recovery_lease"):
        Settings(recovery_lease=lease)


def test_the_takeover_bound_follows_the_settings() -> None:
    """The documented figure: 10 s idle + 0.5 s poll + the later of a 10 s lease and a
    5 s window plus 10 s settle margin."""
    from securetrade.copy import takeover_bound

    assert takeover_bound(Settings(), recv_window_ms=5_000) == 25.5
    longer = Settings(recovery_lease=30.0)
    assert takeover_bound(longer, recv_window_ms=5_000, claim_idle_ms=2_000) == 32.5
    with pytest.raises(InvalidRequest, match="claim_idle_ms"):
        takeover_bound(claim_idle_ms=0)
    with pytest.raises(InvalidRequest, match="Settings"):
        takeover_bound({"recovery_lease": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["bogus", "http://127.0.0.1:6379/0", ""])
def test_an_event_stream_with_an_unreadable_url_is_refused_with_the_fix(url: str) -> None:
    """redis-py answers a bad URL with ValueError; the caller gets InvalidRequest naming
    the URL form it needs, before anything connects."""
    from securetrade.copy.streams import EventStream

    with pytest.raises(InvalidRequest, match="redis://"):
        EventStream(url)
