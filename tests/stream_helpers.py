"""Shared pieces of the stream tests: a pinned client on the simulator's HTTPS and
WebSocket servers, fast supervisor settings, and an oracle read from the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from securetrade.models import LimitOrder
from securetrade.sim import HttpsServer, Simulator
from securetrade.streams import StreamOptions

#: generous timeouts: waits end as soon as the condition holds
WAIT = 60.0

FAST = StreamOptions(
    stale_after=0.5,
    probe_timeout=0.5,
    sweep_every=0.5,
    min_reconnect=0.05,
    max_reconnect=0.3,
    key_check_every=0.5,
)


def tls(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


def resting(price: str = "30000") -> LimitOrder:
    return LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price=price)


def oracle(sim: Simulator, account: str) -> set[str]:
    """Every trade id the simulator executed for the account."""
    return {str(t.trade_id) for t in sim.market.trades(account, "BTCUSDT", None)}


def fill_ids(events: list[Any]) -> list[str]:
    from securetrade.streams import FillEvent

    return [e.trade_id for e in events if isinstance(e, FillEvent)]


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def until_sync(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def fill_twice(sim: Simulator, order_ids: list[str]) -> None:
    """Two counterparties take each resting order: a partial fill, then the rest."""
    for order_id in order_ids:
        sim.market.trade(int(order_id), Decimal("0.0004"))
    for order_id in order_ids:
        sim.market.trade(int(order_id), Decimal("0.0006"))
