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

from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing
from securetrade.keys import Secret
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


def _connect(server: HttpsServer) -> dict[str, dict[str, Any]]:
    return {"binance": {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}}


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
    follower = Follower(
        "racer",
        venue.create_key(balances={"USDT": Decimal(1_000_000)}),
        Sizing("fixed_notional", "100"),
        slippage_bps=Decimal(300),
        ttl_ms=600_000,
    )
    opened = _event(venue, "open-1")

    async def run() -> Any:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=str(tmp_path / "j.sqlite3")
        ) as engine:
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
