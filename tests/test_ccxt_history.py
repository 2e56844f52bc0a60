"""Account history through ``ccxt:kraken`` (issue 21), paged like the native adapter:
lazily, from the oldest end, in time order, against the simulator's Kraken dialect over TLS.

ccxt's reading of a TradesHistory or ClosedOrders page drops Kraken's ``count`` and sorts
the page by time; it also passes ClosedOrders an ``until`` in milliseconds as Kraken's
``end``, which is in seconds. These tests hold the venue to Kraken's own paging: the count
first, then pages of 50 from the oldest end, every item once and oldest first, ``end``
fixed in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from securetrade import Client, Settings
from securetrade.keys import ApiKey
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.ledger import backfill
from securetrade.venues.ccxt.venue import COST

_START = 1_780_000_000_000  # a moment in 2026, venue time
_MINUTE = 60_000
TRADES = "POST /0/private/TradesHistory"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


def _client(sim: Simulator, server: HttpsServer, account: str) -> Client:
    made = sim.create_key(venue="kraken", account=account)
    key = ApiKey(
        "ccxt:kraken",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )
    return Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=":memory:",
        settings=Settings(settle_ms=300, resolve_timeout=20.0),
        recv_window_ms=2000,
        limiter=RateLimiter([RateLimit(COST, 1.0, 1_000_000)]),
    )


def _ms(item: Any) -> int:
    moment = item.at if hasattr(item, "at") else item.created_at
    return int(moment.timestamp() * 1000)


def test_trades_page_lazily_from_the_oldest_end(sim: Simulator, server: HttpsServer) -> None:
    """120 BTC trades and 7 ETH ones: the count, then three pages from the oldest end;
    the first item costs two requests (count, oldest page); every trade once, in order."""
    backfill(sim.market, "hist", "BTCUSDT", 120, start_ms=_START, spacing_ms=_MINUTE)
    backfill(sim.market, "hist", "ETHUSDT", 7, start_ms=_START, spacing_ms=61_000)
    with _client(sim, server, "hist") as client:
        pages = client.my_trades("BTC/USDT", since=_START)
        first = next(pages)
        assert sim.kraken.stats.by_path[TRADES] == 2  # lazily: the rest not asked yet
        assert _ms(first) == _START  # the oldest first
        trades = [first, *pages]
    stamps = [_ms(t) for t in trades]
    assert stamps == [_START + k * _MINUTE for k in range(120)]
    assert len({t.trade_id for t in trades}) == 120
    assert {t.symbol for t in trades} == {"BTC/USDT"}
    assert sim.kraken.stats.by_path[TRADES] == 4  # count, 3 pages
    sent = sim.kraken.stats.last_params["TradesHistory"]
    assert sent["ofs"] == "0"  # the newest 20 last
    assert int(sent["end"]) < 10**11  # Kraken's end is in seconds


def test_closed_orders_in_time_order_within_a_range_fixed_in_seconds(
    sim: Simulator, server: HttpsServer
) -> None:
    backfill(sim.market, "hist", "ETHUSDT", 70, start_ms=_START, spacing_ms=_MINUTE)
    backfill(sim.market, "hist", "BTCUSDT", 5, start_ms=_START, spacing_ms=_MINUTE)
    until = _START + 59 * _MINUTE
    with _client(sim, server, "hist") as client:
        closed = list(client.closed_orders("ETH/USDT", since=_START, until=until))
    stamps = [_ms(o) for o in closed]
    assert stamps == [_START + k * _MINUTE for k in range(60)]
    assert {o.symbol for o in closed} == {"ETH/USDT"}
    assert not any(o.is_open for o in closed)
    sent = sim.kraken.stats.last_params["ClosedOrders"]
    assert sent["end"] == str(until // 1000)  # seconds, as Kraken reads it (not ms)
    assert sent["closetime"] == "open"


def test_a_trade_made_while_paging_is_not_read_twice(sim: Simulator, server: HttpsServer) -> None:
    """``end`` is fixed when the range is made: a trade made after the first page cannot
    shift Kraken's offsets under the pages that follow."""
    backfill(sim.market, "hist", "BTCUSDT", 60, start_ms=_START, spacing_ms=_MINUTE)
    with _client(sim, server, "hist") as client:
        pages = client.my_trades("BTC/USDT", since=_START, until=_START + 59 * _MINUTE)
        first = next(pages)
        backfill(sim.market, "hist", "BTCUSDT", 3, start_ms=_START + 90 * _MINUTE, spacing_ms=1)
        trades = [first, *pages]
    assert [_ms(t) for t in trades] == [_START + k * _MINUTE for k in range(60)]
