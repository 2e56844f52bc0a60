"""Reconciliation of followers against the leader, and the per-follower circuit breaker.

The pure decision (:func:`reconcile_plan`) is checked on its own; the engine's
``reconcile()`` runs against the simulator over TLS, and every verdict about orders and
holdings is read from the venue's own book and accounts.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from securetrade import Client, InvalidRequest, MarketOrder, Settings
from securetrade.copy import (
    BreakerSettings,
    CopyEngine,
    Follower,
    FollowerView,
    LeaderEvent,
    LeaderSnapshot,
    Sizing,
    reconcile_plan,
)
from securetrade.copy.breaker import Breaker
from securetrade.keys import ApiKey, Secret
from securetrade.models import Instrument
from securetrade.sim import HttpsServer, SimLimits, Simulator

SECRET = Secret(b"copy-reconcile-test-secret-01")
RULES = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size="0.01",
    step_size="0.00001",
    min_quantity="0.00001",
    min_notional="5",
)
CASH = {"USDT": Decimal(100_000)}


# --- the pure decision ---------------------------------------------------------------------


def _snapshot(position: str = "0.02", **over: Any) -> LeaderSnapshot:
    base: dict[str, Any] = {
        "id": "snap-1",
        "positions": {"BTCUSDT": Decimal(position)},
        "prices": {"BTCUSDT": Decimal(60_000)},
        "at_ms": 1_000_000,
        "equity": Decimal(100_000),
    }
    return LeaderSnapshot(**{**base, **over})


TENTH = Sizing("multiplier", "0.1")


def _plain(sizing: Sizing = TENTH, **over: Any) -> Follower:
    key = ApiKey("binance", "k-follower-0001", "not-a-real-secret", scopes=["read", "trade"])
    return Follower(**{"id": "f1", "key": key, "sizing": sizing, **over})


def _seen(**over: Any) -> FollowerView:
    base: dict[str, Any] = {
        "instrument": RULES,
        "held": Decimal(0),
        "copied": Decimal(0),
        "equity": Decimal(50_000),
        "quote_free": Decimal(50_000),
    }
    return FollowerView(**{**base, **over})


@pytest.mark.parametrize(
    ("sizing", "target"),
    [
        (Sizing("multiplier", "0.1"), "0.002"),
        (Sizing("proportional", "1"), "0.01"),  # half the leader's equity: half its position
        (Sizing("fixed_quantity", "0.003"), "0.003"),
        (Sizing("fixed_notional", "120"), "0.002"),
        (Sizing("risk_percent", "12"), "0.1"),  # 12 % of 50,000 at 60,000
    ],
)
def test_the_target_scales_the_leaders_position_by_the_sizing(sizing: Sizing, target: str) -> None:
    found = reconcile_plan(
        _snapshot(), _plain(sizing), "BTCUSDT", "BTCUSDT", _seen(), secret=SECRET
    )
    assert (found.action, found.target) == ("place", Decimal(target))
    assert found.intent is not None
    assert found.intent.order.quantity == Decimal(target)
    assert found.intent.order.time_in_force is not None
    assert found.intent.order.time_in_force.value == "IOC"


def test_what_is_held_or_still_open_is_not_placed_again() -> None:
    follower = _plain()
    held = _seen(held=Decimal("1.002"), copied=Decimal("0.002"))  # other BTC is not ours
    assert (
        reconcile_plan(_snapshot(), follower, "BTCUSDT", "BTCUSDT", held, secret=SECRET).action
        == "in_line"
    )
    open_ = _seen(pending=Decimal("0.002"))  # a copy order still resting at the venue
    assert (
        reconcile_plan(_snapshot(), follower, "BTCUSDT", "BTCUSDT", open_, secret=SECRET).action
        == "in_line"
    )
    part = _seen(held=Decimal("0.001"), copied=Decimal("0.001"), pending=Decimal("0.0005"))
    found = reconcile_plan(_snapshot(), follower, "BTCUSDT", "BTCUSDT", part, secret=SECRET)
    assert found.intent is not None
    assert found.intent.order.quantity == Decimal("0.0005")


def test_a_follower_sized_per_event_is_topped_up_only_from_nothing() -> None:
    """Three fixed-size copies while the leader holds: the leader's position says nothing
    of how many copies there should be, so they are left alone (never sold down to one)."""
    fixed = _plain(Sizing("fixed_quantity", "0.001"))
    three = _seen(held=Decimal("0.003"), copied=Decimal("0.003"))
    found = reconcile_plan(_snapshot(), fixed, "BTCUSDT", "BTCUSDT", three, secret=SECRET)
    assert (found.action, found.reason, found.intent) == ("in_line", "sized_per_event", None)
    none = reconcile_plan(_snapshot(), fixed, "BTCUSDT", "BTCUSDT", _seen(), secret=SECRET)
    assert none.intent is not None
    assert none.intent.order.quantity == Decimal("0.001")
    flat = reconcile_plan(_snapshot("0"), fixed, "BTCUSDT", "BTCUSDT", three, secret=SECRET)
    assert flat.intent is not None
    assert (flat.intent.order.side.value, flat.intent.order.quantity) == ("SELL", Decimal("0.003"))


def test_a_flat_leader_closes_only_the_copied_part_at_market() -> None:
    seen = _seen(held=Decimal("1.002"), copied=Decimal("0.002"))
    found = reconcile_plan(_snapshot("0"), _plain(), "BTCUSDT", "BTCUSDT", seen, secret=SECRET)
    assert found.intent is not None
    order = found.intent.order
    assert (order.type.value, order.side.value, order.quantity) == (
        "MARKET",
        "SELL",
        Decimal("0.002"),
    )


def test_holding_less_than_the_copies_left_is_a_manual_close_never_reopened() -> None:
    closed = _seen(held=Decimal(0), copied=Decimal("0.002"))
    found = reconcile_plan(_snapshot(), _plain(), "BTCUSDT", "BTCUSDT", closed, secret=SECRET)
    assert (found.action, found.intent) == ("override", None)
    recorded = _seen(held=Decimal(0), copied=Decimal("0.002"), overridden=True)
    found = reconcile_plan(_snapshot(), _plain(), "BTCUSDT", "BTCUSDT", recorded, secret=SECRET)
    assert (found.action, found.reason, found.intent) == ("skip", "manual_override", None)
    flat = reconcile_plan(_snapshot("0"), _plain(), "BTCUSDT", "BTCUSDT", recorded, secret=SECRET)
    assert (flat.action, flat.reason) == ("in_line", "override_cleared")


def test_a_corrections_key_is_derived_from_the_snapshot_never_from_time() -> None:
    def key(snapshot: LeaderSnapshot) -> str:
        found = reconcile_plan(snapshot, _plain(), "BTCUSDT", "BTCUSDT", _seen(), secret=SECRET)
        assert found.intent is not None
        return found.intent.idempotency_key

    assert key(_snapshot()) == key(_snapshot(at_ms=2_000_000))
    assert key(_snapshot()) != key(_snapshot(id="snap-2"))


def test_a_target_that_cannot_be_sized_is_skipped_never_read_as_flat() -> None:
    proportional = _plain(Sizing("proportional", "1"))
    held = _seen(held=Decimal("0.01"), copied=Decimal("0.01"))
    found = reconcile_plan(
        _snapshot(equity=None), proportional, "BTCUSDT", "BTCUSDT", held, secret=SECRET
    )
    assert (found.action, found.reason, found.intent) == ("skip", "equity_unknown", None)


@pytest.mark.parametrize(
    "bad",
    [
        {"id": ""},
        {"positions": {"BTCUSDT": "-1"}, "prices": {}},  # a short needs its price too
        {"positions": {"BTCUSDT": "1"}, "prices": {}},
        {"prices": {"BTCUSDT": "0"}},
        {"positions": "BTCUSDT"},
    ],
)
def test_a_malformed_snapshot_is_refused_with_a_typed_error(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        _snapshot(**bad)


# --- against the simulator -------------------------------------------------------------------


@pytest.fixture
def venue() -> Any:
    with Simulator(limits=SimLimits(weight=10**8, orders=10**7, orders_seconds=10)) as sim:
        yield sim


@pytest.fixture
def served(venue: Simulator) -> HttpsServer:
    return venue.serve_fast()


def _connect(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


def _followers(
    sim: Simulator, n: int, balances: dict[str, Decimal] = CASH, name: str = "f"
) -> list[Follower]:
    return [
        Follower(
            f"{name}{i}",
            sim.create_key(balances=balances),
            Sizing("multiplier", "0.1"),
            slippage_bps=Decimal(300),
        )
        for i in range(n)
    ]


def _orders(sim: Simulator, follower: Follower) -> list[Any]:
    account = sim.account_of(follower.key.key_id)
    return [o for o in list(sim.market.orders.values()) if o.account == account]


def _btc(sim: Simulator, follower: Follower) -> Decimal:
    free, locked = sim.market.accounts[sim.account_of(follower.key.key_id)].balances["BTC"]
    return free + locked


def _leader_open(sim: Simulator, event_id: str, quantity: str = "0.02") -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", "BUY", quantity, price, int(time.time() * 1000))


def _holding(sim: Simulator, snap_id: str, quantity: str = "0.02", **over: Any) -> LeaderSnapshot:
    price = over.pop("price", sim.market.price("BTCUSDT"))
    return LeaderSnapshot(snap_id, {"BTCUSDT": Decimal(quantity)}, {"BTCUSDT": price},
                          int(time.time() * 1000), **over)  # fmt: skip


def test_reconcile_proposes_then_places_the_missed_copies_once(
    venue: Simulator, served: HttpsServer
) -> None:
    """Six followers copied the leader's open; four joined after it. Proposing places
    nothing; applying places the four; applying the same snapshot again, or a later one,
    places nothing new (read from the venue's book)."""
    early, late = _followers(venue, 6), _followers(venue, 4, name="late")

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              journal=":memory:") as engine:  # fmt: skip
            for follower in early:
                engine.add(follower)
            copied = await engine.copy(_leader_open(venue, "open-1"))
            for follower in late:
                engine.add(follower)
            proposed = await engine.reconcile(_holding(venue, "snap-1"))
            placed_before = [len(_orders(venue, f)) for f in late]
            applied = await engine.reconcile(_holding(venue, "snap-1"), apply=True)
            again = await engine.reconcile(_holding(venue, "snap-1"), apply=True)
            later = await engine.reconcile(_holding(venue, "snap-2"), apply=True)
            return copied, proposed, placed_before, applied, again, later

    copied, proposed, placed_before, applied, again, later = asyncio.run(run())
    assert copied.counts == {"placed": 6}
    assert proposed.counts == {"in_line": 6, "place": 4}
    assert {i.follower_id for i in proposed.proposals} == {f.id for f in late}
    assert placed_before == [0] * 4  # proposing sent nothing
    assert applied.counts == {"in_line": 6, "place": 4}
    assert {d.outcome for d in applied.divergences if d.action == "place"} == {"placed:FILLED"}
    assert again.counts == later.counts == {"in_line": 10}
    assert [len(_orders(venue, f)) for f in early + late] == [1] * 10
    held = {_btc(venue, f) for f in early + late}
    assert all(Decimal("0.0019") < h <= Decimal("0.002") for h in held), held  # less the fee


