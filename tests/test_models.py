"""Order models: money is an exact Decimal, bad input is our InvalidRequest, orders are frozen."""

from __future__ import annotations

import decimal
import math
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from securetrade.errors import InvalidRequest, LocalRefusal
from securetrade.models import (
    Fill,
    Instrument,
    LimitOrder,
    MarketOrder,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    as_replayed,
)


def limit(**overrides: Any) -> LimitOrder:
    fields: dict[str, Any] = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "price": "100"}
    return LimitOrder(**{**fields, **overrides})


def market(**overrides: Any) -> MarketOrder:
    fields: dict[str, Any] = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "1"}
    return MarketOrder(**{**fields, **overrides})


# --- construction ---------------------------------------------------------------------------------


def test_limit_order_defaults() -> None:
    """A limit order is LIMIT/GTC with exact Decimal fields and a notional."""
    order = limit(side="buy", quantity="0.5", price="20000.10")
    assert order.type is OrderType.LIMIT
    assert order.side is Side.BUY
    assert order.time_in_force is TimeInForce.GTC
    assert order.quantity == Decimal("0.5")
    assert order.price == Decimal("20000.10")
    assert order.notional == Decimal("10000.050")
    assert order.client_order_id is None


def test_market_order_defaults() -> None:
    """A market order has no price, no time in force and no notional."""
    order = market(quantity=3)
    assert order.type is OrderType.MARKET
    assert order.side is Side.SELL
    assert order.price is None
    assert order.time_in_force is None
    assert order.notional is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),
        (0.3, "0.3"),
        (1e-8, "1E-8"),
        (123.456, "123.456"),
        (2, "2"),
        (10**30, "1000000000000000000000000000000"),
        ("0.1", "0.1"),
        (" 0.25 ", "0.25"),
        ("1e-3", "0.001"),
        (Decimal("0.00000001"), "0.00000001"),
    ],
)
def test_quantity_is_exact_decimal(value: Any, expected: str) -> None:
    """Floats go through their shortest repr, never their binary expansion."""
    order = market(quantity=value)
    assert isinstance(order.quantity, Decimal)
    assert order.quantity == Decimal(expected)
    assert order.quantity.as_tuple() == Decimal(expected).as_tuple()


def test_float_point_one_is_not_binary_expansion() -> None:
    """The classic: 0.1 must not become 0.1000000000000000055511151231257827."""
    order = limit(quantity=0.1, price=0.1)
    assert str(order.quantity) == "0.1"
    assert str(order.price) == "0.1"
    assert order.quantity != Decimal.from_float(0.1)


BAD_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    "NaN",
    "nan",
    "sNaN",
    "inf",
    "-inf",
    "Infinity",
    Decimal("NaN"),
    Decimal("Infinity"),
    True,
    False,
    0,
    0.0,
    "0",
    "-0",
    "0E-8",
    -1,
    -0.5,
    "-0.00000001",
    "",
    "one",
    "1,5",
    None,
    [1],
]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("field", ["quantity", "price"])
def test_bad_numbers_raise_invalid_request(field: str, value: Any) -> None:
    """NaN, infinities, booleans, non-positive and non-numbers are refused with *our* error."""
    with pytest.raises(InvalidRequest) as info:
        limit(**{field: value})
    assert not isinstance(info.value, ValidationError)
    assert isinstance(info.value, LocalRefusal)
    assert field in str(info.value)


@pytest.mark.parametrize("value", [math.nan, "inf", True, 0, "-1"], ids=repr)
def test_market_order_refuses_bad_quantity(value: Any) -> None:
    """The market-order path validates quantity the same way."""
    with pytest.raises(InvalidRequest):
        market(quantity=value)


@pytest.mark.parametrize(
    "symbol",
    [
        "BTCUSDT&price=0",
        "BTC USDT",
        "",
        "../x",
        "/BTCUSDT",
        "BTC?USDT",
        "BTC#USDT",
        "BTC%26USDT",
        "BTC\tUSDT",
        "BTCUSDT\r\nX-Evil: 1",
        "\nBTCUSDT",
        "B" * 41,
        "\uff11\uff12\uff13",
    ],
)
def test_symbol_outside_grammar_is_refused(symbol: str) -> None:
    """A symbol can never carry query syntax, paths, whitespace or control characters."""
    with pytest.raises(InvalidRequest):
        limit(symbol=symbol)
    with pytest.raises(InvalidRequest):
        market(symbol=symbol)


@pytest.mark.parametrize("field", ["symbol", "client_order_id"])
def test_trailing_newline_is_refused(field: str) -> None:
    """'$' matches before a final newline: the grammar must be anchored with fullmatch or \\Z."""
    with pytest.raises(InvalidRequest):
        limit(**{field: "BTCUSDT\n" if field == "symbol" else "abc\n"})


