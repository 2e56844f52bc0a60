"""The clients end to end against the simulator, in-process and over pinned TLS."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from securetrade import (
    AsyncClient,
    Client,
    InsufficientFunds,
    InvalidRequest,
    KillSwitch,
    LimitOrder,
    MarketOrder,
    OrderNotFound,
    OrderStatus,
    Policy,
    PolicyViolation,
    Scope,
    ScopeError,
)
from securetrade.sim import Simulator


def test_order_lifecycle(sim: Simulator, make_client: Any) -> None:
    """Place, look up, list and cancel a limit order; the venue agrees at each step."""
    client = make_client(sim.create_key())
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")
    )
    assert order.status is OrderStatus.NEW
    assert order.price == Decimal("60000.00")
    assert order.idempotency_key
    # Read back, it carries the idempotency key the journal knows it by (issue 21).
    assert client.get_order("BTCUSDT", client_order_id=order.client_order_id) == order
    assert [o.order_id for o in client.open_orders("BTCUSDT")] == [order.order_id]
    canceled = client.cancel_order("BTCUSDT", order_id=order.order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert client.open_orders() == []
    balances = {b.asset: b for b in client.balances()}
    assert balances["USDT"].free == Decimal("100000")
    assert balances["USDT"].locked == 0


def test_market_order_fills_and_moves_balances(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    order = client.place_order(MarketOrder(symbol="ETHUSDT", side="SELL", quantity=0.5))
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == Decimal("0.5")
    assert order.average_price is not None
    assert order.average_price > 0
    balances = {b.asset: b.total for b in client.balances()}
    assert balances["ETH"] == Decimal("19.5")
    # The venue's commission on a sell is paid in the quote asset received.
    commission = sum((f.commission for f in order.fills), Decimal(0))
    assert commission == (order.quote_quantity * Decimal("0.001")).quantize(Decimal("1e-8"))
    assert {f.commission_asset for f in order.fills} == {"USDT"}
    assert balances["USDT"] == Decimal("100000") + order.quote_quantity - commission


def test_reads(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    assert abs(client.server_time() - sim.dialect.now_ms()) < 5000
    instruments = client.instruments()
    assert instruments["BTCUSDT"].tick_size == Decimal("0.01")
    assert client.key_permissions()["enableWithdrawals"] is False
    with pytest.raises(OrderNotFound):
        client.get_order("BTCUSDT", client_order_id="st-no-such-order")


def test_ed25519_key_end_to_end(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key(kind="ed25519"))
    order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    assert order.status is OrderStatus.FILLED


def _requests(sim: Simulator) -> int:
    return sim.dialect.stats.requests


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.000001", price="60000"), "decimals"),
        (LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.001"), "decimals"),
        (LimitOrder(symbol="btcusdt", side="BUY", quantity="0.01", price="60000"), "Binance"),
        (LimitOrder(symbol="DOGEUSDT", side="BUY", quantity="1", price="1"), "not listed"),
        (LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.00001", price="1"), "notional"),
    ],
)
def test_bad_orders_refused_before_sending(
    sim: Simulator, make_client: Any, order: LimitOrder, message: str
) -> None:
    client = make_client(sim.create_key())
    client.instruments()  # load the rules first, so the count below covers the order only
    before = _requests(sim)
    with pytest.raises(InvalidRequest, match=message):
        client.place_order(order)
    assert _requests(sim) == before


def test_scopes_refuse_before_any_io(sim: Simulator, make_client: Any) -> None:
    reader = make_client(sim.create_key(scopes=[Scope.READ]))
    reader.instruments()
    before = _requests(sim)
    with pytest.raises(ScopeError, match="trade"):
        reader.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    with pytest.raises(ScopeError, match="withdraw"):
        reader.withdraw("USDT", "10", "addr-1")
    with pytest.raises(ScopeError, match="cancel"):
        reader.cancel_order("BTCUSDT", order_id="1")
    assert _requests(sim) == before


def test_key_limits_refuse_before_any_io(sim: Simulator, make_client: Any) -> None:
    key = sim.create_key().restrict(symbols=["ETHUSDT"], max_notional="1000")
    client = make_client(key)
    client.instruments()
    before = _requests(sim)
    with pytest.raises(ScopeError, match="BTCUSDT"):
        client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    with pytest.raises(ScopeError, match="notional"):
        client.place_order(LimitOrder(symbol="ETHUSDT", side="BUY", quantity="1", price="3000"))
    assert _requests(sim) == before


def test_withdraw_scope_needs_explicit_consent(sim: Simulator) -> None:
    key = sim.create_key(
        scopes=[Scope.READ, Scope.WITHDRAW], can_withdraw=True, withdraw_addresses=["addr-ok"]
    )
    with pytest.raises(InvalidRequest, match="unsafe_allow_withdraw_scope"):
        Client(key, transport=sim.transport(), journal=":memory:")
    client = Client(
        key, transport=sim.transport(), journal=":memory:", unsafe_allow_withdraw_scope=True
    )
    before = _requests(sim)
    with pytest.raises(ScopeError, match="allowlist"):
        client.withdraw("USDT", "10", "addr-elsewhere")
    assert _requests(sim) == before
    assert client.withdraw("USDT", "10", "addr-ok")


def test_policy_and_kill_switch(sim: Simulator, make_client: Any) -> None:
    switch = KillSwitch()
    client = make_client(
        sim.create_key(),
        policy=Policy(max_notional="1000", symbols=["BTCUSDT"], kill_switch=switch),
    )
    before = _requests(sim)
    with pytest.raises(PolicyViolation) as excinfo:
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="1", price="60000"))
    assert excinfo.value.rule == "max_notional"
    with pytest.raises(PolicyViolation, match="allowlist"):
        client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))
    switch.engage("operator pressed the button")
    with pytest.raises(PolicyViolation, match="kill switch"):
        client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    assert _requests(sim) == before
    switch.release()
    assert client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))


def test_venue_rejection_is_typed(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    with pytest.raises(InsufficientFunds) as excinfo:
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="5", price="60000"))
    assert excinfo.value.code == -2010
    assert excinfo.value.venue == "binance"


def test_sync_client_inside_a_running_event_loop(sim: Simulator, tls_options: Any) -> None:
    """A Jupyter cell runs inside an event loop; the sync client must not need its own."""
    server = sim.serve()
    key = sim.create_key()

    async def cell() -> OrderStatus:
        assert asyncio.get_running_loop()
        with Client(key, journal=":memory:", **tls_options(server)) as client:
            order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
        return order.status

    assert asyncio.run(cell()) is OrderStatus.FILLED


@pytest.mark.parametrize("path", ["in-process", "tls"])
def test_async_client(sim: Simulator, path: str, tls_options: Any) -> None:
    key = sim.create_key()
    server = sim.serve() if path == "tls" else None

    async def run() -> None:
        if server is None:
            client = AsyncClient(key, transport=sim.async_transport(), journal=":memory:")
        else:
            client = AsyncClient(key, journal=":memory:", **tls_options(server))
        async with client:
            orders = await asyncio.gather(
                *(
                    client.place_order(
                        LimitOrder(symbol="ETHUSDT", side="BUY", quantity="0.01", price="3000"),
                        idempotency_key=f"k{i}",
                    )
                    for i in range(10)
                )
            )
            assert len({o.order_id for o in orders}) == 10
            open_orders = await client.open_orders("ETHUSDT")
            assert len(open_orders) == 10
            canceled = await client.cancel_order("ETHUSDT", order_id=orders[0].order_id)
            assert canceled.status is OrderStatus.CANCELED
            assert len(await client.balances()) >= 3
            assert await client.server_time() > 0

    asyncio.run(run())


def test_client_refuses_without_pins(sim: Simulator) -> None:
    server = sim.serve()
    key = sim.create_key()
    with pytest.raises(InvalidRequest, match="pins are required"):
        Client(key, base_url=server.base_url, cadata=server.ca_pem, journal=":memory:")
    client = Client(
        key,
        base_url=server.base_url,
        cadata=server.ca_pem,
        journal=":memory:",
        unsafe_disable_pinning=True,
    )
    with client:
        assert client.server_time() > 0


def test_key_for_another_venue_refused(sim: Simulator) -> None:
    from securetrade import ApiKey

    with pytest.raises(InvalidRequest, match="unknown venue"):
        Client(ApiKey("nosuch", "k-1", "s"), transport=sim.transport(), journal=":memory:")
    key = ApiKey("kraken", "k-123456789", "s-" + "x" * 20)
    with pytest.raises(InvalidRequest, match="kraken"):
        Client(key, venue="binance", transport=sim.transport(), journal=":memory:")


def test_price_band_refuses_a_fat_finger() -> None:
    """The band is checked against a reference price; quantity and symbol rules still apply."""
    policy = Policy(price_band="0.05", max_quantity="1")
    near = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.1", price="64000")
    far = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.1", price="6400")
    policy.check(near, reference_price=Decimal("65000"))
    with pytest.raises(PolicyViolation) as excinfo:
        policy.check(far, reference_price=Decimal("65000"))
    assert excinfo.value.rule == "price_band"
    with pytest.raises(PolicyViolation, match="max_quantity"):
        policy.check(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="2"))


def test_concurrent_first_orders_read_the_instruments_and_the_clock_once(sim: Simulator) -> None:
    """A fresh AsyncClient given 30 orders at once: one task reads the instruments and
    measures the clock; the others wait for it (they used to read and sync concurrently,
    resetting the clock under each other's samples)."""
    import asyncio

    from securetrade import AsyncClient, LimitOrder

    key = sim.create_key()
    server = sim.serve()

    async def run() -> list[Any]:
        async with AsyncClient(
            key,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=":memory:",
        ) as client:
            order = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="90000")
            return await asyncio.gather(
                *(client.place_order(order, idempotency_key=f"first-{i}") for i in range(30))
            )

    placed = asyncio.run(run())
    by_path = sim.dialect.stats.by_path
    assert len({o.order_id for o in placed}) == 30
    assert by_path.get("GET /api/v3/exchangeInfo") == 1
    assert by_path.get("GET /api/v3/time") == 3  # Settings.clock_samples, once