def test_reconciling_one_snapshot_twice_retries_nothing_a_later_one_does(
    venue: Simulator, served: HttpsServer
) -> None:
    """A correction that expired (its IOC bound is below the market) is not sent again for
    the same snapshot, whichever engine reconciles it: its key finds the journal's order.
    A new snapshot is a new attempt."""
    followers = _followers(venue, 5)
    low = venue.market.price("BTCUSDT") / 2

    async def run(journal: str) -> Any:
        reports = []
        for _ in range(2):  # two engines in turn, one journal: a restart, or another host
            async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                                  journal=journal) as engine:  # fmt: skip
                for follower in followers:
                    engine.add(follower)
                reports.append(await engine.reconcile(_holding(venue, "s", price=low), apply=True))
        return reports

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        first, second = asyncio.run(run(f"{tmp}/j.sqlite3"))
    assert {d.outcome for d in first.divergences} == {"placed:EXPIRED"}
    assert {d.outcome for d in second.divergences} == {"placed:EXPIRED"}
    assert [len(_orders(venue, f)) for f in followers] == [1] * 5


def test_a_manual_close_is_recorded_and_never_reopened(
    venue: Simulator, served: HttpsServer
) -> None:
    """One follower sells its copied BTC by hand. Reconciliation records an override and
    places nothing for it, now or later, while the leader still holds; once the leader is
    flat the override is cleared, and the leader's next open is copied again."""
    followers = _followers(venue, 3)
    manual = followers[0]

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              journal=":memory:") as engine:  # fmt: skip
            for follower in followers:
                engine.add(follower)
            await engine.copy(_leader_open(venue, "open-1"))
            await asyncio.to_thread(_sell_everything, served, manual)
            first = await engine.reconcile(_holding(venue, "snap-1"), apply=True)
            second = await engine.reconcile(_holding(venue, "snap-2"), apply=True)
            orders_then = len(_orders(venue, manual))
            flat = await engine.reconcile(_holding(venue, "snap-3", "0"), apply=True)
            reopened = await engine.copy(_leader_open(venue, "open-2"))
            after = await engine.reconcile(_holding(venue, "snap-4"), apply=True)
            return first, second, orders_then, flat, reopened, after

    first, second, orders_then, flat, reopened, after = asyncio.run(run())
    by_id = {d.follower_id: d for d in first.divergences}
    assert by_id[manual.id].action == "override"
    assert {by_id[f.id].action for f in followers[1:]} == {"in_line"}
    assert {d.follower_id: (d.action, d.reason) for d in second.divergences}[manual.id] == (
        "skip",
        "manual_override",
    )
    assert orders_then == 2  # the copy and the manual sell: nothing reopened
    assert {d.follower_id: d.reason for d in flat.divergences}[manual.id] == "override_cleared"
    # The other two still held their copies: the flat leader closed them at market.
    assert {d.follower_id: d.action for d in flat.divergences if d.follower_id != manual.id} == {
        f.id: "place" for f in followers[1:]
    }
    assert reopened.counts == {"placed": 3}
    # What it closed by hand stays written off: its new copy is in line, not an override.
    assert after.counts == {"in_line": 3}
    assert len(_orders(venue, manual)) == 3


