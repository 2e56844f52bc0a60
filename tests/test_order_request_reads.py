"""OrderRequest's derived values (notional, fingerprint) read the fields from the model's
__dict__: pinned here for every kind of order, against the fields read one by one."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from securetrade.errors import InvalidRequest
from securetrade.models import (
    Fill,
    Instrument,
    LimitOrder,
    MarketOrder,
    OcoOrder,
    Order,
    OrderRequest,
    StopLimitOrder,
    StopLossOrder,
    as_json,
    as_replayed,
    replacing,
)
from securetrade.venues.binance import BINANCE

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


CID = "st0123456789abcdef0123456789abcd"
_TAIL = [("newClientOrderId", CID), ("newOrderRespType", "FULL")]
PARAMS = {
    0: [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
        ("quantity", "0.0010"), ("price", "70000.00"), *_TAIL],
    1: [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "LIMIT_MAKER"), ("quantity", "2"),
        ("price", "100000"), *_TAIL],
    3: [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.5"), *_TAIL],
    4: [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "MARKET"), ("quoteOrderQty", "100.50"),
        *_TAIL],
    5: [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "STOP_LOSS"), ("quantity", "1"),
        ("stopPrice", "60000"), *_TAIL],
    6: [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "STOP_LOSS_LIMIT"),
        ("timeInForce", "GTC"), ("quantity", "1"), ("price", "59000"), ("stopPrice", "60000"),
        *_TAIL],
}  # fmt: skip


@pytest.mark.parametrize(("index", "params"), sorted(PARAMS.items()))
def test_binance_order_params_of_every_kind(index: int, params: list[tuple[str, str]]) -> None:
    assert BINANCE.order_params(ORDERS[index], CID) == params
    amend = replacing(ORDERS[index], "12345")
    assert BINANCE.order_params(amend, CID) == [
        *params,
        ("cancelReplaceMode", "STOP_ON_FAILURE"),
        ("cancelOrderId", "12345"),
    ]


def _instrument(**rules: str) -> Instrument:
    base = {"symbol": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"}
    return Instrument(**{**base, "tick_size": "0.01", "step_size": "0.0001", **rules})


@pytest.mark.parametrize(
    ("order", "rules", "refusal"),
    [
        (ORDERS[0], {}, None),
        (ORDERS[0], {"min_notional": "100"}, "notional 70.000000 is below the minimum 100"),
        (ORDERS[0], {"min_quantity": "0.01"}, "quantity 0.0010 is below the minimum 0.01"),
        (ORDERS[0], {"step_size": "0.01"}, "quantity"),
        (ORDERS[0], {"tick_size": "1000"}, None),
        (ORDERS[0], {"tick_size": "0.3"}, "price"),
        (ORDERS[0], {"trading": "false"}, "BTCUSDT is not trading"),
        (ORDERS[5], {"tick_size": "7"}, "stop_price"),
        (ORDERS[4], {"min_notional": "200"}, "quote_quantity 100.50 is below"),
        (ORDERS[2], {}, "order for AAPL checked against BTCUSDT"),
    ],
)
def test_instrument_check_of_the_fields(
    order: OrderRequest, rules: dict[str, str], refusal: str | None
) -> None:
    instrument = _instrument(**rules)
    if refusal is None:
        instrument.check(order)
        return
    with pytest.raises(InvalidRequest) as caught:
        instrument.check(order)
    assert refusal in str(caught.value)


def test_as_json_is_model_dump_json() -> None:
    """The journal's text of an answer, made by pydantic's serializer directly."""
    filled = Order(
        venue="binance", symbol="BTCUSDT", order_id="1", client_order_id=CID, side="BUY",
        type="LIMIT", status="FILLED", quantity="0.001", price="70000.00",
        filled_quantity="0.001", quote_quantity="70", time_in_force="GTC",
        created_at=datetime(2026, 12, 7, 18, 0, tzinfo=timezone.utc),
        fills=(Fill(price="70000", quantity="0.001", commission_asset="BTC", trade_id="9"),),
    )  # fmt: skip
    bare = Order(
        venue="kraken", symbol="XBTUSD", order_id="O-1", client_order_id=CID, side="SELL",
        type="MARKET", status="NEW", quantity="1",
    )  # fmt: skip
    for order in (
        filled,
        bare,
        as_replayed(filled),
        filled.model_copy(update={"idempotency_key": "k"}),
    ):
        assert as_json(order) == order.model_dump_json()
        assert Order.model_validate_json(as_json(order)) == order


_ORDER_FIELDS: dict[str, Any] = {
    "venue": "binance", "symbol": "BTCUSDT", "order_id": "1", "client_order_id": CID,
    "side": "BUY", "type": "LIMIT", "status": "FILLED", "quantity": "0.001",
    "price": "70000.00", "time_in_force": "GTC", "fills": (),
}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"quantity": "-1"},
        {"price": "NaN"},
        {"side": "HOLD"},
        {"unknown": 1},
        {"fills": [{"price": "1", "quantity": "x"}]},
        {"created_at": "not a date"},
    ],
)
def test_from_fields_makes_and_refuses_what_the_constructor_does(change: dict[str, Any]) -> None:
    fields = {**_ORDER_FIELDS, **change}
    try:
        expected: Order | str = Order(**fields)
    except InvalidRequest as exc:
        expected = str(exc)
    try:
        made: Order | str = Order.from_fields(dict(fields))
    except InvalidRequest as exc:
        made = str(exc)
    assert made == expected
    if isinstance(made, Order):
        assert isinstance(expected, Order)
        assert made.model_fields_set == expected.model_fields_set
        assert made.replayed is False
        assert as_replayed(made).replayed is True


def test_a_policy_without_notional_limits_never_values_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notional multiplies, and the order path asks the policy twice per order: it is
    worked out only for a policy with a notional limit, which still refuses as before."""
    from securetrade.errors import PolicyViolation
    from securetrade.policy import Policy

    reads: list[int] = []
    real = OrderRequest.notional

    def counted(self: OrderRequest) -> Decimal | None:
        reads.append(1)
        return real.fget(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(OrderRequest, "notional", property(counted))
    order = ORDERS[0]  # 0.0010 at 70000.00: 70
    plain = Policy(max_orders=100)
    plain.check(order, final=False)
    assert not plain.needs_reference(order)
    assert reads == []
    for limits in ({"max_notional": "50"}, {"daily_notional": "60"}):
        with pytest.raises(PolicyViolation):
            Policy(**limits).check(order)  # type: ignore[arg-type]
    Policy(max_notional="100").check(order)
    assert reads
    market = ORDERS[3]  # no price: valued at the reference price when a limit asks
    assert Policy(max_notional="100").needs_reference(market)
    assert not Policy().needs_reference(market)
