"""Property tests over the fuzz targets: hostile input yields only our typed errors.

These run in every test run with the default hypothesis profile, and again with many more
examples under ``nox -s security`` (``--hypothesis-profile=fuzz``). The contracts live in
``targets.py``, shared with the atheris harnesses.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import runner
from hypothesis import example, given
from hypothesis import strategies as st
from targets import KRAKEN, encoders, parse_payload, parsers, verifier

from securetrade.errors import AmbiguousOutcome, SecureTradeError
from securetrade.transport.base import HttpResponse
from securetrade.venues.base import Op, Verdict
from securetrade.venues.binance import BINANCE

# JSON-shaped values: what a venue's answer decodes to, with the numbers JSON allows too
# (NaN and Infinity included, since Python's json reads them).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["NEW", "FILLED", "LIMIT", "MARKET", "BUY", "NaN", "-1", "1e999", "0.1"])
)
keys = st.sampled_from(
    [
        "symbol", "orderId", "clientOrderId", "side", "type", "status", "origQty", "price",
        "executedQty", "fills", "qty", "time", "timeInForce", "balances", "asset", "free",
        "locked", "symbols", "filters", "filterType", "serverTime", "rateLimits", "limit",
        "interval", "rateLimitType", "intervalNum", "id", "open", "descr", "ordertype",
        "pair", "vol", "vol_exec", "opentm", "cost", "result", "error", "c", "balance",
        "hold_trade", "unixtime", "refid",
        # the brokers' (Alpaca, OANDA)
        "client_order_id", "filled_qty", "filled_avg_price", "limit_price", "stop_price",
        "created_at", "timestamp", "is_open", "next_open", "next_close", "cash", "currency",
        "order", "transaction", "transactions", "orderCreateTransaction",
        "orderFillTransaction", "orderCancelTransaction", "lastTransactionID", "units",
        "instrument", "state", "clientExtensions", "instruments", "name", "pipLocation",
        "displayPrecision", "tradeUnitsPrecision", "account", "prices", "bids", "asks",
        "liquidity", "reason", "orderID", "createTime", "fillingTransactionID",
    ]
) | st.text(max_size=6)  # fmt: skip
payloads = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=24,
)


@given(st.binary(max_size=400))
@example(b"\x00\xc8\x00" + b"[" * 100_000)  # a nesting bomb in the body
@example(b"\x01\xadnan\x00{}")  # 429 with Retry-After: nan
@example(b"\x01\xa21e400\x00{}")  # 418 with an infinite Retry-After
def test_binance_parsers_raise_only_typed_errors(data: bytes) -> None:
    """Any answer to any endpoint: an outcome with a typed error and a usable pause."""
    parsers(data)


@given(payloads)
@example({"open": {"a": {"descr": {"ordertype": "limit"}}}})
@example([{"a": 1}])
@example({"price": "NaN"})
@example({"X": {"c": ["Infinity"]}})
def test_kraken_parsers_raise_only_typed_errors(payload: Any) -> None:
    """Every parse_* of both venues on any JSON value: a result or a SecureTradeError."""
    parse_payload(payload)


@given(st.binary(max_size=300))
@example(b"\x00POST\x00/signal")
@example(b"\x04\x00\x00\x00 x-st-key \x00")
def test_verifier_raises_only_inbound_rejected(data: bytes) -> None:
    """Raw or signed-then-altered messages: never accepted altered, only InboundRejected."""
    verifier(data)


@given(st.binary(max_size=300))
@example(b"a\x00b&c=d\x00\xff\xfe\x00x")
@example(b'{"a": 1.5}')
@example(b'{"a": {"b": [NaN]}}')
def test_encoders_raise_only_invalid_request(data: bytes) -> None:
    """Query pairs and JSON fields: decode to exactly what was given, or InvalidRequest."""
    encoders(data)


# --- regressions: what the fuzzers found, pinned down with plain examples --------------------


@pytest.mark.parametrize(
    "payload",
    [{}, [{"a": 1}], {"symbol": "BTCUSDT", "orderId": 1}, "text", None, {"fills": 3}],
)
def test_binance_order_of_the_wrong_shape_is_ambiguous(payload: Any) -> None:
    """Found by the parsers target: parse_order raised KeyError/AttributeError."""
    with pytest.raises(AmbiguousOutcome, match="unreadable answer"):
        BINANCE.parse_order(payload)


def test_kraken_order_of_the_wrong_shape_is_ambiguous() -> None:
    """Found by the parsers target: an open order without ``descr.type`` raised KeyError."""
    with pytest.raises(AmbiguousOutcome, match="unreadable answer"):
        KRAKEN.parse_orders({"open": {"a": {"descr": {"ordertype": "limit"}}}})


def test_non_finite_price_is_not_a_price() -> None:
    """Found by the parsers target: Binance read ``"NaN"`` as Decimal('NaN')."""
    assert BINANCE.parse_price({"price": "1.5"}) == Decimal("1.5")
    for text in ("NaN", "Infinity", "-Infinity", "sNaN", "0", "-1.5"):
        with pytest.raises(AmbiguousOutcome):
            BINANCE.parse_price({"price": text})
        with pytest.raises(SecureTradeError):
            KRAKEN.parse_price({"XXBTZUSD": {"c": [text, "1"]}})


def test_nesting_bomb_is_not_an_answer() -> None:
    """Found by the parsers target: json.loads raised RecursionError through interpret."""
    bomb = HttpResponse(200, {}, b"[" * 100_000)
    for venue in (BINANCE, KRAKEN):
        outcome = venue.interpret(venue.endpoints[Op.PLACE_ORDER], bomb)
        assert outcome.verdict is not Verdict.OK or outcome.payload is None


@pytest.mark.parametrize("header", ["nan", "inf", "-1", "1e400"])
def test_retry_after_that_is_no_pause_is_ignored(header: str) -> None:
    """Found by the parsers target: Binance passed Retry-After ``nan`` on as the pause."""
    limited = HttpResponse(429, {"retry-after": header}, b"{}")
    outcome = BINANCE.interpret(BINANCE.endpoints[Op.PLACE_ORDER], limited)
    assert outcome.verdict is Verdict.RETRYABLE
    assert outcome.retry_after is None
    usable = HttpResponse(429, {"retry-after": "2.5"}, b"{}")
    assert BINANCE.interpret(BINANCE.endpoints[Op.PLACE_ORDER], usable).retry_after == 2.5


def test_fallback_loop_reports_and_saves_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without atheris the loop still stops at the first untyped error and keeps the input."""
    monkeypatch.chdir(tmp_path)

    def fragile(data: bytes) -> None:
        if len(data) > 3:
            raise KeyError("boom")

    assert runner.fallback("parsers", fragile, ["-runs=500", "-seed=1"]) == 1
    (crash,) = tmp_path.glob("crash-*")
    assert len(crash.read_bytes()) > 3
    assert runner.fallback("parsers", parsers, ["-runs=200", "-seed=1"]) == 0