@pytest.mark.parametrize("symbol", ["BTCUSDT", "btc-usdt", "BTC/USDT", "BTC-PERP:USDT", "A" * 40])
def test_symbol_inside_grammar_is_accepted(symbol: str) -> None:
    """The refusal above is a grammar, not a blanket rejection."""
    assert limit(symbol=symbol).symbol == symbol


@pytest.mark.parametrize("cid", ["", "a b", "x" * 37, "id&x=1", "é"])
def test_client_order_id_outside_grammar_is_refused(cid: str) -> None:
    """Client order ids end up on the wire too; they get the same treatment."""
    with pytest.raises(InvalidRequest):
        limit(client_order_id=cid)


def test_limit_order_requires_price() -> None:
    """A limit order without a price is meaningless and must not default to anything."""
    with pytest.raises(InvalidRequest, match="price"):
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="1")


@pytest.mark.parametrize("price", ["100", 100, Decimal("1")])
def test_market_order_refuses_price(price: Any) -> None:
    """A price on a market order would be silently ignored by the venue; refuse it."""
    with pytest.raises(InvalidRequest, match="price"):
        MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1", price=price)


def test_market_order_refuses_time_in_force() -> None:
    """Same reasoning as for the price."""
    with pytest.raises(InvalidRequest):
        MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1", time_in_force="IOC")


@pytest.mark.parametrize("extra", [{"side": "HOLD"}, {"type": "MARKET"}, {"leverage": "100"}])
def test_unknown_or_mismatched_fields_are_refused(extra: dict[str, str]) -> None:
    """Unknown fields are refused rather than dropped; a LimitOrder cannot claim MARKET."""
    with pytest.raises(InvalidRequest):
        limit(**extra)


@pytest.mark.parametrize("field", ["quantity", "price", "symbol", "side", "client_order_id"])
def test_models_are_frozen(field: str) -> None:
    """An order cannot be changed after validation (that would skip the validation)."""
    order = limit()
    before = order.model_dump()
    with pytest.raises((ValidationError, TypeError, AttributeError)):
        setattr(order, field, "0")
    assert order.model_dump() == before


def test_orders_are_hashable_values() -> None:
    """Frozen models compare by value, which the idempotency layer relies on."""
    assert limit(quantity="0.1") == limit(quantity=0.1)
    assert hash(limit(quantity="0.1")) == hash(limit(quantity=0.1))
    assert limit() != limit(side="SELL")


def test_replayed_says_how_an_order_came_back_not_what_it_is() -> None:
    """``replayed`` is how place_order came by an order: two reports of one order are
    equal and hash alike whatever it says, and the journal's JSON never stores it (a
    replay read back from the journal is marked by the reader, not by what was written)."""
    order = Order(venue="binance", symbol="BTCUSDT", order_id="7", client_order_id="c-7",
                  side="BUY", type="MARKET", status="FILLED", quantity="1")  # fmt: skip
    replay = as_replayed(order)
    assert (order.replayed, replay.replayed) == (False, True)
    assert replay == order
    assert order == replay
    assert hash(replay) == hash(order)
    assert replay != order.model_copy(update={"order_id": "8"})
    assert replay.model_dump_json() == order.model_dump_json()
    assert not Order.model_validate_json(replay.model_dump_json()).replayed
    assert replay.model_copy(update={"symbol": "ETHUSDT"}).replayed  # kept by a relabel
    assert pickle.loads(pickle.dumps(replay)).replayed
    assert repr(replay) == repr(order)


