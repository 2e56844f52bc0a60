"""The three backends behave alike, share the venue's feedback, and hold under real bursts.

Conformance tests run once per backend: in memory, a SQLite file, and a real redis-server
(the session ``redis_url`` fixture). Windows there are 30 s long so that nothing expires
while a test runs, whatever the machine's speed. The burst tests hammer one scope for 3 s
with a 1 s window from 8 threads, 200 asyncio tasks, and 4 processes (SQLite, then Redis);
every grant is dated by the backend's own clock at admission (``reserve_at``), and no
window of those dates may hold more than the limit.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from securetrade.errors import InvalidRequest
from securetrade.ratelimit import (
    Caller,
    LimitScope,
    MemoryBackend,
    Priority,
    RateLimit,
    RateLimiter,
)

W = "REQUEST_WEIGHT"
O = "ORDERS"  # noqa: E741
FULL = dict.fromkeys(Priority, 1.0)
HEADER = "x-mbx-used-weight-30s"

Factory = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Build limiters that share one backend's state (like processes on one host or many)."""
    kind = str(request.param)
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    made: list[RateLimiter] = []
    shared_memory = MemoryBackend()
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""

    def build(limits: list[RateLimit], **options: object) -> RateLimiter:
        options.setdefault("namespace", namespace)
        if kind == "memory":
            limiter = RateLimiter(limits, backend=shared_memory, **options)  # type: ignore[arg-type]
        elif kind == "sqlite":
            limiter = RateLimiter.sqlite(tmp_path / "rl.db", limits, **options)
        else:
            limiter = RateLimiter.redis(url, limits, **options)
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        limiter.close()


# --- the same semantics on every backend ----------------------------------------------------------


def test_admits_up_to_capacity_then_says_how_long(make: Factory) -> None:
    lim = make([RateLimit(W, 30.0, 10)], margin=0.0)
    for _ in range(10):
        assert lim.reserve({W: 1}, Priority.CANCEL) == 0.0
    wait = lim.reserve({W: 1}, Priority.CANCEL)
    assert 0.0 < wait <= 30.0
    assert [row.used for row in lim.usage()] == [10]


def test_a_call_takes_every_window_or_none(make: Factory) -> None:
    lim = make([RateLimit(W, 30.0, 10), RateLimit(O, 30.0, 2)], margin=0.0, shares=FULL)
    assert lim.reserve({W: 1, O: 1}) == 0.0
    assert lim.reserve({W: 1, O: 1}) == 0.0
    assert lim.reserve({W: 1, O: 1}) > 0.0
    assert [row.used for row in lim.usage()] == [2, 2]  # the refused call took no weight
    assert lim.reserve({W: 5}) == 0.0
    assert [row.used for row in lim.usage()] == [7, 2]


def test_headroom_per_priority(make: Factory) -> None:
    """Bulk fills 70 %, normal 85 %, orders 95 %: what is left is for the classes above."""
    lim = make([RateLimit(W, 30.0, 20)], margin=0.0)
    granted = dict.fromkeys(Priority, 0)
    for priority in Priority:
        while lim.reserve({W: 1}, priority) == 0.0:
            granted[priority] += 1
    assert granted == {
        Priority.BULK: 14,
        Priority.NORMAL: 3,
        Priority.ORDER: 2,
        Priority.CANCEL: 1,
    }


def test_a_cancel_passes_when_market_data_has_filled_its_share(make: Factory) -> None:
    lim = make([RateLimit(W, 30.0, 100)])  # 10 % margin: 90 usable, bulk may fill 63
    while lim.reserve({W: 2}, Priority.BULK) == 0.0:
        pass
    assert lim.usage()[0].used == 62
    assert lim.reserve({W: 2}, Priority.BULK) > 0.0
    assert lim.reserve({W: 1}, Priority.CANCEL) == 0.0
    assert lim.reserve({W: 1}, Priority.ORDER) == 0.0


