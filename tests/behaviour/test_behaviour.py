"""One behaviour, every transport: what a bot sees must not depend on the venue underneath.

Each test runs once per entry of ``transports.TRANSPORTS``, against the simulator over
pinned TLS on 127.0.0.1. Observations are made on the simulator's engine (orders held per
client order id) and its request counters, never on the client's own account of itself.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from transports import TRANSPORTS, Transport

from securetrade import (
    AuthenticationRejected,
    InsufficientFunds,
    IntentState,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderNotFound,
    OrderStatus,
    ScopeError,
    VenueRejected,
)
from securetrade.nonce import MemoryNonceSource, Resolution
from securetrade.sim import HttpsServer, Simulator


def _held(sim: Simulator, client_order_id: str) -> int:
    """How many orders the exchange holds under this client order id."""
    return len(sim.market.orders_with_client_id(client_order_id))


def _sent(sim: Simulator, route: tuple[str, str]) -> int:
    """How many requests the exchange received on ``(method, path)``, either dialect."""
    name = f"{route[0]} {route[1]}"
    return sim.dialect.stats.by_path.get(name, 0) + sim.kraken.stats.by_path.get(name, 0)


def _resting_buy(transport: Transport) -> LimitOrder:
    return LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price="60000.00")


def test_place_limit_order(transport: Transport, sim: Simulator, make: Any) -> None:
    client = make()
    order = client.place_order(_resting_buy(transport), idempotency_key="limit-1")
    assert order.status is OrderStatus.NEW
    assert (order.symbol, order.quantity, order.price) == (
        transport.btc,
        Decimal("0.01"),
        Decimal("60000.00"),
    )
    assert order.venue == transport.venue
    assert order.idempotency_key == "limit-1"
    assert _held(sim, order.client_order_id) == 1


def test_place_market_order(transport: Transport, sim: Simulator, make: Any) -> None:
    client = make()
    order = client.place_order(MarketOrder(symbol=transport.eth, side="BUY", quantity="0.01"))
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == Decimal("0.01")
    assert order.average_price is not None
    assert order.average_price > 0
    assert _held(sim, order.client_order_id) == 1


def test_idempotent_retry_places_once(transport: Transport, sim: Simulator, make: Any) -> None:
    client = make()
    first = client.place_order(_resting_buy(transport), idempotency_key="same")
    again = client.place_order(_resting_buy(transport), idempotency_key="same")
    assert again == first
    assert _held(sim, first.client_order_id) == 1
    assert _sent(sim, transport.place) == 1


def test_get_order_by_either_id(transport: Transport, make: Any) -> None:
    client = make()
    placed = client.place_order(_resting_buy(transport))
    by_client = client.get_order(transport.btc, client_order_id=placed.client_order_id)
    by_venue = client.get_order(transport.btc, order_id=placed.order_id)
    assert by_client.order_id == by_venue.order_id == placed.order_id
    assert by_venue.client_order_id == placed.client_order_id
    with pytest.raises(OrderNotFound):
        client.get_order(transport.btc, client_order_id="0" * 32)


def test_cancel(transport: Transport, sim: Simulator, make: Any) -> None:
    client = make()
    placed = client.place_order(_resting_buy(transport))
    canceled = client.cancel_order(transport.btc, client_order_id=placed.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert canceled.order_id == placed.order_id
    assert client.open_orders(transport.btc) == []
    with pytest.raises(OrderNotFound):  # nothing left to cancel: a rejection, typed
        client.cancel_order(transport.btc, order_id=placed.order_id)
    assert _held(sim, placed.client_order_id) == 1


def test_open_orders_per_symbol(transport: Transport, make: Any) -> None:
    client = make()
    btc = client.place_order(_resting_buy(transport))
    eth = client.place_order(
        LimitOrder(symbol=transport.eth, side="BUY", quantity="0.01", price="3000.00")
    )
    everything = {o.client_order_id for o in client.open_orders()}
    assert everything == {btc.client_order_id, eth.client_order_id}
    only_eth = client.open_orders(transport.eth)
    assert [o.client_order_id for o in only_eth] == [eth.client_order_id]


def test_balances_follow_orders(transport: Transport, make: Any) -> None:
    client = make()

    def quote() -> tuple[Decimal, Decimal]:
        (row,) = [b for b in client.balances() if b.asset == transport.quote_asset]
        return row.free, row.locked

    free, locked = quote()
    assert (free, locked) == (Decimal(100000), Decimal(0))
    client.place_order(_resting_buy(transport))  # 0.01 at 60000 reserves 600
    assert quote() == (Decimal(99400), Decimal(600))


def test_insufficient_funds(transport: Transport, sim: Simulator, make: Any) -> None:
    client = make()
    too_big = LimitOrder(symbol=transport.btc, side="BUY", quantity="10", price="60000.00")
    with pytest.raises(InsufficientFunds) as caught:
        client.place_order(too_big, idempotency_key="broke")
    assert caught.value.venue == transport.venue
    cid = client.venue.client_order_id(client.core.key.key_id, "broke")
    intent = client.core.journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.REJECTED
    assert _held(sim, cid) == 0


def test_invalid_symbol_refused_before_io(
    transport: Transport, server: HttpsServer, make: Any
) -> None:
    client = make()
    for symbol in transport.foreign_symbols:  # valid text, not a symbol of this venue
        with pytest.raises(InvalidRequest):
            client.place_order(LimitOrder(symbol=symbol, side="BUY", quantity="1", price="1"))
        with pytest.raises(InvalidRequest):
            client.get_order(symbol, order_id="1")
    assert server.bytes_received == 0
    client.instruments()
    before = server.bytes_received
    with pytest.raises(InvalidRequest, match="not listed"):  # well formed, but not listed
        client.place_order(
            LimitOrder(symbol=transport.unlisted, side="BUY", quantity="1", price="1")
        )
    assert server.bytes_received == before


def test_out_of_scope_refused_before_io(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    reader = make(transport.key(sim, scopes=["read"]))
    with pytest.raises(ScopeError):
        reader.place_order(_resting_buy(transport))
    with pytest.raises(ScopeError):
        reader.cancel_order(transport.btc, order_id="1")
    narrow = make(transport.key(sim).restrict(symbols=[transport.eth]))
    with pytest.raises(ScopeError):
        narrow.place_order(_resting_buy(transport))
    assert server.bytes_received == 0


def test_lost_response_resolved_by_client_order_id(
    transport: Transport, sim: Simulator, make: Any
) -> None:
    client = make()
    client.instruments()
    method, path = transport.place
    sim.faults.inject("drop_response", method=method, path=path)
    order = client.place_order(MarketOrder(symbol=transport.eth, side="BUY", quantity="0.01"))
    assert sim.faults.fired == [("drop_response", method, path)]
    assert order.status is OrderStatus.FILLED
    assert _held(sim, order.client_order_id) == 1
    assert _sent(sim, transport.place) == 1  # asked by client order id, never resent
    assert client.audit.events("order.resolving")
    assert client.unresolved() == []


@pytest.mark.parametrize("fault", ["drop_request", "status"])
def test_unknown_outcome_never_doubles(
    transport: Transport, sim: Simulator, make: Any, fault: str
) -> None:
    """The venue never saw it, but the client cannot know: it resolves, then resends."""
    client = make()
    client.instruments()
    method, path = transport.place
    sim.faults.inject(fault, method=method, path=path)
    order = client.place_order(_resting_buy(transport), idempotency_key=f"lost-{fault}")
    assert order.status is OrderStatus.NEW
    assert _held(sim, order.client_order_id) == 1
    assert _sent(sim, transport.place) == 2
    assert client.unresolved() == []


def test_stale_request_refused_then_recovered(
    transport: Transport, sim: Simulator, make: Any
) -> None:
    """Timestamp venues: the venue clock jumps; the client resyncs and resends.
    Nonce venues: another tool raised the key's nonce; the stale order is refused (never
    executed), and placed once the source continues above the venue's mark."""
    if transport.freshness == "timestamp":
        client = make()
        client.place_order(_resting_buy(transport))  # synced with the venue clock
        sim.dialect.clock_offset_ms = 30_000
        order = client.place_order(_resting_buy(transport), idempotency_key="late")
        assert sim.dialect.stats.rejections.get(-1021) == 1
        assert _held(sim, order.client_order_id) == 1
        return
    key = transport.key(sim)
    ours = MemoryNonceSource(Resolution.MILLISECONDS)
    client = make(key, nonces=ours)
    client.place_order(_resting_buy(transport))
    other = make(key, nonces=MemoryNonceSource(Resolution.MICROSECONDS))  # a finer tool
    other.balances()
    with pytest.raises(AuthenticationRejected, match="Invalid nonce") as caught:
        client.place_order(_resting_buy(transport), idempotency_key="stale")
    assert isinstance(caught.value, VenueRejected)
    cid = client.venue.client_order_id(key.key_id, "stale")
    assert _held(sim, cid) == 0
    ours.advance_to(key.key_id, sim.kraken.last_nonce(key.key_id))
    order = client.place_order(_resting_buy(transport), idempotency_key="stale")
    assert order.client_order_id == cid
    assert _held(sim, cid) == 1