# --- fingerprint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"quantity": "0.10"}, {"quantity": "0.1"}),
        ({"quantity": "1.000"}, {"quantity": 1}),
        ({"quantity": 0.1}, {"quantity": Decimal("0.1000")}),
        ({"price": "100"}, {"price": "1E+2"}),
        ({"price": "100.00"}, {"price": 100.0}),
        ({"side": "buy"}, {"side": "BUY"}),
        ({}, {"time_in_force": "GTC"}),
    ],
)
def test_fingerprint_equal_for_the_same_intent(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal orders written differently share the idempotency fingerprint."""
    assert limit(**a).fingerprint() == limit(**b).fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"side": "SELL"},
        {"price": "100.01"},
        {"price": "10"},
        {"quantity": "1.1"},
        {"quantity": "10"},
        {"symbol": "ETHUSDT"},
        {"time_in_force": "IOC"},
    ],
)
def test_fingerprint_differs_when_intent_differs(change: dict[str, Any]) -> None:
    """A different side, price, size, symbol or time in force is a different intent."""
    assert limit().fingerprint() != limit(**change).fingerprint()


def test_fingerprint_differs_between_market_and_limit() -> None:
    """Market and limit orders of the same size are different intents."""
    assert market(side="BUY").fingerprint() != limit().fingerprint()


def test_fingerprint_is_plain_notation() -> None:
    """Exponents never reach the canonical text (1E+2 and 100 must not differ by format)."""
    fingerprint = limit(quantity="1E-8", price="1E+5").fingerprint()
    assert "E" not in fingerprint.replace("BTCUSDT", "")
    assert "0.00000001" in fingerprint
    assert "|100000|" in fingerprint


# --- instrument rules -----------------------------------------------------------------------------

BTC = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size="0.01",
    step_size="0.00001",
    min_quantity="0.0001",
    min_notional="5",
)


def test_instrument_accepts_an_order_that_fits() -> None:
    """The checks below must refuse for their reason, not because everything is refused."""
    BTC.check(limit(quantity="0.00100", price="65000.01"))
    BTC.check(limit(quantity="0.0001", price="50000"))  # notional exactly the minimum
    BTC.check(market(quantity="0.5"))


@pytest.mark.parametrize(
    ("field", "order"),
    [
        ("quantity", {"quantity": "0.000011", "price": "100000"}),
        ("quantity", {"quantity": "1.123456", "price": "100"}),
        ("price", {"quantity": "1", "price": "100.001"}),
        ("price", {"quantity": "1", "price": "65000.015"}),
    ],
)
def test_too_many_decimals_is_refused(field: str, order: dict[str, str]) -> None:
    """More decimals than the step/tick allows would be rejected (or rounded) by the venue."""
    with pytest.raises(InvalidRequest, match="decimals") as info:
        BTC.check(limit(**order))
    assert str(info.value).startswith(field)


def test_below_minimum_quantity_is_refused() -> None:
    """min_quantity applies to market orders too."""
    with pytest.raises(InvalidRequest, match="minimum"):
        BTC.check(market(quantity="0.00009"))


def test_below_minimum_notional_is_refused() -> None:
    """quantity x price under min_notional is refused locally."""
    with pytest.raises(InvalidRequest, match="notional"):
        BTC.check(limit(quantity="0.0001", price="49999.99"))


def test_instrument_refuses_other_symbol_and_halted_trading() -> None:
    """An order checked against the wrong instrument, or a halted one, is refused."""
    with pytest.raises(InvalidRequest):
        BTC.check(limit(symbol="ETHUSDT"))
    halted = BTC.model_copy(update={"trading": False})
    with pytest.raises(InvalidRequest, match="not trading"):
        halted.check(limit())


def test_huge_quantity_is_refused_with_invalid_request() -> None:
    """Instrument.check promises InvalidRequest; a decimal signal escapes callers' handlers."""
    try:
        BTC.check(limit(quantity="1E+30", price="1"))
    except InvalidRequest:
        pass
    except decimal.DecimalException as exc:
        pytest.fail(f"decimal error escaped Instrument.check: {exc!r}")


# --- reported orders ------------------------------------------------------------------------------


def order(**overrides: Any) -> Order:
    fields: dict[str, Any] = {
        "venue": "binance",
        "symbol": "BTCUSDT",
        "order_id": "1",
        "client_order_id": "c-1",
        "side": "BUY",
        "type": "LIMIT",
        "status": "FILLED",
        "quantity": "3",
        "price": "101",
    }
    return Order(**{**fields, **overrides})


def test_average_price_from_fills() -> None:
    """Quantity-weighted over the fills, exact in Decimal."""
    fills = (
        Fill(price="100", quantity="1"),
        Fill(price="101", quantity="2", commission="0.001", commission_asset="BNB"),
    )
    result = order(fills=fills, filled_quantity="3", quote_quantity="999")
    assert result.average_price == Decimal("302") / Decimal("3")


def test_average_price_from_quote_quantity() -> None:
    """Without fills, cumulative quote over filled quantity."""
    result = order(filled_quantity="0.5", quote_quantity="50.25")
    assert result.average_price == Decimal("100.5")


def test_average_price_none_while_unfilled() -> None:
    """Nothing filled: no average, not a division by zero."""
    result = order(status="NEW", filled_quantity="0", quote_quantity="0")
    assert result.average_price is None
    assert result.is_open
    assert OrderStatus.PARTIALLY_FILLED.is_open
    assert not OrderStatus.CANCELED.is_open


def test_average_price_none_when_fills_carry_no_quantity() -> None:
    """Zero-quantity fills mean nothing has filled, which the docstring maps to None."""
    result = order(status="NEW", fills=(Fill(price="100", quantity="0"),))
    assert result.average_price is None


@pytest.mark.parametrize("value", ["-1", "NaN", math.inf, True])
def test_fill_and_order_money_refuse_bad_numbers(value: Any) -> None:
    """Parsed venue answers get the same Decimal discipline as requests."""
    with pytest.raises(InvalidRequest):
        Fill(price=value, quantity="1")
    with pytest.raises(InvalidRequest):
        order(filled_quantity=value)


# --- property -------------------------------------------------------------------------------------

positive_decimals = (
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: d.copy_abs()).filter(bool)
)


