"""OrderRequest's derived values (notional, fingerprint) read the fields from the model's
__dict__: pinned here for every kind of order, against the fields read one by one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from securetrade.models import (
    LimitOrder,
    MarketOrder,
    OcoOrder,
    OrderRequest,
    StopLimitOrder,
    StopLossOrder,
)

ORDERS = [
    LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.0010", price="70000.00"),
    LimitOrder(symbol="BTCUSDT", side="SELL", quantity="2", price="1E+5", post_only=True),
    LimitOrder(
        symbol="AAPL",
        side="BUY",
        quantity="3",
        price="190",
        time_in_force="DAY",
        extended_hours=True,
    ),
    MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.5"),
    MarketOrder(symbol="BTCUSDT", side="SELL", quote_quantity="100.50"),
    StopLossOrder(symbol="BTCUSDT", side="SELL", quantity="1", stop_price="60000"),
    StopLimitOrder(symbol="BTCUSDT", side="SELL", quantity="1", stop_price="60000", price="59000"),
    OcoOrder(
        symbol="BTCUSDT",
        side="SELL",
        quantity="1",
        price="80000",
        stop_price="60000",
        stop_limit_price="59000",
    ),
]

FINGERPRINTS = [
    "BTCUSDT|BUY|LIMIT|0.001|70000|GTC",
    "BTCUSDT|SELL|LIMIT|2|100000|GTC|post_only",
    "AAPL|BUY|LIMIT|3|190|DAY|extended_hours",
    "BTCUSDT|BUY|MARKET|0.5||",
    "BTCUSDT|SELL|MARKET||||quote=100.5",
    "BTCUSDT|SELL|STOP_LOSS|1|||stop=60000",
    "BTCUSDT|SELL|STOP_LOSS_LIMIT|1|59000|GTC|stop=60000",
    "BTCUSDT|SELL|OCO|1|80000|GTC|stop=60000|stop_limit=59000",
]


def _notional(order: OrderRequest) -> Decimal | None:
    if order.quote_quantity is not None:
        return order.quote_quantity
    if order.price is None or order.quantity is None:
        return None
    return order.quantity * order.price


@pytest.mark.parametrize(("order", "fingerprint"), list(zip(ORDERS, FINGERPRINTS, strict=True)))
def test_fingerprint_and_notional_of_every_kind(order: OrderRequest, fingerprint: str) -> None:
    assert order.fingerprint() == fingerprint
    assert order.notional == _notional(order)
    copy = order.model_copy()
    assert copy.fingerprint() == fingerprint
    assert copy.notional == order.notional