def test_pause_from_a_429_reaches_every_limiter_of_the_backend(make: Factory) -> None:
    first = make([RateLimit(W, 30.0, 100)])
    second = make([RateLimit(W, 30.0, 100)])
    first.observe(429, {"retry-after": "5"})
    wait = second.reserve({W: 1}, Priority.CANCEL)
    assert 4.0 < wait <= 5.0
    assert 4.0 < second.paused_for <= 5.0
    first.observe(418, {"retry-after": "2"})  # a shorter figure never cuts a pause short
    assert second.paused_for > 3.0


def test_another_ip_is_not_paused(make: Factory) -> None:
    here = make([RateLimit(W, 30.0, 100)], ip="host-a")
    there = make([RateLimit(W, 30.0, 100)], ip="host-b")
    here.observe(429, {"retry-after": "5"})
    assert there.reserve({W: 1}) == 0.0
    assert there.paused_for == 0.0


def test_usage_reported_by_the_venue_is_shared(make: Factory) -> None:
    first = make([RateLimit(W, 30.0, 100, header=HEADER)])
    second = make([RateLimit(W, 30.0, 100, header=HEADER)])
    assert first.reserve({W: 3}) == 0.0
    second.observe(200, {HEADER: "40"})  # the venue counts traffic neither of us sent
    assert [row.used for row in first.usage()] == [40]
    second.observe(200, {HEADER: "12"})  # lower (stale) figures never lower ours
    assert [row.used for row in first.usage()] == [40]


def test_reconfigured_windows_keep_what_was_spent(make: Factory) -> None:
    lim = make([RateLimit(W, 30.0, 100), RateLimit(O, 30.0, 10)], shares=FULL)
    for _ in range(4):
        assert lim.reserve({W: 2, O: 1}) == 0.0
    lim.configure([RateLimit(W, 20.0, 50), RateLimit(O, 30.0, 5), RateLimit(O, 600.0, 100)])
    assert [row.used for row in lim.usage()] == [8, 4, 4]


def test_cost_beyond_a_window_is_refused_before_anything_is_sent(make: Factory) -> None:
    lim = make([RateLimit(W, 30.0, 10)])
    with pytest.raises(InvalidRequest, match="can never pass"):
        lim.reserve({W: 20}, Priority.CANCEL)
    with pytest.raises(InvalidRequest):
        lim.reserve({W: -1})


# --- scopes ---------------------------------------------------------------------------------------


