"""Shared pieces of the Kraken stream tests: a pinned client without a rate limiter, a
resting order, and an oracle in Kraken's ids (the trades the simulator executed)."""

from __future__ import annotations

from typing import Any

from securetrade import AsyncClient
from securetrade.keys import ApiKey
from securetrade.models import LimitOrder
from securetrade.ratelimit import RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.kraken import _trade_txid
from stream_helpers import tls

__all__ = ["ACCOUNT", "kraken_client", "kraken_oracle", "kraken_resting"]

ACCOUNT = "kraken-streams"


def kraken_client(server: HttpsServer, key: ApiKey, journal: Any, **extra: Any) -> AsyncClient:
    """A pinned client on the simulator, its rate limiter off (reconciling is not timed)."""
    return AsyncClient(
        key, journal=journal, limiter=RateLimiter.in_memory([]), **{**tls(server), **extra}
    )


def kraken_resting() -> LimitOrder:
    """A buy that rests in the book, named unified."""
    return LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.001", price="30000")


def kraken_oracle(sim: Simulator) -> set[str]:
    """Every trade the simulator executed for the account, as Kraken names it (a txid)."""
    return {_trade_txid(t.trade_id) for t in sim.market.trades(ACCOUNT, "BTCUSDT", None)}
