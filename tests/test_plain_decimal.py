"""plain_decimal writes what format(value, "f") writes, for every Decimal: the wire text of
prices and sizes, the journal's fills and the order fingerprint all depend on it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetrade._checks import plain_decimal
from securetrade.models import LimitOrder
from securetrade.venues.base import wire_decimal

_decimals = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(int(c) for c in str(digits)), exponent)),
    st.integers(0, 1),
    st.integers(0, 10**40),
    st.integers(-40, 40),
)


@given(_decimals)
def test_plain_decimal_is_format_f(value: Decimal) -> None:
    assert plain_decimal(value) == format(value, "f")
    assert plain_decimal(value.normalize()) == format(value.normalize(), "f")


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("1E+2", "100"),
        ("0.0000001", "0.0000001"),
        ("1E-7", "0.0000001"),
        ("0E-8", "0.00000000"),
        ("-0", "-0"),
        ("70000.00", "70000.00"),
        ("NaN", "NaN"),
    ],
)
def test_exponents_are_written_out(text: str, plain: str) -> None:
    assert plain_decimal(Decimal(text)) == plain == wire_decimal(Decimal(text))


def test_fingerprint_writes_no_exponent() -> None:
    order = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="1E-7", price="1E+5")
    assert order.fingerprint() == "BTCUSDT|BUY|LIMIT|0.0000001|100000|GTC"