def test_each_scope_counts_its_own_traffic() -> None:
    """IP: everyone; account: keys of one account; key: one key; instrument: an account in
    one symbol; pair: a key in one symbol."""
    limits = [
        RateLimit("IPW", 30.0, 3, scope=LimitScope.IP),
        RateLimit("ACC", 30.0, 2, scope=LimitScope.ACCOUNT),
        RateLimit("KEY", 30.0, 1, scope=LimitScope.API_KEY),
        RateLimit("INS", 30.0, 1, scope=LimitScope.INSTRUMENT),
        RateLimit("PAI", 30.0, 1, scope=LimitScope.PAIR),
    ]
    lim = RateLimiter.in_memory(limits, margin=0.0, shares=FULL)
    k1, k2, k3 = Caller.of("key-1", "acct-a"), Caller.of("key-2", "acct-a"), Caller.of("key-3")

    assert lim.reserve({"IPW": 1}, caller=k1) == 0.0
    assert lim.reserve({"IPW": 1}, caller=k2) == 0.0
    assert lim.reserve({"IPW": 1}, caller=k3) == 0.0
    assert lim.reserve({"IPW": 1}, caller=k3) > 0.0  # one address for all three

    assert lim.reserve({"ACC": 2}, caller=k1) == 0.0
    assert lim.reserve({"ACC": 1}, caller=k2) > 0.0  # same account
    assert lim.reserve({"ACC": 2}, caller=k3) == 0.0  # another account

    assert lim.reserve({"KEY": 1}, caller=k1) == 0.0
    assert lim.reserve({"KEY": 1}, caller=k1) > 0.0
    assert lim.reserve({"KEY": 1}, caller=k2) == 0.0  # another key of the same account

    assert lim.reserve({"INS": 1}, symbol="BTCUSDT", caller=k1) == 0.0
    assert lim.reserve({"INS": 1}, symbol="BTCUSDT", caller=k2) > 0.0  # same account, symbol
    assert lim.reserve({"INS": 1}, symbol="ETHUSDT", caller=k2) == 0.0
    assert lim.reserve({"INS": 1}, symbol="BTCUSDT", caller=k3) == 0.0

    assert lim.reserve({"PAI": 1}, symbol="BTCUSDT", caller=k1) == 0.0
    assert lim.reserve({"PAI": 1}, symbol="BTCUSDT", caller=k2) == 0.0  # another key
    assert lim.reserve({"PAI": 1}, symbol="BTCUSDT", caller=k1) > 0.0

    rows = {(row.limit.kind, row.scope_id): row.used for row in lim.usage()}
    assert rows[("IPW", "default")] == 3
    assert rows[("ACC", k1.account)] == 2
    assert rows[("ACC", k3.account)] == 2
    assert rows[("INS", f"{k1.account}/BTCUSDT")] == 1
    assert rows[("PAI", f"{k2.key}/BTCUSDT")] == 1
    assert "key-1" not in repr(rows)  # scope ids are hashes, never the key id


def test_an_account_named_on_the_limiter_joins_keys() -> None:
    lim = RateLimiter.in_memory(
        [RateLimit(O, 30.0, 2, scope=LimitScope.ACCOUNT)], margin=0.0, shares=FULL, account="team"
    )
    assert lim.reserve({O: 2}, caller=Caller.of("key-1")) == 0.0
    assert lim.reserve({O: 1}, caller=Caller.of("key-2")) > 0.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "A:B"}, "kind"),
        ({"seconds": 0.0}, "window"),
        ({"seconds": float("nan")}, "window"),
        ({"limit": 0}, "whole number from 1"),
        ({"limit": 2.5}, "whole number from 1"),
        ({"scope": "planet"}, "scope"),
    ],
)
def test_bad_limits_are_typed_errors(bad: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"kind": W, "seconds": 1.0, "limit": 10, **bad}
    with pytest.raises(InvalidRequest, match=message):
        RateLimit(**fields)  # type: ignore[arg-type]


def test_bad_limiter_settings_are_typed_errors() -> None:
    with pytest.raises(InvalidRequest, match="smaller share"):
        RateLimiter(shares={Priority.BULK: 0.9, Priority.NORMAL: 0.5})
    with pytest.raises(InvalidRequest, match="share"):
        RateLimiter(shares={Priority.CANCEL: 1.5})
    with pytest.raises(InvalidRequest, match="ip"):
        RateLimiter(ip="")
    with pytest.raises(InvalidRequest, match="priority"):
        RateLimiter([RateLimit(W, 1.0, 10)]).reserve({W: 1}, 2)  # type: ignore[arg-type]
    lim = RateLimiter()
    lim.attach("binance", [RateLimit(W, 1.0, 10)])
    with pytest.raises(InvalidRequest, match="serves 'binance'"):
        lim.attach("kraken", [])


# --- bursts: threads, tasks, processes ------------------------------------------------------------

LIMIT = 50
WINDOW = 1.0
BURST_SECONDS = 3.0


def worst_window(grants: list[float], seconds: float) -> int:
    """The most grants in any window (t - seconds, t], by the limiter's own arithmetic: a
    grant at ``w`` is inside the window ending at ``t`` when ``w <= t < w + seconds``."""
    ordered = sorted(grants)
    worst, first = 0, 0
    for last, end in enumerate(ordered):
        while ordered[first] + seconds <= end:
            first += 1
        worst = max(worst, last - first + 1)
    return worst


