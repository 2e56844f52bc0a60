"""Copy engine under adversarial timing and amounts, against the simulator over TLS.

Each test here was written against a defect: it fails on the engine before the fix.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import ApiKey
from securetrade.copy import (
    CopyEngine,
    CopyIntent,
    Follower,
    FollowerState,
    LeaderEvent,
    Sizing,
    Skip,
    SkipReason,
    copy_key,
    plan,
)
from securetrade.copy import engine as engine_module
from securetrade.copy.reconcile import FollowerView, LeaderSnapshot, reconcile_plan
from securetrade.core import RedisJournal
from securetrade.keys import Secret
from securetrade.models import Instrument
from securetrade.sim import HttpsServer, SimLimits, Simulator

SECRET = Secret(b"copy-adversarial-test-secret-000")


@pytest.fixture
def venue() -> Any:
    limits = SimLimits(weight=10**8, orders=10**7, orders_seconds=10)
    with Simulator(limits=limits) as sim:
        yield sim


@pytest.fixture
def served(venue: Simulator) -> HttpsServer:
    return venue.serve_fast()


def _connect(server: HttpsServer, **client: Any) -> dict[str, dict[str, Any]]:
    pinned = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
    return {"binance": {**pinned, **client}}


def _follower(sim: Simulator, name: str) -> Follower:
    """A follower with a fresh, well-funded account: 100 USDT a copy, 3% slippage cap."""
    return Follower(
        name,
        sim.create_key(balances={"USDT": Decimal(1_000_000)}),
        Sizing("fixed_notional", "100"),
        slippage_bps=Decimal(300),
        ttl_ms=600_000,
    )


def _engine(
    server: HttpsServer, journal: Any, *, client: dict[str, Any] | None = None, **options: Any
) -> CopyEngine:
    """A copy engine on ``journal`` whose followers trade at ``server`` (their clients
    built with ``client``'s options besides the pins)."""
    connect = _connect(server, **(client or {}))
    return CopyEngine(secret=SECRET, connect=connect, journal=journal, **options)


def _event(sim: Simulator, event_id: str, side: str = "BUY", **over: Any) -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", side, "0.01", price, int(time.time() * 1000), **over)


def test_a_redelivery_racing_its_first_delivery_does_not_count_the_fill_twice(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    """The same event copied twice at once in one process: the second delivery gets the
    first one's order back from the journal (one order at the venue). Booking that answer
    again counted the fill twice, so the follower's close then tried to sell twice what it
    held, was refused for its balance and left the position open."""
    follower = _follower(venue, "racer")
    opened = _event(venue, "open-1")

    async def run() -> Any:
        async with _engine(served, str(tmp_path / "j.sqlite3")) as engine:
            engine.add(follower)
            first, again = await asyncio.gather(engine.copy(opened), engine.copy(opened))
            closed = await engine.copy(_event(venue, "close-1", "SELL", movement="close"))
            client = engine._seats["racer"].client
            step = (await client.instruments())["BTCUSDT"].step_size
            return first, again, closed, await client.balances(), step

    first, again, closed, balances, step = asyncio.run(run())
    assert first.counts == again.counts == {"placed": 1}
    assert first.outcomes[0].client_order_id == again.outcomes[0].client_order_id
    (outcome,) = closed.outcomes
    assert (outcome.status, outcome.reason) == ("placed", "FILLED"), outcome
    base = next((b.total for b in balances if b.asset == "BTC"), Decimal(0))
    assert 0 <= base < step  # the close sold what the open bought, but for dust below a step


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_redelivery_to_a_second_worker_racing_the_first_books_the_fill_once(
    venue: Simulator,
    served: HttpsServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
) -> None:
    """Workers A and B (one journal, each its own outbox) get the same open at once. B
    finds no copy in the journal yet, then reads the follower's balances after A's order
    filled, and gets A's order back from place_order. Booking that replayed answer on top
    of a read that holds its fill counted the fill twice: B's close then tried to sell
    twice what was bought and was refused. Only the answer B sent itself may be booked."""
    follower = _follower(venue, "raced")
    opened = _event(venue, "open-3")
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else ""
    prefix = f"c2-race-{time.time_ns()}:"
    real_state = engine_module.follower_state
    if store == "redis":
        RedisJournal.create(redis_url, prefix=prefix).close()

    opened_stores: list[RedisJournal] = []

    def journal() -> Any:
        if store == "redis":
            opened_stores.append(RedisJournal(redis_url, prefix=prefix))
            return opened_stores[-1]
        return str(tmp_path / "j.sqlite3")

    async def run() -> Any:
        b_reading, a_done = asyncio.Event(), asyncio.Event()
        async with (
            _engine(served, journal(), outbox=":memory:") as a,
            _engine(served, journal(), outbox=":memory:") as b,
        ):
            a.add(follower)
            b.add(follower)
            b_seat = b._seats["raced"]

            async def gated(seat: Any, *args: Any) -> Any:
                """A reads once B is past its journal check; B reads once A is done."""
                if seat is b_seat:
                    b_reading.set()
                    await a_done.wait()
                else:
                    await b_reading.wait()
                return await real_state(seat, *args)

            monkeypatch.setattr(engine_module, "follower_state", gated)

            async def first() -> Any:
                try:
                    return await a.copy(opened)
                finally:
                    a_done.set()

            by_a, by_b = await asyncio.gather(first(), b.copy(opened))
            monkeypatch.setattr(engine_module, "follower_state", real_state)
            kept = dict(b_seat.balances or {})
            step = (await b_seat.client.instruments())["BTCUSDT"].step_size
            closed = await b.copy(_event(venue, "close-3", "SELL", movement="close"))
            return by_a, by_b, kept, step, closed

    by_a, by_b, kept, step, closed = asyncio.run(run())
    for each in opened_stores:  # an engine leaves the journal to its caller
        each.close()
    assert by_a.counts == by_b.counts == {"placed": 1}
    cid = by_a.outcomes[0].client_order_id
    assert by_b.outcomes[0].client_order_id == cid
    (bought,) = venue.market.orders_with_client_id(cid)
    assert (bought.side, bought.filled > 0) == ("BUY", True)
    account = venue.market.accounts[bought.account]
    held = bought.filled - sum(fee for fee, asset, _ in bought.fees.values() if asset == "BTC")
    assert kept.get("BTC") in (None, held)  # booked once, or to be read again
    (outcome,) = closed.outcomes
    assert (outcome.status, outcome.reason) == ("placed", "FILLED"), outcome
    (sold,) = venue.market.orders_with_client_id(outcome.client_order_id)
    assert (sold.side, sold.account) == ("SELL", bought.account)
    # The close sold what the open left held (its fee in BTC off), but for dust below a step.
    assert 0 <= held - sold.filled < step
    assert 0 <= account.free("BTC") < step


def test_a_worker_taking_over_a_copy_sent_by_one_that_died_books_its_fill_once(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    """Worker A's copy reaches the venue and fills, and A dies before the answer is
    recorded (its row stays SENDING). Worker B (one journal file, its own outbox) gets the
    event: its client's recovery finds A's order at the venue and records it, its balance
    read holds A's fill, and place_order hands A's order back, replayed. Booking it would
    count the fill twice, and B's close would try to sell twice what is held."""
    follower = _follower(venue, "orphaned")
    opened = _event(venue, "open-4")
    journal = str(tmp_path / "j.sqlite3")

    class Died(BaseException):
        """The worker's death between the venue's answer and its record."""

    def die_after_response(name: str) -> None:
        if name == "after_response":
            raise Died(name)

    async def run() -> Any:
        async with _engine(served, journal, outbox=":memory:") as a:
            a.add(follower)
            a._seats["orphaned"].client.core.checkpoint = die_after_response  # type: ignore[method-assign]
            dead = await a.copy(opened)
        assert [o.status for o in dead.outcomes] == ["unresolved"]  # nothing recorded
        assert len(venue.market.orders) == 1  # but the order is at the venue, filled
        async with _engine(served, journal, outbox=":memory:") as b:
            b.add(follower)
            again = await b.copy(opened)
            seat = b._seats["orphaned"]
            kept = dict(seat.balances or {})
            step = (await seat.client.instruments())["BTCUSDT"].step_size
            closed = await b.copy(_event(venue, "close-4", "SELL", movement="close"))
            return again, kept, step, closed

    again, kept, step, closed = asyncio.run(run())
    assert again.counts == {"placed": 1}
    (bought,) = venue.market.orders_with_client_id(again.outcomes[0].client_order_id)
    assert (bought.side, bought.status) == ("BUY", "FILLED")
    held = bought.filled - sum(fee for fee, asset, _ in bought.fees.values() if asset == "BTC")
    assert kept.get("BTC") in (None, held)  # not booked on top of the read that holds it
    (outcome,) = closed.outcomes
    assert (outcome.status, outcome.reason) == ("placed", "FILLED"), outcome
    (sold,) = venue.market.orders_with_client_id(outcome.client_order_id)
    assert (sold.side, sold.account) == ("SELL", bought.account)
    assert 0 <= held - sold.filled < step
    assert 0 <= venue.market.accounts[bought.account].free("BTC") < step


# --- sizing and pricing at the edges of Decimal and of the venue's rules ---------------------


def _rules(tick: str, step: str = "0.001") -> Instrument:
    return Instrument(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=tick,
                      step_size=step, min_quantity="0", min_notional="0")  # fmt: skip


def _open(side: str, price: str, quantity: str = "1") -> LeaderEvent:
    return LeaderEvent("edge-1", "BTCUSDT", side, quantity, price, 1_000)


def _someone(sizing: Sizing, slippage_bps: int) -> Follower:
    key = ApiKey("binance", "k-follower-0001", "not-a-real-secret", scopes=["read", "trade"])
    return Follower("f1", key, sizing, slippage_bps=Decimal(slippage_bps), ttl_ms=10**9)


@pytest.mark.parametrize(
    ("event", "tick", "slippage_bps"),
    [
        (_open("BUY", "0.1"), "1", 0),  # the leader's price is under one of our ticks
        (_open("BUY", "1E-30"), "0.01", 10_000),  # even with the widest cap
    ],
)
def test_a_price_bound_of_zero_is_a_skip_never_an_error(
    event: LeaderEvent, tick: str, slippage_bps: int
) -> None:
    """An open's bound that rounds to zero made plan() raise (a LimitOrder at price 0);
    in the engine that left the follower unresolved on every resume, the event never done."""
    follower = _someone(Sizing("fixed_quantity", "1"), slippage_bps)
    state = FollowerState(_rules(tick), 2_000, equity=Decimal(10**9),
                          quote_free=Decimal(10**9), base_free=Decimal(10**9))  # fmt: skip
    [item] = plan(event, follower, state, secret=SECRET)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.BELOW_MINIMUM


def test_a_sell_with_a_full_cap_goes_out_at_one_tick_not_at_zero() -> None:
    """slippage_bps=10000 lets a sell fill at any price: its limit is the lowest the venue
    takes (one tick), not zero (a LimitOrder at 0 raised inside the plan)."""
    follower = _someone(Sizing("fixed_quantity", "0.5"), 10_000)
    state = FollowerState(_rules("0.01"), 2_000, base_free=Decimal(1))
    [item] = plan(_open("SELL", "60000"), follower, state, secret=SECRET)
    assert isinstance(item, CopyIntent)
    assert (item.order.price, item.order.quantity) == (Decimal("0.01"), Decimal("0.5"))


@pytest.mark.parametrize(
    ("sizing", "event"),
    [
        (Sizing("fixed_notional", "1"), _open("BUY", "60000")),  # 0.0000166 under a step
        (Sizing("multiplier", "1E-10"), _open("BUY", "60000")),
        (Sizing("proportional", "1"), _open("BUY", "60000")),  # no leader equity known
        (Sizing("risk_percent", "1E-20"), _open("BUY", "60000")),
    ],
)
def test_a_quantity_that_rounds_to_zero_is_skipped_below_minimum(
    sizing: Sizing, event: LeaderEvent
) -> None:
    follower = _someone(sizing, 50)
    state = FollowerState(_rules("0.01"), 2_000, equity=Decimal(1000), quote_free=Decimal(1000),
                          base_free=Decimal(0))  # fmt: skip
    [item] = plan(event, follower, state, secret=SECRET)
    assert isinstance(item, Skip), item
    assert item.reason is SkipReason.BELOW_MINIMUM, item


def test_a_close_of_a_position_under_one_step_is_skipped_not_sent_as_zero() -> None:
    follower = _someone(Sizing("fixed_quantity", "1"), 50)
    state = FollowerState(_rules("0.01"), 2_000, position=Decimal("0.0004"),
                          base_free=Decimal("0.0004"))  # fmt: skip
    close = LeaderEvent("edge-2", "BTCUSDT", "SELL", "1", "60000", 1_000, movement="close")
    [item] = plan(close, follower, state, secret=SECRET)
    assert isinstance(item, Skip), item
    assert item.reason is SkipReason.BELOW_MINIMUM, item


def test_reconciling_at_a_price_under_one_tick_skips_instead_of_raising() -> None:
    """The same zero bound in reconciliation: a missing open at a leader price under the
    follower's tick made reconcile_plan() raise (a LimitOrder at 0) instead of skipping."""
    snapshot = LeaderSnapshot(id="snap-edge", positions={"BTCUSDT": Decimal(5)},
                              prices={"BTCUSDT": Decimal("0.1")}, at_ms=1_000)  # fmt: skip
    view = FollowerView(_rules("1"), held=Decimal(0), copied=Decimal(0),
                        equity=Decimal(10**6), quote_free=Decimal(10**6))  # fmt: skip
    follower = _someone(Sizing("multiplier", "1"), 0)
    found = reconcile_plan(snapshot, follower, "BTCUSDT", "BTCUSDT", view, secret=SECRET)
    assert (found.action, found.reason) == ("skip", "below_minimum")


def test_a_follower_offboarded_mid_fan_out_gets_no_order_after_offboard_returns(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    """offboard() during a fan-out returned at once while the follower's copy was still on
    its way, so the order was placed (and its outcome written to the outbox, after an
    erasure too) once the follower had been let go."""
    followers = [_follower(venue, f"f{i}") for i in range(5)]
    event = _event(venue, "open-while-leaving")
    leaving = followers[0]

    def orders_of_leaver() -> int:
        from securetrade.venues import get_venue

        idem = copy_key(SECRET, event.id, leaving.id, 0)
        cid = get_venue("binance").client_order_id(leaving.account, idem)
        return len(venue.market.orders_with_client_id(cid))

    async def run() -> Any:
        async with _engine(served, str(tmp_path / "j.sqlite3")) as engine:
            for follower in followers:
                engine.add(follower)
            fan_out = asyncio.ensure_future(engine.copy(event))
            await asyncio.sleep(0)  # every follower's copy is under way
            await asyncio.sleep(0)
            await engine.offboard(leaving.id, erase=False)
            at_offboard = orders_of_leaver()
            report = await fan_out
            return at_offboard, report, engine.history(leaving.id)

    at_offboard, report, history = asyncio.run(run())
    assert orders_of_leaver() == at_offboard  # nothing placed for it after offboard()
    assert history == []  # forgotten: no outcome written back for it
    others = [o for o in report.outcomes if o.follower_id != leaving.id]
    assert {o.status for o in others} == {"placed"}


def test_a_second_process_taking_over_an_event_does_not_count_its_fill_twice(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    """Worker A copies an open and dies before acknowledging it; worker B (one journal,
    its own outbox) gets the event again: the journal hands B A's order, whose fill B's
    first balance read already holds. B's close of the position must still go out."""
    follower = _follower(venue, "taken-over")
    opened = _event(venue, "open-2")

    async def worker(outbox: str, events: list[LeaderEvent]) -> list[Any]:
        journal = str(tmp_path / "j.sqlite3")
        async with _engine(served, journal, outbox=outbox) as engine:
            engine.add(follower)
            return [await engine.copy(event) for event in events]

    asyncio.run(worker(str(tmp_path / "a.sqlite3"), [opened]))
    closing = _event(venue, "close-2", "SELL", movement="close")
    again, closed = asyncio.run(worker(str(tmp_path / "b.sqlite3"), [opened, closing]))
    assert again.counts == {"placed": 1}
    (outcome,) = closed.outcomes
    assert (outcome.status, outcome.reason) == ("placed", "FILLED"), outcome


@pytest.mark.parametrize("max_tasks", [4096, 2])
def test_a_close_arriving_before_the_opens_fan_out_is_done_closes_what_was_opened(
    venue: Simulator, served: HttpsServer, tmp_path: Path, max_tasks: int
) -> None:
    """The leader's close is copied while its open is still fanning out (also with fewer
    slots than followers, so both events queue): each follower copies the open first and
    then sells what it bought, never the close first (nothing to sell, a skip) and then
    the open (a position the leader no longer holds)."""
    followers = [_follower(venue, f"q{i}") for i in range(6)]
    opened = _event(venue, "open-3")
    closing = _event(venue, "close-3", "SELL", movement="close")

    async def run() -> Any:
        async with _engine(served, str(tmp_path / "j.sqlite3"), max_tasks=max_tasks) as engine:
            for follower in followers:
                engine.add(follower)
            first = asyncio.ensure_future(engine.copy(opened))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(engine.copy(closing))
            reports = await asyncio.gather(first, second)
            client = engine._seats["q0"].client
            step = (await client.instruments())["BTCUSDT"].step_size
            held = [
                next((b.total for b in await engine._seats[f.id].client.balances()
                      if b.asset == "BTC"), Decimal(0))
                for f in followers
            ]  # fmt: skip
            return reports, step, held

    (open_report, close_report), step, held = asyncio.run(run())
    assert open_report.counts == {"placed": 6}
    assert close_report.counts == {"placed": 6}, close_report.outcomes
    assert all(0 <= base < step for base in held), held


def test_an_open_resumed_after_the_leaders_close_is_not_placed(
    venue: Simulator, served: HttpsServer
) -> None:
    """The open stays unresolved for a follower (its order refused for a late arrival),
    the leader's close comes and finds nothing to close; resume() then placed the open,
    leaving the follower holding a position the leader had already closed."""
    follower = _follower(venue, "late")
    opened = _event(venue, "open-4")

    async def run() -> Any:
        async with _engine(served, ":memory:", client={"recv_window_ms": 100}) as engine:
            engine.add(follower)
            venue.faults.inject("slow_arrival", method="POST", path="/api/v3/order",
                                times=50, seconds=0.3)  # fmt: skip
            first = await engine.copy(opened)
            venue.faults.clear()
            closed = await engine.copy(_event(venue, "close-4", "SELL", movement="close"))
            resumed = await engine.resume()
            balances = await engine._seats["late"].client.balances()
            return first, closed, resumed, balances

    first, closed, resumed, balances = asyncio.run(run())
    assert [o.status for o in first.outcomes] == ["unresolved"]
    assert [o.reason for o in closed.outcomes] == ["no_position"]
    assert [o.status for report in resumed for o in report.outcomes] == ["skipped"]
    assert next((b.total for b in balances if b.asset == "BTC"), Decimal(0)) == 0
