"""The simulator's Binance market data endpoints: ping, time, exchangeInfo, depth, klines,
recent trades and tickers, answered from the market (no key needed).

Above ``binance_rules``; the dialect (``binance_gateway``) routes the public requests here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .binance_rules import (
    _KLINE_MS,
    _ORDER_TYPES,
    _PRECISION,
    _BinanceRules,
    _interval,
    _limit,
    _time,
)
from .binance_wire import _ApiError, _required, _text

__all__: list[str] = []


class _BinanceMarket(_BinanceRules):
    """The public endpoints; ``_book_updates`` (depth's lastUpdateId) is set by the
    dialect."""

    _book_updates: int

    def _public(self, route: tuple[str, str], params: dict[str, str]) -> Any:
        if route == ("GET", "/api/v3/ping"):
            return {}
        if route == ("GET", "/api/v3/time"):
            return {"serverTime": self.now_ms()}
        if route == ("GET", "/api/v3/exchangeInfo"):
            return self._exchange_info(self._symbols(params))
        if route == ("GET", "/api/v3/depth"):
            return self._depth(params)
        if route == ("GET", "/api/v3/klines"):
            return self._klines(params)
        if route == ("GET", "/api/v3/trades"):
            return self._recent_trades(params)
        symbols = self._symbols(params)
        if route == ("GET", "/api/v3/ticker/price"):
            with self.market.lock:
                rows = [{"symbol": s, "price": _text(self.market.price(s))} for s in symbols]
        else:  # ticker/24hr
            rows = [self._ticker_24h(s) for s in symbols]
        if "symbol" in params:
            return rows[0]
        return rows

    def _depth(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v3/depth``: ``limit`` 1 to 5000 (default 100), best first."""
        symbol = self._symbol(_required(params, "symbol"))
        limit = _limit(params, default=100, most=5000)
        bids, asks = self.market.book(symbol, limit)
        with self._lock:
            self._book_updates += 1
            update = self._book_updates
        return {
            "lastUpdateId": update,
            "bids": [[_text(p), _text(q)] for p, q in bids],
            "asks": [[_text(p), _text(q)] for p, q in asks],
        }

    def _klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        """``GET /api/v3/klines``: bars opening from ``startTime`` (aligned down) up to
        ``endTime``, the first ``limit`` (default 500, at most 1000) of them; without
        ``startTime``, the latest ``limit`` up to ``endTime`` or now."""
        symbol = self._symbol(_required(params, "symbol"))
        step = _KLINE_MS.get(_required(params, "interval"))
        if step is None:
            raise _ApiError(400, -1120, "Invalid interval.")
        limit = _limit(params, default=500, most=1000)
        start, end = _time(params, "startTime"), _time(params, "endTime")
        if "timeZone" in params and params["timeZone"] not in ("0", "+00:00", "0:00"):
            raise _ApiError(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
        now = self.now_ms()
        last = (min(now, end) if end is not None else now) // step * step
        if start is not None:
            first = -(-start // step) * step  # the first bar opening at or after startTime
            last = min(last, first + (limit - 1) * step)
        else:
            first = last - (limit - 1) * step
        if first > last:
            return []
        return [
            [
                bar.open_ms,
                _text(bar.open),
                _text(bar.high),
                _text(bar.low),
                _text(bar.close),
                _text(bar.volume),
                bar.open_ms + step - 1,
                _text(bar.quote_volume),
                bar.count,
                "0",
                "0",
                "0",
            ]
            for bar in self.market.bars(symbol, step, first, last)
        ]

    def _recent_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/trades``: the latest ``limit`` (default 500, at most 1000), oldest
        first."""
        symbol = self._symbol(_required(params, "symbol"))
        limit = _limit(params, default=500, most=1000)
        with self.market.lock:
            recent = self.market.tape[symbol][-limit:]
        return [
            {
                "id": t.trade_id,
                "price": _text(t.price),
                "qty": _text(t.quantity),
                "quoteQty": _text(t.price * t.quantity),
                "time": t.at_ms,
                "isBuyerMaker": t.taker_side == "SELL",
                "isBestMatch": True,
            }
            for t in recent
        ]

    def _ticker_24h(self, symbol: str) -> dict[str, Any]:
        now = self.now_ms()
        with self.market.lock:
            last = self.market.price(symbol)
            open_price = self.market.instruments[symbol].start_price
            fills = [
                (p, q, t)
                for o in self.market.orders.values()
                if o.symbol == symbol
                for p, q, t in o.fills
            ]
        (bid,), (ask,) = self.market.book(symbol, 1)
        volume = sum((q for _, q, _ in fills), Decimal(0))
        quote = sum((p * q for p, q, _ in fills), Decimal(0))
        prices = [p for p, _, _ in fills] + [last, open_price]
        change = last - open_price
        return {
            "symbol": symbol,
            "priceChange": _text(change),
            "priceChangePercent": _text((change * 100 / open_price).quantize(Decimal("0.001"))),
            "weightedAvgPrice": _text(
                (quote / volume).quantize(Decimal("0.00000001")) if volume else last
            ),
            "prevClosePrice": _text(open_price),
            "lastPrice": _text(last),
            "lastQty": _text(fills[-1][1] if fills else Decimal(0)),
            "bidPrice": _text(bid[0]),
            "bidQty": _text(bid[1]),
            "askPrice": _text(ask[0]),
            "askQty": _text(ask[1]),
            "openPrice": _text(open_price),
            "highPrice": _text(max(prices)),
            "lowPrice": _text(min(prices)),
            "volume": _text(volume),
            "quoteVolume": _text(quote),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": fills[0][2] if fills else -1,
            "lastId": fills[-1][2] if fills else -1,
            "count": len(fills),
        }

    def _exchange_info(self, symbols: list[str]) -> dict[str, Any]:
        limits = self.limits
        wunit, wnum, _ = _interval(limits.weight_seconds)
        ounit, onum, _ = _interval(limits.orders_seconds)
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": wunit,
                    "intervalNum": wnum,
                    "limit": limits.weight,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": ounit,
                    "intervalNum": onum,
                    "limit": limits.orders,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "DAY",
                    "intervalNum": 1,
                    "limit": limits.orders_day,
                },
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": i.symbol,
                    "status": "TRADING",
                    "baseAsset": i.base,
                    "baseAssetPrecision": _PRECISION,
                    "quoteAsset": i.quote,
                    "quotePrecision": _PRECISION,
                    "quoteAssetPrecision": _PRECISION,
                    "baseCommissionPrecision": _PRECISION,
                    "quoteCommissionPrecision": _PRECISION,
                    "orderTypes": list(_ORDER_TYPES),
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _text(i.tick_size),
                            "maxPrice": _text(i.max_price),
                            "tickSize": _text(i.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _text(i.min_quantity),
                            "maxQty": _text(i.max_quantity),
                            "stepSize": _text(i.step_size),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _text(i.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "NONE",
                    "allowedSelfTradePreventionModes": ["NONE"],
                }
                for i in (self.market.instruments[s] for s in symbols)
            ],
        }
