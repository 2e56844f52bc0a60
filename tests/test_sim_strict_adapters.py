"""What the strict simulator revealed in securetrade's own venue adapters (issue 25)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from securetrade import LimitOrder, MarketOrder, OrderStatus
from securetrade.sim import Simulator


def test_cancelled_order_keeps_its_client_order_id(sim: Simulator, make_client: Any) -> None:
    """Binance answers a cancel with the order's id in ``origClientOrderId`` and the
    cancel's own id in ``clientOrderId``: the adapter read the latter, so the cancelled
    order came back under an id that was never the order's."""
    client = make_client(sim.create_key())
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")
    )
    cancelled = client.cancel_order("BTCUSDT", order_id=order.order_id)
    assert cancelled.status is OrderStatus.CANCELED
    assert cancelled.client_order_id == order.client_order_id


def test_market_buy_reports_the_commission_it_paid(sim: Simulator, make_client: Any) -> None:
    """The fill's commission (in the asset received) reaches the caller, and the balance
    is what the venue left: quantity bought less the commission."""
    client = make_client(sim.create_key(balances={"USDT": Decimal("1000")}))
    order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    assert order.status is OrderStatus.FILLED
    paid = sum((f.commission for f in order.fills), Decimal(0))
    assert paid == Decimal("0.000001")
    assert {f.commission_asset for f in order.fills} == {"BTC"}
    balances = {b.asset: b.free for b in client.balances()}
    assert balances["BTC"] == Decimal("0.001") - paid