def test_lost_journal_orphan_reported_then_adopted(
    transport: Transport, sim: Simulator, make: Any, tmp_path: Any
) -> None:
    """Recovery finds the open order this SDK placed under a journal that is gone, reports
    it as an orphan, and adopts it when the same key is submitted again: one order."""
    key = transport.key(sim)
    first = make(key=key, journal=tmp_path / "lost.sqlite3")
    placed = first.place_order(_resting_buy(transport), idempotency_key="orphan")
    second = make(key=key, journal=tmp_path / "fresh.sqlite3")
    report = second.recover()
    assert [o.client_order_id for o in report.orphans] == [placed.client_order_id]
    again = second.place_order(_resting_buy(transport), idempotency_key="orphan")
    assert again.order_id == placed.order_id
    assert _held(sim, placed.client_order_id) == 1
    assert _sent(sim, transport.place) == 1


# --- market data ---------------------------------------------------------------------------


def _market_client(transport: Transport, sim: Simulator, server: HttpsServer) -> Any:
    """A client without a key: market data only."""
    return transport.build(transport, sim, server, None)


def test_market_data_needs_no_key(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    """Ticker, book, candles and the public tape, from a client that holds no key; the
    tape shows a trade another account made; anything signed is refused before I/O."""
    trader = make()
    bought = trader.place_order(MarketOrder(symbol=transport.btc, side="BUY", quantity="0.01"))
    client = _market_client(transport, sim, server)
    try:
        if not transport.market_data:
            before = server.bytes_received
            for call in (
                lambda: client.ticker(transport.btc),
                lambda: client.order_book(transport.btc),
                lambda: client.candles(transport.btc, "1h"),
                lambda: client.trades(transport.btc),
            ):
                with pytest.raises(InvalidRequest, match="does not offer"):
                    call()
            assert server.bytes_received == before
            return
        ticker = client.ticker(transport.btc)
        assert ticker.symbol == transport.btc
        assert isinstance(ticker.last, Decimal)
        assert ticker.bid is not None
        assert ticker.ask is not None
        assert ticker.bid < ticker.ask

        book = client.order_book(transport.btc, 10)
        assert 0 < len(book.bids) <= 10
        assert 0 < len(book.asks) <= 10
        bids = [level.price for level in book.bids]
        asks = [level.price for level in book.asks]
        assert bids == sorted(bids, reverse=True)
        assert asks == sorted(asks)
        assert bids[0] < asks[0]

        bars = client.candles(transport.btc, "1h", limit=5)
        assert len(bars) == 5
        opened = [bar.opened_at for bar in bars]
        assert opened == sorted(opened)
        assert all(o.minute == 0 and o.second == 0 for o in opened)
        assert all(bar.low <= min(bar.open, bar.close) <= bar.high for bar in bars)
        assert bars[-1].volume >= Decimal("0.01")  # the bar now forming holds our trade

        tape = client.trades(transport.btc, limit=50)
        ((price, _, trade_id),) = sim.market.orders_with_client_id(bought.client_order_id)[0].fills
        assert (tape[-1].price, tape[-1].trade_id) == (price, str(trade_id))
        assert tape[-1].quantity == Decimal("0.01")
        assert tape[-1].side is not None
        assert tape[-1].side.value == "BUY"

        before = server.bytes_received
        with pytest.raises(ScopeError):
            client.balances()
        with pytest.raises(ScopeError):
            client.place_order(_resting_buy(transport))
        assert server.bytes_received == before
    finally:
        client.close()


# Only the adapters that offer market data: the others' typed refusal is
# test_market_data_needs_no_key's.
_WITH_MARKET_DATA = [t for t in TRANSPORTS if t.market_data]


@pytest.mark.parametrize(
    "transport", _WITH_MARKET_DATA, ids=[t.name for t in _WITH_MARKET_DATA], indirect=True
)
def test_candles_from_a_moment_on(transport: Transport, make: Any) -> None:
    """``since`` (an aware datetime or epoch milliseconds) starts at the bar opening then,
    and ``limit`` keeps the first bars from there, whatever the venue's cursor."""
    from datetime import datetime, timedelta, timezone

    client = make()
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    since = hour - timedelta(hours=6)
    bars = client.candles(transport.btc, "1h", since=since, limit=3)
    assert [b.opened_at for b in bars] == [since + timedelta(hours=k) for k in range(3)]
    same = client.candles(transport.btc, "1h", since=int(since.timestamp() * 1000), limit=3)
    assert same == bars


def test_market_data_arguments_refused_before_io(
    transport: Transport, server: HttpsServer, make: Any
) -> None:
    client = make()
    for call in (
        lambda: client.candles(transport.btc, "7m"),  # no venue has it
        lambda: client.candles(transport.btc, "1h", since=datetime_naive()),
        lambda: client.order_book(transport.btc, 0),
        lambda: client.order_book(transport.btc, 100_000),
        lambda: client.trades(transport.btc, limit=0),
        lambda: client.ticker(transport.foreign_symbols[0]),
    ):
        with pytest.raises(InvalidRequest):
            call()
    assert server.bytes_received == 0


def datetime_naive() -> Any:
    from datetime import datetime

    return datetime(2026, 1, 1)


# --- one symbol language -------------------------------------------------------------------


def test_unified_symbol_is_one_intent_with_the_venues_own(
    transport: Transport, sim: Simulator, make: Any
) -> None:
    """``BTC/USDT`` is accepted everywhere, found in the venue's instruments; the same
    intent under either name is one order; reads by either name find it."""
    client = make()
    unified = LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.01", price="60000.00")
    order = client.place_order(unified, idempotency_key="unified-1")
    assert order.symbol == "BTC/USDT"  # named as asked
    again = client.place_order(_resting_buy(transport), idempotency_key="unified-1")
    assert again.order_id == order.order_id
    assert again.symbol == transport.btc  # ...and the venue's own name as asked
    assert _held(sim, order.client_order_id) == 1
    assert _sent(sim, transport.place) == 1
    found = client.get_order("BTC/USDT", client_order_id=order.client_order_id)
    assert (found.order_id, found.idempotency_key) == (order.order_id, "unified-1")
    assert found.symbol == "BTC/USDT"
    assert [(o.order_id, o.symbol) for o in client.open_orders("BTC/USDT")] == [
        (order.order_id, "BTC/USDT")
    ]
    assert client.get_order(transport.btc, order_id=order.order_id).symbol == transport.btc
    assert client.check_order(unified).symbol == transport.btc
    assert client.would_pass(unified).allowed
    canceled = client.cancel_order("BTC/USDT", order_id=order.order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert canceled.symbol == "BTC/USDT"
    with pytest.raises(InvalidRequest, match="not listed"):
        client.place_order(LimitOrder(symbol="DOGE/USDT", side="BUY", quantity="1", price="1"))
    assert _sent(sim, transport.place) == 1


def test_orders_read_back_carry_their_idempotency_key(transport: Transport, make: Any) -> None:
    """Regression: ``open_orders()`` answered ``idempotency_key=None`` for an order placed
    with a key. Listed and looked up, it carries the key the journal knows it by."""
    client = make()
    placed = client.place_order(_resting_buy(transport), idempotency_key="keyed-1")
    (listed,) = client.open_orders(transport.btc)
    assert listed.idempotency_key == "keyed-1"
    by_id = client.get_order(transport.btc, order_id=placed.order_id)
    assert by_id.idempotency_key == "keyed-1"


def test_balances_use_common_asset_names(transport: Transport, make: Any) -> None:
    """BTC, not Kraken's XXBT, on every venue; an empty balance reads 0, not 0E-10."""
    client = make()
    balances = {b.asset: b for b in client.balances()}
    assert {"BTC", "ETH", "USDT"} <= set(balances)
    assert str(balances["BTC"].locked) == "0"
    assert balances["BTC"].free == Decimal(2)
    rules = client.instruments()[transport.btc]
    assert (rules.base_asset, rules.quote_asset) == ("BTC", "USDT")


# --- capabilities --------------------------------------------------------------------------


def test_capabilities_say_what_the_client_will_do(
    transport: Transport, server: HttpsServer, make: Any
) -> None:
    """What ``capabilities`` denies is refused before I/O, and what it grants is offered."""
    from securetrade import OrderType, TimeInForce

    client = make()
    caps = client.capabilities
    assert caps.venue == transport.venue
    assert caps.supports("place_order")
    assert caps.supports(OrderType.LIMIT)
    assert caps.supports(OrderType.MARKET)
    assert caps.supports(TimeInForce.GTC)
    for name in ("ticker", "order_book", "candles", "public_trades"):
        assert caps.supports(name) is transport.market_data
    assert caps.supports("1h") is transport.market_data
    assert not caps.supports("7m")
    if not caps.supports(TimeInForce.FOK):
        fok = LimitOrder(
            symbol=transport.btc, side="BUY", quantity="0.01", price="60000.00", time_in_force="FOK"
        )
        with pytest.raises(InvalidRequest):
            client.place_order(fok)
    if not caps.supports("key_permissions"):
        with pytest.raises(InvalidRequest, match="key_permissions"):
            client.key_permissions()
    if not caps.supports("candles"):
        with pytest.raises(InvalidRequest, match="does not offer"):
            client.candles(transport.btc, "1h")
    assert server.bytes_received == 0