def test_reconcile_refuses_what_is_not_a_snapshot_or_a_list_of_followers(
    venue: Simulator, served: HttpsServer
) -> None:
    async def run() -> list[str]:
        refused = []
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              journal=":memory:") as engine:  # fmt: skip
            engine.add(_followers(venue, 1)[0])
            for call in (
                engine.reconcile({"BTCUSDT": 1}),  # type: ignore[arg-type]
                engine.reconcile(_holding(venue, "s"), "f0"),
                engine.reconcile(_holding(venue, "s"), ["nobody"]),
            ):
                try:
                    await call
                except InvalidRequest as exc:
                    refused.append(str(exc))
        return refused

    assert len(asyncio.run(run())) == 3


def test_an_override_outlives_the_engine_that_recorded_it(
    venue: Simulator, served: HttpsServer, tmp_path: Any
) -> None:
    """The override is in the outbox: an engine started later on the same files still
    leaves the follower's manual close alone."""
    [follower] = _followers(venue, 1)
    files = {"journal": str(tmp_path / "j.sqlite3"), "outbox": str(tmp_path / "o.sqlite3")}

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              **files) as engine:  # fmt: skip
            engine.add(follower)
            await engine.copy(_leader_open(venue, "open-1"))
            await asyncio.to_thread(_sell_everything, served, follower)
            first = await engine.reconcile(_holding(venue, "snap-1"), apply=True)
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              **files) as engine:  # fmt: skip
            engine.add(follower)
            later = await engine.reconcile(_holding(venue, "snap-2"), apply=True)
        return first, later

    first, later = asyncio.run(run())
    assert first.counts == {"override": 1}
    assert [(d.action, d.reason) for d in later.divergences] == [("skip", "manual_override")]
    assert len(_orders(venue, follower)) == 2  # the copy and the manual sell


