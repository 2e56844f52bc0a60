"""Copy trading at 1,000 followers over TLS, with venue faults; the oracle is the venue.

- a 429 storm then a 418 ban on the platform's one egress IP: the simulator's arrival log
  never holds more weight than the IP's limit in any window, and the venue answered no
  429 or 418 beyond the ones injected;
- the leader closing while its open is still being fanned out;
- a leader order filled in two parts;
- the concurrency bounds per venue account and per egress IP.

Each check reads the simulator's book: no follower has two orders for one (event, leg)
key, and every follower ends where the leader is, or with a recorded reason. These runs
are marked ``scale`` (``-m "not scale"`` leaves them out).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from securetrade.copy import CopyEngine, Follower, LeaderEvent, LeaderSnapshot, Sizing
from securetrade.keys import Secret
from securetrade.sim import HttpsServer, SimLimits, Simulator

pytestmark = pytest.mark.scale

SECRET = Secret(b"copy-faults-test-secret-00001")
N = 1000
CASH = {"USDT": Decimal(10_000)}
STEP = Decimal("0.00001")
# The IP's weight budget scaled to windows of 1 s, so that the fan-out presses on it.
LIMITS = SimLimits(weight=6000, weight_seconds=1, orders=50, orders_seconds=1)
ROOMY = SimLimits(weight=10**7, orders=10**6, orders_seconds=10)  # the other runs: CPU-bound


@pytest.fixture
def venue() -> Any:
    with Simulator(limits=ROOMY) as sim:
        yield sim


@pytest.fixture
def served(venue: Simulator) -> HttpsServer:
    return venue.serve_fast()


def _connect(server: HttpsServer) -> dict[str, dict[str, Any]]:
    return {"binance": {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}}


def _followers(sim: Simulator, n: int = N) -> list[Follower]:
    return [
        Follower(
            f"f{i}",
            sim.create_key(balances=CASH),
            Sizing("multiplier", "0.1"),
            slippage_bps=Decimal(300),
            ttl_ms=600_000,
        )
        for i in range(n)
    ]


def _event(sim: Simulator, event_id: str, quantity: str, **over: Any) -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", over.pop("side", "BUY"), quantity, price,
                       int(time.time() * 1000), **over)  # fmt: skip


def _book(sim: Simulator) -> dict[str, list[Any]]:
    """Every order at the venue, by account."""
    by_account: dict[str, list[Any]] = {}
    with sim.market.lock:
        for order in sim.market.orders.values():
            by_account.setdefault(order.account, []).append(order)
    return by_account


def _btc(sim: Simulator, follower: Follower) -> Decimal:
    row = sim.market.accounts[sim.account_of(follower.key.key_id)].balances.get("BTC")
    return Decimal(0) if row is None else row[0] + row[1]


def _no_duplicates(sim: Simulator) -> None:
    """No client order id appears twice at the venue: one order per (event, follower, leg)."""
    with sim.market.lock:
        ids = Counter((o.account, o.client_order_id) for o in sim.market.orders.values())
    assert [key for key, count in ids.items() if count > 1] == []


def _busiest(events: Sequence[tuple[float, int]], seconds: float) -> int:
    """The most units any window (t - seconds, t] of ``events`` holds."""
    ordered = sorted(events)
    best = total = first = 0
    for stamp, units in ordered:
        total += units
        while ordered[first][0] <= stamp - seconds:
            total -= ordered[first][1]
            first += 1
        best = max(best, total)
    return best


async def _until_complete(engine: CopyEngine, event: LeaderEvent) -> Any:
    """Copy, then resume what stayed unresolved (a platform's resume loop)."""
    report = await engine.copy(event)
    for _ in range(10):
        if report.complete:
            break
        report = await engine.copy(event)
    return report


@pytest.mark.timeout(300)
def test_a_429_then_418_storm_on_the_shared_ip_stays_under_its_limits() -> None:
    with Simulator(limits=LIMITS) as venue:
        _storm(venue, venue.serve_fast())


def _storm(venue: Simulator, served: HttpsServer) -> None:
    followers = _followers(venue)
    event = _event(venue, "open-storm", "0.01")
    venue.faults.inject("rate_limit", method="POST", path="/api/v3/order", times=40, seconds=1)
    venue.faults.inject("ban", method="POST", path="/api/v3/order", times=1, seconds=1)

    async def run() -> Any:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=":memory:"
        ) as engine:
            for follower in followers:
                engine.add(follower)
            return await _until_complete(engine, event)

    report = asyncio.run(run())
    stats = venue.dialect.stats
    assert report.counts == {"placed": N}
    assert (stats.status_429, stats.status_418) == (40, 1)  # only the injected ones
    weight = sum(w for _, w in stats.arrival_weights)
    assert weight > 2 * LIMITS.weight  # the fan-out pressed on the budget for windows
    busiest = _busiest(stats.arrival_weights, LIMITS.weight_seconds)
    assert busiest <= LIMITS.weight, f"{busiest} weight in a window of {LIMITS.weight}"
    _no_duplicates(venue)
    book = _book(venue)
    assert sorted(len(book[venue.account_of(f.key.key_id)]) for f in followers) == [1] * N


