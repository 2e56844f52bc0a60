"""OANDA's market data: the pricing answer as ticker, order book and reference price, and
mid candles. Every call needs the token (OANDA has no public endpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..._checks import shown
from ...errors import InvalidRequest
from ...models import BookLevel, Candle, OrderBook, Ticker
from ..base import Params, check_candles, reads_answer, within
from ..times import parse_time

__all__ = ["OandaMarketData"]

_GRANULARITY = {
    "1m": "M1",
    "5m": "M5",
    "15m": "M15",
    "30m": "M30",
    "1h": "H1",
    "2h": "H2",
    "4h": "H4",
    "6h": "H6",
    "8h": "H8",
    "12h": "H12",
    "1d": "D",
    "1w": "W",
}
_CANDLES_MAX = 5000


class OandaMarketData:
    """The market-data half of the OANDA adapter: parameters and parsers."""

    name = "oanda"
    intervals: Mapping[str, str] = _GRANULARITY

    def ticker_params(self, symbol: str) -> Params:
        return [("instrument", symbol)]

    def order_book_params(self, symbol: str, depth: int) -> Params:
        """The pricing answer's bid and ask ladder (liquidity per price), not OANDA's
        positioning book. OANDA sends the few levels it has; ``depth`` (1 to 20) is
        checked before anything is sent."""
        within("depth", depth, 20)
        return [("instrument", symbol)]

    def candles_params(
        self, symbol: str, interval: str, since_ms: int | None, limit: int | None
    ) -> Params:
        check_candles(interval, since_ms)
        granularity = self.intervals.get(interval)
        if granularity is None:
            raise InvalidRequest(
                f"OANDA offers the intervals {', '.join(self.intervals)}; not {shown(interval)}"
            )
        params: Params = [("instrument", symbol), ("granularity", granularity), ("price", "M")]
        if since_ms is not None:
            params.append(("from", str(since_ms // 1000)))
        if limit is not None:
            within("limit", limit, _CANDLES_MAX)
            params.append(("count", str(limit)))
        return params

    @reads_answer
    def parse_price(self, payload: Any) -> Decimal:
        """The mid of the best bid and ask of the one instrument asked for."""
        (price,) = payload["prices"]
        return (
            Decimal(str(price["bids"][0]["price"])) + Decimal(str(price["asks"][0]["price"]))
        ) / 2

    @reads_answer
    def parse_ticker(self, payload: Any, symbol: str) -> Ticker:
        (price,) = payload["prices"]
        bid, ask = price["bids"][0], price["asks"][0]
        mid = (Decimal(str(bid["price"])) + Decimal(str(ask["price"]))) / 2
        return Ticker(
            symbol=symbol,
            last=mid,
            bid=bid["price"],
            ask=ask["price"],
            bid_quantity=Decimal(str(bid["liquidity"])),
            ask_quantity=Decimal(str(ask["liquidity"])),
            at=parse_time(price["time"]),
        )

    @reads_answer
    def parse_order_book(self, payload: Any, symbol: str) -> OrderBook:
        (price,) = payload["prices"]
        return OrderBook(
            symbol=symbol,
            bids=tuple(BookLevel(price=b["price"], quantity=b["liquidity"]) for b in price["bids"]),
            asks=tuple(BookLevel(price=a["price"], quantity=a["liquidity"]) for a in price["asks"]),
        )

    @reads_answer
    def parse_candles(self, payload: Any, symbol: str, interval: str) -> list[Candle]:
        """Mid candles: ``time`` (RFC 3339), ``mid`` o/h/l/c, ``volume`` (tick count)."""
        return [
            Candle(
                symbol=symbol,
                interval=interval,
                opened_at=parse_time(bar["time"]),
                open=bar["mid"]["o"],
                high=bar["mid"]["h"],
                low=bar["mid"]["l"],
                close=bar["mid"]["c"],
                volume=Decimal(str(bar["volume"])),
                trades=int(bar["volume"]),
            )
            for bar in payload["candles"]
        ]