def _sell_everything(served: HttpsServer, follower: Follower) -> None:
    with Client(follower.key, **_connect(served)) as client:
        held = next(b.free for b in client.balances() if b.asset == "BTC")
        quantity = held.quantize(Decimal("0.00001"), rounding="ROUND_DOWN")  # the step
        client.place_order(MarketOrder(symbol="BTCUSDT", side="SELL", quantity=quantity))


def test_a_flat_leader_closes_what_a_missed_close_left_and_nothing_else(
    venue: Simulator, served: HttpsServer
) -> None:
    """The leader closed while the engine was down: reconciliation sells the copied BTC
    and leaves each follower's own BTC where it was."""
    followers = _followers(venue, 4, {"USDT": Decimal(100_000), "BTC": Decimal(1)})

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect={"binance": _connect(served)},
                              journal=":memory:") as engine:  # fmt: skip
            for follower in followers:
                engine.add(follower)
            await engine.copy(_leader_open(venue, "open-1"))
            return await engine.reconcile(_holding(venue, "flat", "0"), apply=True)

    report = asyncio.run(run())
    assert report.counts == {"place": 4}
    for follower in followers:
        assert 1 <= _btc(venue, follower) < Decimal("1.00001")  # its own BTC (and dust) stays
        sides = [o.side for o in _orders(venue, follower)]
        assert sides == ["BUY", "SELL"]


