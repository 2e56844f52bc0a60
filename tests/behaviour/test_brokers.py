"""The behavioural suite for the brokers: one behaviour, Alpaca and OANDA alike.

The crypto transports' suite (``test_behaviour.py``) is written in BTC/USDT; the brokers
trade stocks and forex on engines of their own, so each broker is described here by its
symbols, sizes and paths (:class:`Broker`), and every test runs once per broker against
its simulator dialect over pinned TLS on 127.0.0.1. Observations are made on the
simulator (orders held per client order id, requests received), never on the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from securetrade import (
    Client,
    InsufficientFunds,
    IntentState,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderNotFound,
    OrderStatus,
    ScopeError,
    Settings,
    UnresolvedOrder,
)
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer
from securetrade.sim.brokers import BrokerSimulator

FAST = Settings(settle_ms=300, resolve_timeout=1.5)


@dataclass(frozen=True)
class Broker:
    name: str
    first: str  # a listed symbol
    second: str  # another
    quantity: str  # a size the opening balance covers
    resting: str  # a limit price far from the market: the order rests
    too_many: str  # a size the opening balance does not cover
    foreign: tuple[str, ...]  # valid text, not this broker's symbols
    unlisted: str  # well formed, not listed
    place_path: Callable[[ApiKey], str]
    # After a lost request, "not found" proves absence (Alpaca: strong dedupe), or
    # proves nothing (OANDA: no deadline, pending-only dedupe) and the intent stays unknown.
    absence_provable: bool


ALPACA = Broker(
    "alpaca",
    "AAPL",
    "SPY",
    "2",
    "100.00",
    "5000",
    ("EUR_USD", "btc-usdt"),
    "MSFT",
    lambda key: "/v2/orders",
    absence_provable=True,
)
OANDA = Broker(
    "oanda",
    "EUR_USD",
    "USD_JPY",
    "1000",
    "1.00000",
    "90000000",
    ("AAPL", "EURUSD"),
    "GBP_USD",
    lambda key: f"/v3/accounts/{key.key_id}/orders",
    absence_provable=False,
)


@pytest.fixture(params=[ALPACA, OANDA], ids=["alpaca", "oanda"])
def broker(request: pytest.FixtureRequest) -> Broker:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def venue(broker: Broker) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(broker.name) as simulator:
        yield simulator


@pytest.fixture
def served(venue: BrokerSimulator) -> HttpsServer:
    return venue.serve()


@pytest.fixture
def make(venue: BrokerSimulator, served: HttpsServer) -> Iterator[Any]:
    made: list[Client] = []

    def build(key: ApiKey | None = None, **kwargs: Any) -> Client:
        options: dict[str, Any] = {
            "journal": ":memory:",
            "settings": FAST,
            "recv_window_ms": 300,
            "base_url": served.base_url,
            "pins": served.pins,
            "cadata": served.ca_pem,
        }
        options.update(kwargs)
        client = Client(key or venue.create_key(), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def _held(venue: BrokerSimulator, cid: str) -> int:
    return len(venue.market.orders_with_client_id(cid))


def _posts(venue: BrokerSimulator) -> int:
    return sum(n for p, n in venue.dialect.stats.by_path.items() if p.startswith("POST "))


def _rest(broker: Broker, symbol: str | None = None) -> LimitOrder:
    return LimitOrder(
        symbol=symbol or broker.first, side="BUY", quantity=broker.quantity, price=broker.resting
    )


def test_place_limit_and_market_orders(broker: Broker, venue: BrokerSimulator, make: Any) -> None:
    client = make()
    resting = client.place_order(_rest(broker), idempotency_key="limit-1")
    assert resting.status is OrderStatus.NEW
    assert (resting.symbol, resting.quantity, resting.price) == (
        broker.first,
        Decimal(broker.quantity),
        Decimal(broker.resting),
    )
    assert resting.venue == broker.name
    assert resting.idempotency_key == "limit-1"
    filled = client.place_order(
        MarketOrder(symbol=broker.second, side="BUY", quantity=broker.quantity)
    )
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_quantity == Decimal(broker.quantity)
    assert filled.average_price is not None
    assert filled.average_price > 0
    assert _held(venue, resting.client_order_id) == 1
    assert _held(venue, filled.client_order_id) == 1


def test_idempotent_retry_places_once(broker: Broker, venue: BrokerSimulator, make: Any) -> None:
    client = make()
    first = client.place_order(_rest(broker), idempotency_key="same")
    again = client.place_order(_rest(broker), idempotency_key="same")
    assert again == first
    assert _posts(venue) == 1


def test_get_order_by_either_id_and_cancel(
    broker: Broker, venue: BrokerSimulator, make: Any
) -> None:
    client = make()
    placed = client.place_order(_rest(broker))
    by_client = client.get_order(broker.first, client_order_id=placed.client_order_id)
    by_venue = client.get_order(broker.first, order_id=placed.order_id)
    assert by_client.order_id == by_venue.order_id == placed.order_id
    with pytest.raises(OrderNotFound):
        client.get_order(broker.first, client_order_id="st" + "0" * 30)
    canceled = client.cancel_order(broker.first, client_order_id=placed.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert client.open_orders(broker.first) == []
    with pytest.raises(OrderNotFound):  # nothing left to cancel: a typed rejection
        client.cancel_order(broker.first, order_id=placed.order_id)
    assert _held(venue, placed.client_order_id) == 1


def test_open_orders_per_symbol(broker: Broker, make: Any) -> None:
    client = make()
    one = client.place_order(_rest(broker))
    resting_second = "100.000" if broker.name == "oanda" else "100.00"
    two = client.place_order(
        LimitOrder(symbol=broker.second, side="BUY", quantity=broker.quantity, price=resting_second)
    )
    assert {o.client_order_id for o in client.open_orders()} == {
        one.client_order_id,
        two.client_order_id,
    }
    assert [o.client_order_id for o in client.open_orders(broker.second)] == [two.client_order_id]


def test_insufficient_funds_is_a_typed_rejection(
    broker: Broker, venue: BrokerSimulator, make: Any
) -> None:
    client = make()
    with pytest.raises(InsufficientFunds) as caught:
        client.place_order(
            MarketOrder(symbol=broker.first, side="BUY", quantity=broker.too_many),
            idempotency_key="broke",
        )
    assert caught.value.venue == broker.name
    cid = client.venue.client_order_id(client.core.key.key_id, "broke")
    intent = client.core.journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.REJECTED


def test_invalid_and_out_of_scope_refused_before_io(
    broker: Broker, venue: BrokerSimulator, served: HttpsServer, make: Any
) -> None:
    client = make()
    for symbol in broker.foreign:
        with pytest.raises(InvalidRequest):
            client.place_order(LimitOrder(symbol=symbol, side="BUY", quantity="1", price="1"))
    reader = make(venue.create_key(scopes=["read"]))
    with pytest.raises(ScopeError):
        reader.place_order(_rest(broker))
    assert served.bytes_received == 0
    client.instruments()
    before = served.bytes_received
    with pytest.raises(InvalidRequest, match="not listed"):
        client.place_order(LimitOrder(symbol=broker.unlisted, side="BUY", quantity="1", price="1"))
    assert served.bytes_received == before


def test_lost_response_resolved_by_client_order_id(
    broker: Broker, venue: BrokerSimulator, make: Any
) -> None:
    key = venue.create_key()
    client = make(key)
    client.instruments()
    venue.faults.inject("drop_response", method="POST", path=broker.place_path(key))
    order = client.place_order(
        MarketOrder(symbol=broker.first, side="BUY", quantity=broker.quantity)
    )
    assert order.status is OrderStatus.FILLED
    assert _held(venue, order.client_order_id) == 1
    assert _posts(venue) == 1  # asked by client order id, never resent
    assert client.unresolved() == []


@pytest.mark.parametrize("fault", ["drop_request", "status"])
def test_unknown_outcome_never_doubles(
    broker: Broker, venue: BrokerSimulator, make: Any, fault: str
) -> None:
    """The venue never saw it. Alpaca: absence is provable past the deadline (a late
    first attempt would be refused as a duplicate), so it is resent, once. OANDA: nothing
    proves it, so it stays unknown and is never resent by itself."""
    key = venue.create_key()
    client = make(key)
    client.instruments()
    venue.faults.inject(fault, method="POST", path=broker.place_path(key))
    if broker.absence_provable:
        order = client.place_order(_rest(broker), idempotency_key=f"lost-{fault}")
        assert order.status is OrderStatus.NEW
        assert _held(venue, order.client_order_id) == 1
        assert _posts(venue) == 2
        assert client.unresolved() == []
        return
    with pytest.raises(UnresolvedOrder):
        client.place_order(_rest(broker), idempotency_key=f"lost-{fault}")
    cid = client.venue.client_order_id(key.key_id, f"lost-{fault}")
    assert _held(venue, cid) == 0
    assert _posts(venue) == 1
    assert client.unresolved() == [cid]


def test_lost_journal_orphan_reported_then_adopted(
    broker: Broker, venue: BrokerSimulator, make: Any, tmp_path: Any
) -> None:
    key = venue.create_key()
    first = make(key=key, journal=tmp_path / "lost.sqlite3")
    placed = first.place_order(_rest(broker), idempotency_key="orphan")
    second = make(key=key, journal=tmp_path / "fresh.sqlite3")
    report = second.recover()
    assert [o.client_order_id for o in report.orphans] == [placed.client_order_id]
    again = second.place_order(_rest(broker), idempotency_key="orphan")
    assert again.order_id == placed.order_id
    assert _held(venue, placed.client_order_id) == 1
    assert _posts(venue) == 1


def test_capabilities_say_what_the_client_will_do(
    broker: Broker, served: HttpsServer, make: Any
) -> None:
    from securetrade import OrderType, TimeInForce

    client = make()
    caps = client.capabilities
    assert caps.venue == broker.name
    assert caps.supports(OrderType.LIMIT)
    assert caps.supports(OrderType.MARKET)
    assert caps.supports(TimeInForce.DAY)
    assert not caps.supports("withdraw")
    if not caps.supports(TimeInForce.OPG):
        with pytest.raises(InvalidRequest):
            client.place_order(
                LimitOrder(
                    symbol=broker.first,
                    side="BUY",
                    quantity=broker.quantity,
                    price=broker.resting,
                    time_in_force="OPG",
                )
            )
    if not caps.supports("candles"):
        with pytest.raises(InvalidRequest, match="does not offer"):
            client.candles(broker.first, "1h")
    assert served.bytes_received == 0


def test_async_client_races_on_one_key_and_places_once(
    broker: Broker, venue: BrokerSimulator, served: HttpsServer
) -> None:
    """The asyncio client on the broker: ten tasks with one idempotency key, one order."""
    import asyncio

    from securetrade import AsyncClient

    key = venue.create_key()
    order = _rest(broker)

    async def run() -> list[Any]:
        async with AsyncClient(
            key,
            journal=":memory:",
            settings=FAST,
            base_url=served.base_url,
            pins=served.pins,
            cadata=served.ca_pem,
        ) as client:
            return await asyncio.gather(
                *(client.place_order(order, idempotency_key="raced") for _ in range(10))
            )

    placed = asyncio.run(run())
    assert len({o.order_id for o in placed}) == 1
    assert _held(venue, placed[0].client_order_id) == 1
    assert _posts(venue) == 1