@pytest.mark.timeout(300)
def test_the_leader_closing_mid_fan_out_leaves_every_follower_flat_or_explained(
    venue: Simulator, served: HttpsServer
) -> None:
    """The leader's close arrives while its open is still going out to 1,000 followers.
    Each follower ends flat (its open and its close placed), or the close found nothing to
    close yet and says so (``no_position``), and reconciling against the flat leader then
    closes what it holds. No key is used twice at the venue."""
    followers = _followers(venue)
    opened = _event(venue, "open-1", "0.01")
    closed = _event(venue, "close-1", "0.01", side="SELL", movement="close")

    async def run() -> Any:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=":memory:"
        ) as engine:
            for follower in followers:
                engine.add(follower)

            async def close_midway() -> Any:
                while len(venue.market.orders) < N // 4:  # a quarter of the opens are out
                    await asyncio.sleep(0.005)
                return await _until_complete(engine, closed)

            first, second = await asyncio.gather(_until_complete(engine, opened), close_midway())
            flat = LeaderSnapshot("flat-after-close", {"BTCUSDT": Decimal(0)}, {},
                                  int(time.time() * 1000))  # fmt: skip
            mended = await engine.reconcile(flat, apply=True)
            return first, second, mended

    first, second, mended = asyncio.run(run())
    assert first.counts == {"placed": N}
    assert set(second.counts) <= {"placed", "skipped"}
    reasons = {o.follower_id: o.reason for o in second.outcomes if o.status == "skipped"}
    assert set(reasons.values()) <= {"no_position"}
    placed_by_reconcile = {d.follower_id for d in mended.divergences if d.action == "place"}
    assert placed_by_reconcile == set(reasons)  # exactly those the close missed
    _no_duplicates(venue)
    for follower in followers:
        assert _btc(venue, follower) < STEP, follower.id  # flat, as the leader is (dust aside)


@pytest.mark.timeout(300)
def test_a_partial_leader_fill_is_copied_part_by_part_and_adds_up(
    venue: Simulator, served: HttpsServer
) -> None:
    """The leader's 0.02 BTC order fills 0.008, then 0.012: each part is an event, each
    follower copies each part once, and ends holding a tenth of the leader's 0.02; a
    reconciliation against the leader's position then has nothing to place."""
    followers = _followers(venue)
    parts = [_event(venue, "order-7:part-1", "0.008"), _event(venue, "order-7:part-2", "0.012")]

    async def run() -> Any:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=":memory:"
        ) as engine:
            for follower in followers:
                engine.add(follower)
            reports = [await _until_complete(engine, part) for part in parts]
            price = venue.market.price("BTCUSDT")
            holding = LeaderSnapshot("after-part-2", {"BTCUSDT": Decimal("0.02")},
                                     {"BTCUSDT": price}, int(time.time() * 1000))  # fmt: skip
            return reports, await engine.reconcile(holding)

    reports, check = asyncio.run(run())
    assert [r.counts for r in reports] == [{"placed": N}, {"placed": N}]
    assert check.counts == {"in_line": N}
    _no_duplicates(venue)
    book = _book(venue)
    for follower in followers:
        orders = book[venue.account_of(follower.key.key_id)]
        assert sorted(o.filled for o in orders) == [Decimal("0.0008"), Decimal("0.0012")]
        assert Decimal("0.0019") < _btc(venue, follower) <= Decimal("0.002")  # less the fee


def test_followers_in_flight_stay_within_the_account_and_egress_bounds(
    venue: Simulator, served: HttpsServer
) -> None:
    """Forty followers on two venue accounts, ten on their own: at most ``per_account`` of
    an account's followers and ``per_egress`` of all are in flight at once, and the run
    reached both bounds (or the check could not fail)."""
    shared = [venue.create_key(balances={"USDT": Decimal(10**6)}) for _ in range(2)]
    followers = [
        Follower(f"s{i}", shared[i % 2], Sizing("multiplier", "0.1"), slippage_bps=Decimal(300))
        for i in range(40)
    ] + _followers(venue, 10)
    venue.faults.inject("delay", method="POST", path="/api/v3/order", times=50, seconds=0.05)

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect=_connect(served), journal=":memory:",
                              per_account=3, per_egress=5) as engine:  # fmt: skip
            for follower in followers:
                engine.add(follower)
            report = await engine.copy(_event(venue, "bounded", "0.01"))
            return report, engine.concurrency_peaks

    report, peaks = asyncio.run(run())
    assert report.counts == {"placed": 50}
    accounts = {k: v for k, v in peaks.items() if k.startswith("account:")}
    assert peaks["egress:binance"] == 5
    for follower in followers[:2]:  # one on each shared account
        assert accounts[f"account:binance:{follower.account}"] == 3
    assert max(accounts.values()) == 3
    _no_duplicates(venue)
