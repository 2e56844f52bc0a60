"""The method walk of ``test_public_api_methods``, carried on to the exported classes it did
not reach: the venue adapters (more classes follow below).

Same rule: one hostile argument at a time; the call accepts it or raises a
:class:`SecureTradeError`, and anything else is an escape.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import SecureTradeError
from securetrade.core.history import Window
from securetrade.keys import ApiKey
from securetrade.models import LimitOrder
from securetrade.transport import HttpResponse
from securetrade.venues import Op, Outcome, Verdict, get_venue
from test_public_api_methods import BASELINE, _public_methods, _walk

VENUES = ["binance", "kraken", "alpaca", "oanda", "ccxt:bybit"]  # ccxt: no ccxt import needed

#: A symbol each venue's grammar accepts.
SYMBOLS = {
    "binance": "BTCUSDT",
    "kraken": "XBTUSDT",
    "alpaca": "AAPL",
    "oanda": "EUR_USD",
    "ccxt:bybit": "BTC/USDT",
}


def _venue_key(name: str) -> ApiKey:
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" if name == "kraken" else "walk-secret"
    return ApiKey(name, "walk-key-0001", secret, scopes=["read", "trade"])


def _venue_arguments(name: str) -> dict[str, Any]:
    """Working arguments of a venue's methods, by parameter name."""
    venue = get_venue(name)
    symbol = SYMBOLS[name]
    endpoint = venue.endpoints[Op.PLACE_ORDER]
    return {
        "symbol": symbol,
        "endpoint": endpoint,
        "params": lambda tmp: [("symbol", symbol)],
        "key_id": "walk-key-0001",
        "signer": lambda tmp: venue.signer(_venue_key(name)),
        "timestamp_ms": 1_700_000_000_000,
        "payload": lambda tmp: {},
        "order": lambda tmp: LimitOrder(symbol=symbol, side="BUY", quantity="1", price="10"),
        "client_order_id": venue.client_order_id("walk", "walk-1"),
        "account": "walk",
        "idempotency_key": "walk-1",
        "interval": "1m",
        "since_ms": None,
        "limit": None,
        "depth": 5,
        "cursor": None,
        "made": lambda tmp: Window(
            Op.TRADES, symbol, symbol, None, 1_700_000_000_000, 1_700_000_100_000
        ),
        "asset": "BTC",
        "amount": Decimal("0.1"),
        "address": "walk-address",
        "network": None,
        "response": lambda tmp: HttpResponse(200, b"{}"),
        "key": lambda tmp: _venue_key(name),
        "outcome": lambda tmp: Outcome(Verdict.OK, {}, None),
        "environment": "live",  # ccxt's bind() and open_transport()
        "context": None,
        "asynchronous": False,
        "timeout": 5.0,
        "proxy": None,
        "unsafe_allow_plain_http": False,
    }


@pytest.mark.parametrize("name", VENUES)
def test_venue_methods_refuse_hostile_arguments(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each adapter's public methods: a venue is exported, and a platform calls its
    ``prepare``, ``order_params`` and parsers with what its own code built."""
    for argument, value in _venue_arguments(name).items():
        monkeypatch.setitem(BASELINE, argument, value)
    venue = get_venue(name)
    cls = type(venue)
    escapes = [e for method in _public_methods(cls) for e in _walk(venue, cls, method, tmp_path)]
    assert not escapes, "\n".join(escapes)


@pytest.mark.parametrize("name", VENUES)
def test_venue_prepare_refuses_a_params_list_with_a_wrong_pair(name: str) -> None:
    """Inside a list, each pair is checked too: a number, a string standing for a pair
    ("ab" unpacks as two letters), a three-item tuple."""
    venue = get_venue(name)
    endpoint = venue.endpoints[Op.PLACE_ORDER]
    signer = venue.signer(_venue_key(name))
    for params in ([("symbol", 1)], ["ab"], [("a", "b", "c")], [(b"a", "b")], [["a", "b"]]):
        with pytest.raises(SecureTradeError, match="params must be a list of"):
            venue.prepare(
                endpoint, params, key_id="walk", signer=signer, timestamp_ms=1_700_000_000_000
            )
