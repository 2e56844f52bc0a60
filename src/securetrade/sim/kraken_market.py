"""The simulator's Kraken public market data: Time, AssetPairs, Assets, Ticker, Depth,
OHLC, Trades and SystemStatus, answered from the market (no key needed).

Above ``kraken_rules``; the dialect (``kraken_gateway``) routes ``/0/public/`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from .engine import SimInstrument
from .kraken_rules import (
    _OHLC_FRAMES,
    _OHLC_MINUTES,
    _code,
    _count,
    _decimals,
    _Error,
    _KrakenRules,
    _need,
    _price,
    _short,
)

__all__: list[str] = []


class _KrakenMarket(_KrakenRules):
    """The public endpoints."""

    def _public(self, name: str, query: str) -> Any:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if name == "Time":
            now = self.now_ms() // 1000
            return {"unixtime": now, "rfc1123": formatdate(now, usegmt=True)}
        if name == "AssetPairs":
            wanted = [p for p in params.get("pair", "").split(",") if p]
            for pair in wanted:
                self._pair(pair)
            return {
                alt: self._pair_info(alt, inst)
                for alt, inst in self._pairs.items()
                if not wanted or alt in wanted
            }
        if name == "Assets":
            assets = {a for i in self._pairs.values() for a in (i.base, i.quote)}
            return {
                _code(a): {
                    "aclass": "currency",
                    "altname": _short(a),
                    "decimals": 10,
                    "display_decimals": 5,
                    "status": "enabled",
                }
                for a in sorted(assets)
            }
        if name == "Ticker":
            wanted = [p for p in params.get("pair", "").split(",") if p]
            pairs = wanted or list(self._pairs)
            return {alt: self._ticker(alt, self._pair(alt)) for alt in pairs}
        if name == "Depth":
            return self._depth(params)
        if name == "OHLC":
            return self._ohlc(params)
        if name == "Trades":
            return self._trades(params)
        if name == "SystemStatus":
            now = self.now_ms() // 1000
            moment = datetime.fromtimestamp(now, tz=timezone.utc)
            return {"status": "online", "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
        raise _Error("EGeneral:Unknown method", 404)

    def _depth(self, params: Mapping[str, str]) -> Any:
        """``Depth``: ``count`` 1 to 500 (default 100) levels a side, best first, each
        ``[price, volume, timestamp]``."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        count = _count(params, "count", default=100, most=500)
        bids, asks = self.market.book(inst.symbol, count)
        now = self.now_ms() // 1000
        return {
            alt: {
                "asks": [[_price(p, inst), f"{q:.8f}", now] for p, q in asks],
                "bids": [[_price(p, inst), f"{q:.8f}", now] for p, q in bids],
            }
        }

    def _ohlc(self, params: Mapping[str, str]) -> Any:
        """``OHLC``: the 720 most recent frames of ``interval`` minutes, those later than
        ``since`` (seconds), the one now forming last; ``last`` is the newest committed
        frame's time, to poll with."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        minutes = params.get("interval", "1")
        if minutes not in _OHLC_MINUTES:
            raise _Error("EGeneral:Invalid arguments:interval")
        since_text = params.get("since")
        if since_text is not None and not since_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:since")
        step = int(minutes) * 60_000
        current = self.now_ms() // step * step
        first = current - (_OHLC_FRAMES - 1) * step
        bars = self.market.bars(inst.symbol, step, first, current)
        since_ms = None if since_text is None else int(since_text) * 1000
        rows = [
            [
                bar.open_ms // 1000,
                _price(bar.open, inst),
                _price(bar.high, inst),
                _price(bar.low, inst),
                _price(bar.close, inst),
                _price(bar.quote_volume / bar.volume if bar.volume else bar.close, inst),
                f"{bar.volume:.8f}",
                bar.count,
            ]
            for bar in bars
            if since_ms is None or bar.open_ms > since_ms or bar.open_ms == current
        ]
        return {alt: rows, "last": (current - step) // 1000}

    def _trades(self, params: Mapping[str, str]) -> Any:
        """``Trades``: ``count`` (1 to 1000, default 1000) trades, oldest first: the latest,
        or the first later than ``since`` (seconds, or the nanosecond ``last`` cursor of an
        earlier answer). Each ``[price, volume, time, b/s, m/l, misc, trade id]``."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        count = _count(params, "count", default=1000, most=1000)
        since_text = params.get("since")
        if since_text is not None and not since_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:since")
        with self.market.lock:
            tape = list(self.market.tape[inst.symbol])
        if since_text is None:
            page = tape[-count:]
        else:
            since = int(since_text)
            since_ns = since * 1_000_000_000 if since < 10**12 else since
            page = [t for t in tape if t.at_ms * 1_000_000 > since_ns][:count]
        last = page[-1].at_ms * 1_000_000 if page else (int(since_text or 0) or 0)
        return {
            alt: [
                [
                    _price(t.price, inst),
                    f"{t.quantity:.8f}",
                    t.at_ms / 1000,
                    "b" if t.taker_side == "BUY" else "s",
                    "l",
                    "",
                    t.trade_id,
                ]
                for t in page
            ],
            "last": str(last),
        }

    def _ticker(self, alt: str, inst: SimInstrument) -> dict[str, Any]:
        """Every field of Kraken's Ticker answer: ask, bid, last trade, volume, VWAP,
        trade count, low, high and today's opening price."""
        with self.market.lock:
            last = self.market.price(inst.symbol)
            fills = [
                (p, q)
                for o in self.market.orders.values()
                if o.symbol == inst.symbol
                for p, q, _ in o.fills
            ]
        volume = sum((q for _, q in fills), Decimal(0))
        vwap = sum((p * q for p, q in fills), Decimal(0)) / volume if volume else last
        prices = [p for p, _ in fills] + [last, inst.start_price]
        (bid,), (ask,) = self.market.book(inst.symbol, 1)
        text, vol, vw = _price(last, inst), f"{volume:.8f}", _price(vwap, inst)
        low, high = _price(min(prices), inst), _price(max(prices), inst)
        last_qty = f"{fills[-1][1]:.8f}" if fills else "0.00000000"
        return {
            "a": [_price(ask[0], inst), f"{int(ask[1])}", f"{ask[1]:.3f}"],
            "b": [_price(bid[0], inst), f"{int(bid[1])}", f"{bid[1]:.3f}"],
            "c": [text, last_qty],
            "v": [vol, vol],
            "p": [vw, vw],
            "t": [len(fills), len(fills)],
            "l": [low, low],
            "h": [high, high],
            "o": _price(inst.start_price, inst),
        }

    def _pair_info(self, alt: str, inst: SimInstrument) -> dict[str, Any]:
        return {
            "altname": alt,
            "wsname": f"{_short(inst.base)}/{_short(inst.quote)}",
            "aclass_base": "currency",
            "base": _code(inst.base),
            "aclass_quote": "currency",
            "quote": _code(inst.quote),
            "lot": "unit",
            "cost_decimals": _decimals(inst.tick_size) + _decimals(inst.step_size),
            "pair_decimals": _decimals(inst.tick_size),
            "lot_decimals": _decimals(inst.step_size),
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": [[0, 0.26]],
            "fees_maker": [[0, 0.16]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": format(inst.min_quantity, "f"),
            "costmin": format(inst.min_notional, "f"),
            "tick_size": format(inst.tick_size, "f"),
            "status": "online",
        }
