"""amend, beyond the behavioural suite: the scopes it needs, and an order that filled
before it could be amended (nothing is placed for it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from securetrade import Client, LimitOrder, OrderNotFound, ScopeError
from securetrade.keys import Scope
from securetrade.sim import HttpsServer, Simulator


def _pinned(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


_RESTING = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")


def test_amend_needs_the_cancel_scope_even_when_atomic(sim: Simulator, server: HttpsServer) -> None:
    """Binance's order/cancelReplace is one order request, yet it cancels: a key without
    the cancel scope is refused before it is sent, and the order stays as it was."""
    trader = Client(sim.create_key(), journal=":memory:", **_pinned(server))
    placed = trader.place_order(_RESTING)
    no_cancel = sim.create_key(
        account=sim.account_of(trader.core.key.key_id), scopes=(Scope.READ, Scope.TRADE)
    )
    client = Client(no_cancel, journal=":memory:", **_pinned(server))
    with pytest.raises(ScopeError, match="cancel"):
        client.amend("BTCUSDT", order_id=placed.order_id, price="59000.00")
    assert "POST /api/v3/order/cancelReplace" not in sim.dialect.stats.by_path
    (held,) = sim.market.orders_with_client_id(placed.client_order_id)
    assert (held.status, held.price) == ("NEW", Decimal("60000.00"))
    client.close()
    trader.close()


def test_an_order_filled_before_its_amend_is_not_replaced(
    sim: Simulator, server: HttpsServer
) -> None:
    client = Client(sim.create_key(), journal=":memory:", **_pinned(server))
    placed = client.place_order(_RESTING)
    sim.market.trade(int(placed.order_id), Decimal("0.01"))  # a counterparty takes it all
    with pytest.raises(OrderNotFound, match="filled"):
        client.amend("BTCUSDT", order_id=placed.order_id, price="59000.00")
    assert len(sim.market.orders) == 1  # nothing was placed for it
    client.close()


def test_an_adapter_that_declares_no_order_types_takes_market_and_limit_only(
    sim: Simulator, server: HttpsServer
) -> None:
    """A third-party adapter written before conditional orders existed does not declare
    them: it is not asked to send them (it might drop the stop price and place a plain
    order), nor post-only orders (it might drop the flag and take)."""
    from securetrade import InvalidRequest, OrderType, StopLossOrder
    from securetrade.venues.binance import BinanceSpot

    class Older(BinanceSpot):
        order_types = None  # type: ignore[assignment]
        post_only = False

    client = Client(sim.create_key(), venue=Older(), journal=":memory:", **_pinned(server))
    caps = client.capabilities
    assert caps.order_types == {OrderType.MARKET, OrderType.LIMIT}
    assert not caps.supports("post_only")
    before = server.bytes_received
    with pytest.raises(InvalidRequest, match="STOP_LOSS"):
        client.place_order(
            StopLossOrder(symbol="BTCUSDT", side="SELL", quantity="0.01", stop_price="50000.00")
        )
    with pytest.raises(InvalidRequest, match="post-only"):
        client.place_order(_RESTING.model_copy(update={"post_only": True}))
    assert server.bytes_received == before
    client.close()