@settings(max_examples=300, deadline=None)
@given(quantity=positive_decimals, price=positive_decimals)
def test_positive_decimal_strings_round_trip_exactly(quantity: Decimal, price: Decimal) -> None:
    """Any finite positive Decimal given as text arrives unchanged: value, digits and exponent."""
    result = limit(quantity=str(quantity), price=str(price))
    assert result.quantity == quantity
    assert result.quantity.as_tuple() == quantity.as_tuple()
    assert str(result.price) == str(price)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False))
def test_positive_floats_use_shortest_repr(value: float) -> None:
    """Every positive float becomes the Decimal of its repr, round-tripping to the same float."""
    result = market(quantity=value)
    assert result.quantity == Decimal(repr(value))
    assert float(result.quantity) == value


@pytest.mark.parametrize(
    "value",
    [
        "1.5",
        " 1.5 ",
        "0",
        0.1,
        1,
        "1e3",
        Decimal("2"),
        "1_000",
        True,
        "NaN",
        "inf",
        "-1",
        "-0.0001",
        "0x10",
        b"1",
        [1],
        None,
        math.inf,
    ],
    ids=repr,
)
def test_venue_amounts_are_judged_like_caller_amounts(value: Any) -> None:
    """Money (venue answers, checked by pydantic) accepts exactly what to_decimal accepts
    and is not negative, with the same value; what it refuses is our InvalidRequest."""
    from securetrade.models import to_decimal

    try:
        expected: Decimal | None = to_decimal(value)
    except InvalidRequest:
        expected = None
    if expected is not None and expected < 0:
        expected = None
    if expected is None:
        with pytest.raises(InvalidRequest):
            Fill(price=value, quantity="1")
    else:
        assert Fill(price=value, quantity="1").price == expected


def test_a_copy_keeps_the_private_marks_and_shares_no_state() -> None:
    """_Model's own shallow copy (the order path's, to add the idempotency key): the
    copy carries the marks the core set (amend's order id, replayed) and marking the
    copy leaves the original as it was."""
    from securetrade.models.orders import replacing

    amended = replacing(limit(), "123")
    copied = amended.model_copy()
    assert copied == amended
    assert copied.replaces == "123"
    assert limit().replaces is None
    assert copied.__dict__ is not amended.__dict__
    assert copied.model_fields_set == amended.model_fields_set
    assert copied.model_fields_set is not amended.model_fields_set
    answer = Order(venue="binance", symbol="BTCUSDT", order_id="7", client_order_id="c-7",
                   side="BUY", type="LIMIT", status="NEW", quantity="1", price="100")  # fmt: skip
    replayed = as_replayed(answer)
    assert replayed.replayed
    assert not answer.replayed
    keyed = replayed.model_copy(update={"idempotency_key": "k-1"})
    assert keyed.replayed
    assert keyed.idempotency_key == "k-1"
    assert replayed.idempotency_key is None
    assert not as_replayed(keyed, False).replayed
    assert keyed.replayed


def test_private_marks_start_fresh_on_every_model() -> None:
    """Private attributes start from their defaults on every model however it is made
    (constructor, JSON, model_construct): marking one model never marks the next."""

    def answer() -> Order:
        return Order(venue="binance", symbol="BTCUSDT", order_id="7", client_order_id="c-7",
                     side="BUY", type="LIMIT", status="NEW", quantity="1", price="100")  # fmt: skip

    first = answer()
    first._replayed = True  # as the core marks an answer (as_replayed marks a copy)
    assert first.replayed
    assert not answer().replayed
    assert not Order.model_validate_json(first.model_dump_json()).replayed
    assert not Order.model_construct(**dict(first)).replayed
    assert limit().replaces is None


def test_order_type_and_status_properties_name_their_members() -> None:
    """The members each property tests (kept in module tuples, read once)."""
    priced = {OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
    priced.add(OrderType.OCO)
    assert {t for t in OrderType if t.takes_price} == priced
    assert {t for t in OrderType if not t.is_conditional} == {OrderType.MARKET, OrderType.LIMIT}
    assert {s for s in OrderStatus if s.is_open} == {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}


def test_choice_values_read_as_enum_values_do() -> None:
    """Choice's own ``value`` (read in C) gives what Enum's gives, on every member, and
    still serialises through pydantic as the venue's spelling."""
    import enum

    for kind in (Side, OrderType, OrderStatus, TimeInForce):
        for member in kind:
            assert member.value == enum.Enum.__dict__["value"].__get__(member, kind)
            assert member.value is member._value_
    assert limit().model_dump(mode="json")["side"] == "BUY"
    assert f"{OrderStatus.CANCELED}" == str(OrderStatus.CANCELED) == "CANCELED"
