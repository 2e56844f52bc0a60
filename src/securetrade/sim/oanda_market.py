"""OANDA's market data in the simulator: pricing, candles and instrument rules, with the
error body and time format the OANDA dialect (``sim/oanda.py``) shares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .dialect import Refusal
from .engine import Market, SimInstrument

__all__ = ["OandaError", "candles", "instrument_body", "pricing", "stamp", "whole"]

_PIPS = {"EUR_USD": -4, "USD_JPY": -2}
_GRANULARITY = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14400, "D": 86400}


class OandaError(Refusal):
    """OANDA's error body: ``errorMessage`` (and ``errorCode``), with ``lastTransactionID``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(status, {"errorCode": code, "errorMessage": message, **extra}, code)


def pricing(market: Market, now_ms: int, query: dict[str, str], last: str) -> dict[str, Any]:
    """``GET .../pricing``: two levels a side around the engine's price, and the time."""
    names = [n for n in query.get("instruments", "").split(",") if n]
    if not names or any(n not in market.instruments for n in names):
        raise OandaError(
            400,
            "INVALID_INSTRUMENT",
            "Invalid value specified for 'instruments'",
            lastTransactionID=last,
        )
    now = stamp(datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc))
    prices = []
    for name in names:
        inst = market.instruments[name]
        mid = market.price(name)
        half = inst.tick_size * 7
        prices.append(
            {
                "type": "PRICE",
                "instrument": name,
                "time": now,
                "tradeable": True,
                "bids": [
                    {"price": format(mid - half, "f"), "liquidity": 1000000},
                    {"price": format(mid - half * 2, "f"), "liquidity": 5000000},
                ],
                "asks": [
                    {"price": format(mid + half, "f"), "liquidity": 1000000},
                    {"price": format(mid + half * 2, "f"), "liquidity": 5000000},
                ],
                "closeoutBid": format(mid - half * 2, "f"),
                "closeoutAsk": format(mid + half * 2, "f"),
            }
        )
    return {"prices": prices, "time": now}


def candles(market: Market, now_ms: int, instrument: str, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v3/instruments/{instrument}/candles``: mid bars of a granularity."""
    seconds = _GRANULARITY.get(query.get("granularity", "S5"))
    if instrument not in market.instruments or seconds is None:
        raise OandaError(400, "INVALID_REQUEST", "Invalid instrument or granularity")
    count = whole(query.get("count", "500"), "count")
    if not 1 <= count <= 5000:
        raise OandaError(400, "INVALID_REQUEST", "count must be 1 to 5000")
    interval_ms = seconds * 1000
    now = now_ms
    # From a moment on (``from``, seconds), else the latest ``count`` bars.
    first = whole(query["from"], "from") * 1000 if "from" in query else now - count * interval_ms
    last = min(now, first + (count - 1) * interval_ms)
    bars = market.bars(instrument, interval_ms, first, last)
    return {
        "instrument": instrument,
        "granularity": query["granularity"],
        "candles": [
            {
                "time": stamp(datetime.fromtimestamp(b.open_ms / 1000, tz=timezone.utc)),
                "volume": b.count,
                "complete": b.open_ms + interval_ms <= now,
                "mid": {
                    "o": format(b.open, "f"),
                    "h": format(b.high, "f"),
                    "l": format(b.low, "f"),
                    "c": format(b.close, "f"),
                },
            }
            for b in bars[:count]
        ],
    }


def instrument_body(inst: SimInstrument) -> dict[str, Any]:
    precision = -inst.tick_size.as_tuple().exponent  # type: ignore[operator]
    return {
        "name": inst.symbol,
        "type": "CURRENCY",
        "displayName": inst.symbol.replace("_", "/"),
        "pipLocation": _PIPS.get(inst.symbol, -4),
        "displayPrecision": precision,
        "tradeUnitsPrecision": 0,
        "minimumTradeSize": "1",
        "maximumOrderUnits": format(inst.max_quantity, "f"),
        "marginRate": "0.02",
    }


def whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise OandaError(400, "INVALID_REQUEST", f"Invalid value specified for '{name}'")
    return int(text)


def stamp(moment: datetime) -> str:
    """RFC 3339 with nanoseconds, as OANDA writes its times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