# --- the circuit breaker ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_a_run_of_failures_and_probes_once() -> None:
    clock = Clock()
    breaker = Breaker(BreakerSettings(failures=3, cooldown_s=10, max_cooldown_s=30, clock=clock))
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    assert not breaker.allow()
    clock.now += 10
    assert breaker.allow()  # the probe
    assert breaker.state == "half_open"
    assert not breaker.allow()  # nothing else while it is out
    clock.now += 10
    assert breaker.allow()  # unless it never answered: probed again
    assert breaker.failed()  # failed again: open for twice as long
    clock.now += 10
    assert not breaker.allow()
    clock.now += 10
    assert breaker.allow()
    breaker.succeeded()
    assert (breaker.state, breaker.failures) == ("closed", 0)


def test_a_follower_failing_again_and_again_is_cut_off_then_probed(
    venue: Simulator, served: HttpsServer
) -> None:
    """A follower whose venue answers 503 to everything: after three events its breaker
    opens and the next event sends nothing for it (the venue sees no request; the skip is
    recorded as circuit_open), while the others are placed every time. After the cooldown
    one probe goes out; the venue answering again closes the breaker."""
    good = _followers(venue, 3)
    sick = Follower("sick", venue.create_key(venue="kraken", balances=CASH),
                    Sizing("multiplier", "0.1"), symbols={"BTCUSDT": "XBTUSDT"},
                    slippage_bps=Decimal(300))  # fmt: skip
    clock = Clock()
    settings = BreakerSettings(failures=3, cooldown_s=60, clock=clock)
    kraken = {**_connect(served), "settings": Settings(max_attempts=1)}
    connect = {"binance": _connect(served), "kraken": kraken}
    venue.faults.inject("status", path="/0/public/AssetPairs", times=10**6, status=503)

    def kraken_requests() -> int:
        return sum(1 for _, _, path in venue.faults.fired if path.startswith("/0/"))

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect=connect, journal=":memory:",
                              breaker=settings) as engine:  # fmt: skip
            for follower in [*good, sick]:
                engine.add(follower)
            seen, reconciled = [], None
            for i in range(5):
                if i == 4:  # past the cooldown, and the venue answers again
                    clock.now += 61
                    venue.faults.clear()
                before = kraken_requests()
                report = await engine.copy(_leader_open(venue, f"open-{i}", "0.001"))
                by_id = {o.follower_id: o for o in report.outcomes}
                seen.append((by_id["sick"].status, by_id["sick"].reason,
                             kraken_requests() - before, dict(engine.breakers)))  # fmt: skip
                assert {by_id[f.id].status for f in good} == {"placed"}
                if i == 3:  # open: reconciliation leaves it alone too, and sends nothing
                    before = kraken_requests()
                    report = await engine.reconcile(_holding(venue, "while-open"))
                    why = {d.follower_id: d.reason for d in report.divergences}["sick"]
                    reconciled = (why, kraken_requests() - before)
            return seen, reconciled

    seen, reconciled = asyncio.run(run())
    assert reconciled == ("circuit_open", 0)
    assert [s[3] for s in seen[:4]] == [{}, {}, {"sick": "open"}, {"sick": "open"}]
    assert all(s[0] == "unresolved" and s[2] > 0 for s in seen[:3])
    assert seen[3][:3] == ("skipped", "circuit_open", 0)  # nothing sent for it
    assert seen[4][0] == "placed"
    assert seen[4][3] == {}  # the probe was answered: closed
