"""Stop-loss and take-profit orders through ccxt (issue 21), against the simulator's
Binance and Kraken dialects over real TLS, ccxt building, signing and reading every request.

What is checked: the capabilities come from ccxt's own tables (``has``, ``features``) and
the exchange's profile; the order reaches the venue as the venue's own trigger type with
the trigger and limit prices where they belong; it rests unseen and fires on a price move;
the journal's idempotency holds (a lost answer resolved by client order id, a second host's
duplicate adopted); and what the exchange lacks is refused, typed, before any I/O.
The behavioural suite (tests/behaviour/test_order_types_behaviour.py) runs the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

from securetrade import Client, Settings
from securetrade.errors import InvalidRequest
from securetrade.keys import ApiKey
from securetrade.models import (
    LimitOrder,
    OcoOrder,
    OrderStatus,
    OrderType,
    StopLimitOrder,
    StopLossOrder,
    TakeProfitLimitOrder,
)
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues.base import Capabilities, Op, capabilities_of
from securetrade.venues.ccxt import CcxtVenue
from securetrade.venues.ccxt.venue import COST

FAST = Settings(settle_ms=300, resolve_timeout=20.0)
CONDITIONAL = {
    OrderType.STOP_LOSS,
    OrderType.STOP_LOSS_LIMIT,
    OrderType.TAKE_PROFIT,
    OrderType.TAKE_PROFIT_LIMIT,
}
# (exchange, the simulator's dialect, the place-order route, the recv window)
VENUES = {
    "binance": ("binance", ("POST", "/api/v3/order"), 500),
    "kraken": ("kraken", ("POST", "/0/private/AddOrder"), 2000),
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(kraken_limits=None) as simulator:
        simulator.kraken.query_needs_txid = True  # as Kraken's API reference states
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


def _key(sim: Simulator, exchange: str, dialect: str) -> ApiKey:
    made = sim.create_key(venue=dialect)
    return ApiKey(
        f"ccxt:{exchange}",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )


def _client(server: HttpsServer, key: ApiKey, **extra: Any) -> Client:
    exchange = key.venue.removeprefix("ccxt:")
    window = VENUES[exchange][2] if exchange in VENUES else 500
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "pins": server.pins,
        "cadata": server.ca_pem,
        "journal": ":memory:",
        "settings": FAST,
        "recv_window_ms": window,
        "limiter": RateLimiter([RateLimit(COST, 1.0, 1_000_000)]),
        **extra,
    }
    return Client(key, **options)


def _ticks(client: Client, symbol: str, price: Decimal) -> Decimal:
    tick = client.instruments()[symbol].tick_size
    return (price / tick).quantize(Decimal(1), ROUND_DOWN) * tick


def _held(sim: Simulator, client_order_id: str) -> Any:
    (order,) = sim.market.orders_with_client_id(client_order_id)
    return order


def _stop_limit(client: Client, sim: Simulator) -> StopLimitOrder:
    stop = _ticks(client, "BTC/USDT", sim.market.price("BTCUSDT") * Decimal("0.98"))
    limit = _ticks(client, "BTC/USDT", stop * Decimal("0.99"))
    return StopLimitOrder(
        symbol="BTC/USDT", side="SELL", quantity="0.01", stop_price=stop, price=limit
    )


# --- capabilities from ccxt's tables -------------------------------------------------------


def _caps(exchange: str) -> Capabilities:
    """What a client of ``ccxt:<exchange>`` would report, without one (no I/O)."""
    venue: Any = CcxtVenue(exchange)  # the adapter's tables are properties: read-only
    return capabilities_of(venue)


def test_capabilities_come_from_ccxts_tables() -> None:
    """Binance and Kraken: ccxt maps ``stopLossPrice`` and ``takeProfitPrice`` and the
    profile vouches for the lookup, so all four trigger types; no OCO (ccxt has no unified
    one). Bitstamp: ccxt maps no trigger. OKX: ccxt maps them, but its trigger orders are
    algo orders the lookup by client order id does not reach: not offered. Operations
    follow ``has``: Independent Reserve has no candles, Luno no withdrawals."""
    for exchange in ("binance", "kraken"):
        caps = _caps(exchange)
        assert caps.order_types == {OrderType.MARKET, OrderType.LIMIT} | CONDITIONAL
        assert caps.post_only
        assert not caps.supports(OrderType.OCO)
        assert {Op.CANDLES, Op.WITHDRAW, Op.TRADE_HISTORY} <= caps.operations
    for exchange in ("bitstamp", "okx"):
        caps = _caps(exchange)
        assert caps.order_types == {OrderType.MARKET, OrderType.LIMIT}
    assert Op.CANDLES not in _caps("independentreserve").operations
    assert not _caps("independentreserve").supports("1h")
    assert Op.WITHDRAW not in _caps("luno").operations
    assert not _caps("coinmate").post_only  # has: createPostOnlyOrder False


# --- on the wire and in the venue's book -------------------------------------------------


@pytest.mark.parametrize("exchange", sorted(VENUES))
def test_a_stop_limit_rests_with_its_trigger_and_limit_then_fires(
    exchange: str, sim: Simulator, server: HttpsServer
) -> None:
    dialect = VENUES[exchange][0]
    with _client(server, _key(sim, exchange, dialect)) as client:
        order = _stop_limit(client, sim)
        placed = client.place_order(order, idempotency_key="stop-1")
        assert (placed.type, placed.status) == (OrderType.STOP_LOSS_LIMIT, OrderStatus.NEW)
        assert (placed.stop_price, placed.price) == (order.stop_price, order.price)
        held = _held(sim, placed.client_order_id)
        assert (held.stop_price, held.price, held.side) == (order.stop_price, order.price, "SELL")
        native = "STOP_LOSS_LIMIT" if dialect == "binance" else "stop-loss-limit"
        assert held.display_type == native
        if dialect == "kraken":  # the trigger in price, the limit in price2, as Kraken reads
            sent = sim.kraken.stats.last_params["AddOrder"]
            assert (sent["ordertype"], sent["cl_ord_id"]) == (
                "stop-loss-limit",
                placed.client_order_id,
            )
            assert (Decimal(sent["price"]), Decimal(sent["price2"])) == (
                order.stop_price,
                order.price,
            )
        [listed] = client.open_orders("BTC/USDT")
        assert (listed.type, listed.stop_price) == (OrderType.STOP_LOSS_LIMIT, order.stop_price)
        sim.market.set_price("BTCUSDT", order.stop_price + Decimal(1))
        assert _held(sim, placed.client_order_id).status == "NEW"  # not reached yet
        sim.market.set_price("BTCUSDT", order.stop_price)
        assert _held(sim, placed.client_order_id).status == "FILLED"
        done = client.get_order("BTC/USDT", client_order_id=placed.client_order_id)
        assert (done.type, done.status) == (OrderType.STOP_LOSS_LIMIT, OrderStatus.FILLED)
        again = client.place_order(order, idempotency_key="stop-1")  # the journal's answer
        assert again.order_id == placed.order_id
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1


@pytest.mark.parametrize("exchange", sorted(VENUES))
def test_a_take_profit_limit_goes_as_the_venues_take_profit(
    exchange: str, sim: Simulator, server: HttpsServer
) -> None:
    dialect = VENUES[exchange][0]
    with _client(server, _key(sim, exchange, dialect)) as client:
        target = _ticks(client, "BTC/USDT", sim.market.price("BTCUSDT") * Decimal("1.03"))
        order = TakeProfitLimitOrder(
            symbol="BTC/USDT", side="SELL", quantity="0.01", stop_price=target, price=target
        )
        placed = client.place_order(order)
        assert (placed.type, placed.stop_price) == (OrderType.TAKE_PROFIT_LIMIT, target)
        held = _held(sim, placed.client_order_id)
        assert held.display_type in ("TAKE_PROFIT_LIMIT", "take-profit-limit")
        assert held.stop_price == target


# --- idempotency: the journal's lookup and adoption hold for trigger orders ---------------


@pytest.mark.parametrize("exchange", sorted(VENUES))
def test_a_lost_answer_is_resolved_by_client_order_id(
    exchange: str, sim: Simulator, server: HttpsServer
) -> None:
    dialect, (method, path), _ = VENUES[exchange]
    with _client(server, _key(sim, exchange, dialect)) as client:
        order = _stop_limit(client, sim)
        sim.faults.inject("drop_response", method=method, path=path)
        placed = client.place_order(order, idempotency_key="lost-stop")
        assert sim.faults.fired == [("drop_response", method, path)]
        assert (placed.type, placed.status) == (OrderType.STOP_LOSS_LIMIT, OrderStatus.NEW)
        assert placed.stop_price == order.stop_price
        assert client.unresolved() == []
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    stats = (sim.kraken if dialect == "kraken" else sim.dialect).stats
    assert stats.by_path[f"{method} {path}"] == 1  # resolved by a lookup, never resent


@pytest.mark.parametrize("exchange", sorted(VENUES))
def test_a_second_hosts_duplicate_is_adopted(
    exchange: str, sim: Simulator, server: HttpsServer
) -> None:
    """Another host with a journal that never saw the order sends the same intent: the
    venue refuses the duplicate client order id, and the client adopts the order."""
    dialect = VENUES[exchange][0]
    key = _key(sim, exchange, dialect)
    with _client(server, key) as first:
        order = _stop_limit(first, sim)
        placed = first.place_order(order, idempotency_key="same-stop")
    quiet = Settings(settle_ms=300, resolve_timeout=20.0, recover_on_start=False)
    with _client(server, key, settings=quiet) as second:
        again = second.place_order(order, idempotency_key="same-stop")
    assert (again.order_id, again.type) == (placed.order_id, OrderType.STOP_LOSS_LIMIT)
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1


# --- refused before any I/O --------------------------------------------------------------


def test_what_the_exchange_lacks_is_refused_before_io(sim: Simulator, server: HttpsServer) -> None:
    with _client(server, _key(sim, "binance", "binance")) as client:
        client.instruments()
        last = sim.market.price("BTCUSDT")
        oco = OcoOrder(
            symbol="BTC/USDT",
            side="SELL",
            quantity="0.01",
            price=_ticks(client, "BTC/USDT", last * Decimal("1.02")),
            stop_price=_ticks(client, "BTC/USDT", last * Decimal("0.98")),
        )
        before = server.bytes_received
        with pytest.raises(InvalidRequest, match="OCO"):
            client.place_order(oco)
        assert server.bytes_received == before
    # Bitstamp through ccxt (pointed at the simulator: nothing may reach it anyway).
    with _client(server, _key(sim, "bitstamp", "binance")) as client:
        before = server.bytes_received
        stop = StopLossOrder(symbol="BTC/USD", side="SELL", quantity="0.01", stop_price="50000")
        with pytest.raises(InvalidRequest, match="STOP_LOSS"):
            client.place_order(stop)
        assert not client.capabilities.supports(OrderType.STOP_LOSS)
        assert server.bytes_received == before


def test_post_only_goes_as_ccxts_flag(sim: Simulator, server: HttpsServer) -> None:
    with _client(server, _key(sim, "kraken", "kraken")) as client:
        low = _ticks(client, "BTC/USDT", sim.market.price("BTCUSDT") * Decimal("0.9"))
        order = LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.01", price=low)
        placed = client.place_order(order.model_copy(update={"post_only": True}))
        assert placed.status is OrderStatus.NEW
    assert sim.kraken.stats.last_params["AddOrder"]["oflags"] == "post"


def test_an_async_client_places_a_take_profit_through_ccxt(
    sim: Simulator, server: HttpsServer
) -> None:
    """ccxt's aiohttp path: the same parameters, the same reading back."""
    from securetrade import AsyncClient
    from securetrade.models import TakeProfitOrder

    key = _key(sim, "kraken", "kraken")
    target = (sim.market.price("BTCUSDT") * Decimal("0.97")).quantize(Decimal("0.1"))
    order = TakeProfitOrder(symbol="BTC/USDT", side="BUY", quantity="0.01", stop_price=target)

    async def run() -> Any:
        options: dict[str, Any] = {
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
            "journal": ":memory:",
            "settings": FAST,
            "recv_window_ms": 2000,
            "limiter": RateLimiter([RateLimit(COST, 1.0, 1_000_000)]),
        }
        async with AsyncClient(key, **options) as client:
            return await client.place_order(order, idempotency_key="tp-async")

    placed = asyncio.run(run())
    assert (placed.type, placed.status, placed.stop_price) == (
        OrderType.TAKE_PROFIT,
        OrderStatus.NEW,
        target,
    )
    assert sim.kraken.stats.last_params["AddOrder"]["ordertype"] == "take-profit"
    sim.market.set_price("BTCUSDT", target)
    assert _held(sim, placed.client_order_id).status == "FILLED"