def check_burst(grants: list[float], seconds: float = WINDOW) -> None:
    assert len(grants) > 2 * LIMIT, f"only {len(grants)} grants: the run never left a window"
    assert worst_window(grants, seconds) <= LIMIT


def test_8_threads_never_exceed_the_limit() -> None:
    lim = RateLimiter.in_memory([RateLimit(W, WINDOW, LIMIT)], margin=0.0, shares=FULL)
    grants: list[float] = []
    guard = threading.Lock()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(timeout=10.0)
            end = time.monotonic() + BURST_SECONDS
            while True:
                wait, when = lim.reserve_at({W: 1})
                if wait == 0.0:
                    with guard:
                        grants.append(when)
                elif time.monotonic() + wait > end:
                    return
                else:
                    time.sleep(wait)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors
    check_burst(grants)


def test_200_asyncio_tasks_never_exceed_the_limit() -> None:
    lim = RateLimiter.in_memory([RateLimit(W, WINDOW, LIMIT)], margin=0.0, shares=FULL)
    grants: list[float] = []

    async def main() -> None:
        end = time.monotonic() + BURST_SECONDS

        async def task() -> None:
            while True:
                wait, when = lim.reserve_at({W: 1})
                if wait == 0.0:
                    grants.append(when)
                    await asyncio.sleep(0)
                elif time.monotonic() + wait > end:
                    return
                else:
                    await asyncio.sleep(wait)

        await asyncio.gather(*(task() for _ in range(200)))

    asyncio.run(main())
    check_burst(grants)


_BURST_WORKER = r"""
import json, sys, time
from securetrade.ratelimit import Priority, RateLimit, RateLimiter

cfg = json.loads(sys.stdin.readline())
limits = [RateLimit("W", cfg["seconds"], cfg["limit"])]
options = dict(margin=0.0, shares={p: 1.0 for p in Priority}, namespace=cfg["namespace"])
if cfg["backend"] == "sqlite":
    lim = RateLimiter.sqlite(cfg["target"], limits, **options)
else:
    lim = RateLimiter.redis(cfg["target"], limits, **options)
lim.usage()  # connect before the start line
print("ready", flush=True)
sys.stdin.readline()  # the start line: every worker goes at once
end = time.monotonic() + cfg["duration"]
grants = []
while True:
    wait, when = lim.reserve_at({"W": 1})
    if wait == 0.0:
        grants.append(when)
    elif time.monotonic() + wait > end:
        break
    else:
        time.sleep(wait)
lim.close()
print(json.dumps(grants), flush=True)
"""


def run_burst_processes(backend: str, target: str, processes: int = 4) -> list[float]:
    """Start ``processes`` workers on one scope, release them together, collect grants."""
    config = {
        "backend": backend,
        "target": target,
        "seconds": WINDOW,
        "limit": LIMIT,
        "duration": BURST_SECONDS,
        "namespace": f"burst-{uuid.uuid4().hex[:12]}",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _BURST_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None
            assert worker.stdout is not None
            worker.stdin.write(json.dumps(config) + "\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        grants: list[float] = []
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0
            grants += json.loads(out)
        return grants
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()  # reaps it and closes its pipes


def test_4_processes_on_sqlite_never_exceed_the_limit(tmp_path: Path) -> None:
    """Grants are dated by the host's monotonic clock, read inside the write transaction."""
    check_burst(run_burst_processes("sqlite", str(tmp_path / "rl.db")))


def test_4_processes_on_redis_never_exceed_the_limit(redis_url: str) -> None:
    """Grants are dated by the Redis server's TIME; compared in whole microseconds."""
    grants = run_burst_processes("redis", redis_url)
    micros = [float(round(when * 1_000_000)) for when in grants]
    check_burst(micros, seconds=WINDOW * 1_000_000)
