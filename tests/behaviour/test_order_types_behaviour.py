"""Order types on every transport (issue 21): stop-loss and take-profit, market and limit
variants, and post-only. The simulator rests a conditional order unseen until the price
(moved by the test with ``sim.market.set_price``) reaches its trigger, as the venues do.
A transport without such orders refuses them, typed, before any I/O.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from transports import Transport

from securetrade import InvalidRequest, LimitOrder, OrderStatus, OrderType, VenueRejected
from securetrade.models import StopLimitOrder, StopLossOrder, TakeProfitLimitOrder, TakeProfitOrder
from securetrade.sim import HttpsServer, Simulator

_ENGINE_BTC = "BTCUSDT"  # the engine's name of the pair, whatever the venue calls it


def _ticks(client: Any, transport: Transport, price: Decimal) -> Decimal:
    tick = client.instruments()[transport.btc].tick_size
    return (price / tick).quantize(Decimal(1), ROUND_DOWN) * tick


def _held(sim: Simulator, client_order_id: str) -> Any:
    (order,) = sim.market.orders_with_client_id(client_order_id)
    return order


def _offers(client: Any, kind: OrderType, server: HttpsServer, attempt: Any) -> bool:
    """Whether the transport offers ``kind``; if not, ``attempt()`` is refused before I/O."""
    if client.capabilities.supports(kind):
        return True
    before = server.bytes_received
    with pytest.raises(InvalidRequest, match=kind.value):
        attempt()
    assert server.bytes_received == before
    return False


def test_stop_limit_rests_unseen_until_the_price_falls_to_it(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    client = make()
    last = sim.market.price(_ENGINE_BTC)
    stop = _ticks(client, transport, last * Decimal("0.98"))
    order = StopLimitOrder(
        symbol=transport.btc,
        side="SELL",
        quantity="0.01",
        stop_price=stop,
        price=_ticks(client, transport, stop * Decimal("0.99")),
    )
    if not _offers(client, OrderType.STOP_LOSS_LIMIT, server, lambda: client.place_order(order)):
        return
    placed = client.place_order(order, idempotency_key="stop-1")
    assert (placed.type, placed.status, placed.stop_price) == (
        OrderType.STOP_LOSS_LIMIT,
        OrderStatus.NEW,
        stop,
    )
    assert placed.price == order.price
    if transport.market_data:
        book = client.order_book(transport.btc, 50)
        assert book.asks[0].price > order.price  # unseen while waiting: it would be best
    sim.market.set_price(_ENGINE_BTC, stop + 10 * client.instruments()[transport.btc].tick_size)
    assert _held(sim, placed.client_order_id).status == "NEW"  # not there yet
    sim.market.set_price(_ENGINE_BTC, stop)
    held = _held(sim, placed.client_order_id)
    assert (held.status, held.filled) == ("FILLED", Decimal("0.01"))
    done = client.get_order(transport.btc, order_id=placed.order_id)
    assert done.status is OrderStatus.FILLED
    assert client.place_order(order, idempotency_key="stop-1").order_id == placed.order_id


@pytest.mark.parametrize(
    ("kind", "side", "factor"),
    [
        (OrderType.STOP_LOSS, "SELL", "0.97"),  # a sell stop: the price falls to it
        (OrderType.STOP_LOSS, "BUY", "1.03"),  # a buy stop: the price rises to it
        (OrderType.TAKE_PROFIT, "SELL", "1.03"),  # a sell target: the price rises to it
        (OrderType.TAKE_PROFIT_LIMIT, "BUY", "0.97"),  # a buy target: the price falls to it
    ],
)
def test_each_trigger_fires_on_its_side_of_the_market(
    transport: Transport,
    sim: Simulator,
    server: HttpsServer,
    make: Any,
    kind: OrderType,
    side: str,
    factor: str,
) -> None:
    client = make()
    stop = _ticks(client, transport, sim.market.price(_ENGINE_BTC) * Decimal(factor))
    fields: dict[str, Any] = {"symbol": transport.btc, "side": side, "quantity": "0.01"}
    if kind is OrderType.STOP_LOSS:
        order: Any = StopLossOrder(stop_price=stop, **fields)
    elif kind is OrderType.TAKE_PROFIT:
        order = TakeProfitOrder(stop_price=stop, **fields)
    else:
        order = TakeProfitLimitOrder(stop_price=stop, price=stop, **fields)
    if not _offers(client, kind, server, lambda: client.place_order(order)):
        return
    placed = client.place_order(order)
    assert placed.status is OrderStatus.NEW
    assert placed.type is kind
    sim.market.set_price(_ENGINE_BTC, stop)
    assert _held(sim, placed.client_order_id).status == "FILLED"


def test_a_trigger_already_reached_is_refused(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    client = make()
    above = _ticks(client, transport, sim.market.price(_ENGINE_BTC) * Decimal("1.02"))
    order = StopLossOrder(symbol=transport.btc, side="SELL", quantity="0.01", stop_price=above)
    if not _offers(client, OrderType.STOP_LOSS, server, lambda: client.place_order(order)):
        return
    with pytest.raises(VenueRejected):
        client.place_order(order)


def test_post_only_never_takes(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    """A post-only buy above the market would take: Binance refuses it (LIMIT_MAKER),
    Kraken accepts then cancels it (oflags=post); either way nothing fills. Below the
    market it rests as a maker."""
    client = make()
    last = sim.market.price(_ENGINE_BTC)
    taking = LimitOrder(
        symbol=transport.btc,
        side="BUY",
        quantity="0.01",
        price=_ticks(client, transport, last * Decimal("1.05")),
        post_only=True,
    )
    try:
        placed = client.place_order(taking, idempotency_key="post-1")
    except VenueRejected:
        pass
    else:
        assert placed.status is OrderStatus.CANCELED
    held = [o for o in sim.market.orders.values() if o.price == taking.price]
    assert all(o.filled == 0 for o in held)
    making = taking.model_copy(update={"price": _ticks(client, transport, last * Decimal("0.9"))})
    rested = client.place_order(making)
    assert rested.status is OrderStatus.NEW
    assert rested.type is OrderType.LIMIT


def test_conditional_orders_are_checked_before_io(
    transport: Transport, server: HttpsServer, make: Any
) -> None:
    """A stop price off the tick, a stop-limit without its limit, post-only on a stop:
    refused locally, nothing sent."""
    client = make()
    client.instruments()
    before = server.bytes_received
    tick = client.instruments()[transport.btc].tick_size
    with pytest.raises(InvalidRequest):
        client.check_order(
            StopLossOrder(
                symbol=transport.btc,
                side="SELL",
                quantity="0.01",
                stop_price=Decimal(50_000) + tick / 3,
            )
        )
    with pytest.raises(InvalidRequest, match="limit price"):
        StopLimitOrder(symbol=transport.btc, side="SELL", quantity="0.01", stop_price="50000")
    with pytest.raises(InvalidRequest, match="post_only"):
        StopLossOrder(
            symbol=transport.btc, side="SELL", quantity="0.01", stop_price="50000", post_only=True
        )
    assert server.bytes_received == before


# --- amend: a journaled cancel-then-place -------------------------------------------------


def test_amend_replaces_once_and_never_leaves_two_live(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    """The replacement is placed once per replaced order: the same amend again returns
    it; another amend of the old order is refused; a bad change is refused before the
    live order is touched."""
    from securetrade import IdempotencyKeyMismatch

    client = make()
    old = client.place_order(
        LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price="60000.00")
    )
    with pytest.raises(InvalidRequest):
        client.amend(transport.btc, order_id=old.order_id, price="60000.001")  # off the tick
    assert _held(sim, old.client_order_id).status == "NEW"
    new = client.amend("BTC/USDT", order_id=old.order_id, price="59000.00", quantity="0.02")
    assert (new.symbol, new.price, new.quantity, new.status) == (
        "BTC/USDT",
        Decimal("59000.00"),
        Decimal("0.02"),
        OrderStatus.NEW,
    )
    assert _held(sim, old.client_order_id).status == "CANCELED"
    again = client.amend(transport.btc, order_id=old.order_id, price="59000.00", quantity="0.02")
    assert again.order_id == new.order_id
    with pytest.raises(IdempotencyKeyMismatch):
        client.amend(transport.btc, order_id=old.order_id, price="58000.00")
    assert [o.order_id for o in client.open_orders(transport.btc)] == [new.order_id]
    sent = sim.dialect.stats.by_path
    if getattr(client.venue, "atomic_replace", False):  # Binance: one cancel-and-place
        assert sent["POST /api/v3/order/cancelReplace"] == 1
        assert "DELETE /api/v3/order" not in sent


# --- OCO, where the venue has it (Binance) -------------------------------------------------


def _oco(client: Any, transport: Transport, sim: Simulator) -> Any:
    from securetrade.models import OcoOrder

    last = sim.market.price(_ENGINE_BTC)
    stop = _ticks(client, transport, last * Decimal("0.98"))
    return OcoOrder(
        symbol=transport.btc,
        side="SELL",
        quantity="0.01",
        price=_ticks(client, transport, last * Decimal("1.02")),
        stop_price=stop,
        stop_limit_price=_ticks(client, transport, stop * Decimal("0.995")),
    )


def test_oco_take_profit_fills_and_the_stop_goes(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    """An OCO is one intent: placed once per key (its limit leg carries the client order
    id), both legs live at the venue; when the price reaches the take-profit, the limit
    leg fills and the venue cancels the stop leg."""
    client = make()
    order = _oco(client, transport, sim)
    if not _offers(client, OrderType.OCO, server, lambda: client.place_order(order)):
        return
    placed = client.place_order(order, idempotency_key="oco-1")
    assert (placed.type, placed.status, placed.price) == (
        OrderType.OCO,
        OrderStatus.NEW,
        order.price,
    )
    again = client.place_order(order, idempotency_key="oco-1")
    assert again.order_id == placed.order_id
    legs = [o for o in sim.market.orders.values() if o.list_id != -1]
    assert len(legs) == 2
    assert {o.display_type for o in legs} == {"LIMIT_MAKER", "STOP_LOSS_LIMIT"}
    sim.market.set_price(_ENGINE_BTC, order.price)
    assert sorted(o.status for o in legs) == ["EXPIRED", "FILLED"]
    done = client.get_order(transport.btc, order_id=placed.order_id)
    assert (done.type, done.status) == (OrderType.OCO, OrderStatus.FILLED)


def test_oco_stop_triggers_and_cancelling_one_leg_cancels_both(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    client = make()
    order = _oco(client, transport, sim)
    if not _offers(client, OrderType.OCO, server, lambda: client.place_order(order)):
        return
    first = client.place_order(order)
    sim.market.set_price(_ENGINE_BTC, order.stop_price)  # the stop-loss fires
    legs = {o.display_type: o for o in sim.market.orders.values() if o.list_id != -1}
    assert legs["STOP_LOSS_LIMIT"].status == "FILLED"
    assert legs["LIMIT_MAKER"].status == "EXPIRED"
    assert client.get_order(transport.btc, order_id=first.order_id).status is OrderStatus.EXPIRED
    sim.market.set_price(_ENGINE_BTC, None)
    second = client.place_order(_oco(client, transport, sim))
    client.cancel_order(transport.btc, order_id=second.order_id)
    live = [o for o in sim.market.orders.values() if o.is_open]
    assert live == []  # both legs went with the one cancelled


def test_oco_legs_on_the_wrong_sides_are_refused_locally(transport: Transport) -> None:
    from securetrade.models import OcoOrder

    with pytest.raises(InvalidRequest, match="above its stop_price"):
        OcoOrder(symbol=transport.btc, side="SELL", quantity="1", price="90", stop_price="100")
    with pytest.raises(InvalidRequest, match="below its stop_price"):
        OcoOrder(symbol=transport.btc, side="BUY", quantity="1", price="110", stop_price="100")
