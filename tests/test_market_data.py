"""Market data (issue 21): weights as the venue counts them, the async client, the client
without a key, and the Kraken reference price that read the wrong parameter.

The behavioural suite (tests/behaviour) runs the calls on every venue; this file holds
what is particular to one venue or one driver.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from securetrade import (
    AsyncClient,
    Client,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    Policy,
    ScopeError,
)
from securetrade.ratelimit import RateLimit, RateLimiter, cost_of
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE
from securetrade.venues.kraken.tables import API, ORDERS, PUBLIC


def _pinned(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


def test_binance_weights_match_what_the_venue_counts(sim: Simulator, server: HttpsServer) -> None:
    """Every market-data call is charged what Binance charges for it, the depth by its
    ``limit`` (5, 25, 50, 250): the limiter's cost per request equals the weight the
    simulator counted when the request arrived."""
    client = Client(venue="binance", **_pinned(server))
    calls = [
        (Op.ORDER_BOOK, lambda: client.order_book("BTCUSDT", 5), [("limit", "5")]),
        (Op.ORDER_BOOK, lambda: client.order_book("BTCUSDT", 100), [("limit", "100")]),
        (Op.ORDER_BOOK, lambda: client.order_book("BTCUSDT", 101), [("limit", "101")]),
        (Op.ORDER_BOOK, lambda: client.order_book("BTCUSDT", 1000), [("limit", "1000")]),
        (Op.ORDER_BOOK, lambda: client.order_book("BTCUSDT", 5000), [("limit", "5000")]),
        (Op.CANDLES, lambda: client.candles("BTCUSDT", "1m", limit=1000), []),
        (Op.PUBLIC_TRADES, lambda: client.trades("BTCUSDT"), []),
        (Op.TICKER, lambda: client.ticker("BTCUSDT"), [("symbol", "BTCUSDT")]),
    ]
    charged = []
    counted = []
    for op, call, params in calls:
        before = len(sim.dialect.stats.arrival_weights)
        call()
        endpoint = BINANCE.endpoints[op]
        charged.append(cost_of(endpoint.cost, endpoint.cost_rules, params)["REQUEST_WEIGHT"])
        counted.append(sum(w for _, w in sim.dialect.stats.arrival_weights[before:]))
    assert charged == counted == [5, 5, 25, 50, 250, 2, 25, 2]
    client.close()


def test_depth_of_5000_levels_is_served_whole(sim: Simulator, server: HttpsServer) -> None:
    with Client(venue="binance", **_pinned(server)) as client:
        book = client.order_book("BTCUSDT", 5000)
    assert len(book.bids) == len(book.asks) == 5000
    assert book.sequence is not None


def test_resting_orders_show_in_the_book(sim: Simulator, server: HttpsServer) -> None:
    """A limit order that rests near the price is in the book at its price, on its side,
    between the simulator's own levels."""
    key = sim.create_key()
    with Client(key, journal=":memory:", **_pinned(server)) as trader:
        price = trader.ticker("BTCUSDT").last
        below = price - Decimal("200.03")  # the price moves about 100 as the order lands
        trader.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.5", price=below))
        book = trader.order_book("BTCUSDT", 100)  # a level per basis point: ~650 deep
    assert any(level.price == below and level.quantity >= Decimal("0.5") for level in book.bids)


def test_async_client_reads_market_data(sim: Simulator, server: HttpsServer) -> None:
    async def main() -> tuple[Any, ...]:
        async with AsyncClient(venue="binance", **_pinned(server)) as client:
            return await asyncio.gather(
                client.ticker("BTCUSDT"),
                client.order_book("BTCUSDT", 3),
                client.candles("BTCUSDT", "5m", limit=4),
                client.trades("BTCUSDT", limit=10),
            )

    ticker, book, bars, tape = asyncio.run(main())
    assert ticker.symbol == "BTCUSDT"
    assert len(book.bids) == 3
    assert len(bars) == 4
    assert tape == []  # nobody has traded yet


def test_client_without_key_needs_a_venue() -> None:
    with pytest.raises(InvalidRequest, match="name its venue"):
        Client(unsafe_disable_pinning=True)


def test_client_without_key_refuses_every_signed_call_before_io(
    sim: Simulator, server: HttpsServer
) -> None:
    with Client(venue="binance", **_pinned(server)) as client:
        for call in (
            client.balances,
            client.open_orders,
            lambda: client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1")),
            lambda: client.cancel_order("BTCUSDT", order_id="1"),
            client.key_permissions,
        ):
            with pytest.raises(ScopeError):
                call()
    assert server.bytes_received == 0
    assert sim.dialect.stats.arrivals == []


def test_kraken_price_band_reads_the_reference_price_by_pair(
    sim: Simulator, server: HttpsServer
) -> None:
    """Regression: the reference price was asked of Kraken's Ticker as ``symbol=XBTUSDT``,
    a parameter Kraken does not read; it answered every pair, and the price band refused
    every Kraken order ("the ticker answer holds no last price")."""
    roomy = [RateLimit(API, 1.0, 1000), RateLimit(ORDERS, 1.0, 1000), RateLimit(PUBLIC, 1.0, 1000)]
    key = sim.create_key(venue="kraken")
    with Client(
        key,
        journal=":memory:",
        policy=Policy(price_band="0.2"),
        limiter=RateLimiter(roomy),
        **_pinned(server),
    ) as client:
        price = client.ticker("XBTUSDT").last
        order = client.place_order(
            LimitOrder(symbol="XBTUSDT", side="BUY", quantity="0.01", price=price - 100)
        )
    assert order.is_open
    assert sim.kraken.stats.by_path.get("GET /0/public/Ticker") == 2