def test_the_simulated_kraken_describes_a_trigger_order_as_kraken_does(sim: Simulator) -> None:
    """AddOrder's ``descr.order`` reads ``sell ... @ stop loss <trigger> -> limit <limit>``
    (Kraken's form, which ccxt's parse_order reads the trigger and limit from)."""
    import json
    import time

    import ccxt

    from securetrade.venues.base import Endpoint
    from securetrade.venues.kraken import KRAKEN

    key = sim.create_key(venue="kraken")
    params = [
        ("pair", "XBTUSDT"),
        ("type", "sell"),
        ("ordertype", "stop-loss-limit"),
        ("volume", "0.01"),
        ("price", "58000.0"),
        ("price2", "57500.0"),
    ]
    endpoint = Endpoint(Op.PLACE_ORDER, "POST", "/0/private/AddOrder", True, None)
    request = KRAKEN.prepare(
        endpoint, params, key_id=key.key_id, signer=KRAKEN.signer(key),
        timestamp_ms=sim.kraken.now_ms(), nonce=time.time_ns() // 1000,
    )  # fmt: skip
    headers = {k.lower(): v for k, v in request.headers}
    answer = json.loads(sim.handle(request.method, request.target, headers, request.body).body)
    text = answer["result"]["descr"]["order"]
    assert text == "sell 0.01000000 XBTUSDT @ stop loss 58000.00 -> limit 57500.00"
    exchange = ccxt.kraken()
    exchange.markets, exchange.marketsByAltname = {}, {}
    parsed = exchange.parse_order(answer["result"])
    assert (parsed["stopLossPrice"], parsed["price"]) == (58000.0, 57500.0)
