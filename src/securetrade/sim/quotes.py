"""The simulator's market data, as part of :class:`~.engine.Market`: the price path
before and between trades, OHLCV bars over it and the tape, and the book of resting
orders over a synthetic ladder. Split from the engine, which keeps the orders."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import SimInstrument, SimOrder, TapeTrade

__all__ = ["Bar", "MarketData"]

_HISTORY_PERIOD_S = 6 * 3600.0  # the history wave: one swing every six hours
_BOOK_LEVELS = 5000  # the synthetic book is this deep on each side


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar opening at ``open_ms``."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int


class MarketData:
    """Prices, bars and the book of a :class:`~.engine.Market` (which sets these)."""

    instruments: dict[str, SimInstrument]
    tape: dict[str, list[TapeTrade]]
    lock: threading.RLock
    _open: dict[int, SimOrder]
    _now_ms: Callable[[], int]

    price: Callable[[str], Decimal]  # the price now: the engine's

    def history_price(self, symbol: str, at_ms: int) -> Decimal:
        """The price path before (and between) trades, as a function of time: a wave of
        ±2 % around the start price, one swing every six hours, so that candles exist from
        any moment and a strategy has something to read. Deterministic."""
        inst = self.instruments[symbol]
        phase = at_ms / 1000.0 / _HISTORY_PERIOD_S * 2 * math.pi
        wave = Decimal(str(round(math.sin(phase) * 0.02 + math.sin(phase * 7.3) * 0.003, 6)))
        raw = inst.start_price * (1 + wave)
        return (raw / inst.tick_size).quantize(Decimal(1), ROUND_HALF_UP) * inst.tick_size

    def bars(self, symbol: str, interval_ms: int, first_ms: int, last_ms: int) -> list[Bar]:
        """Bars of ``interval_ms`` opening from ``first_ms`` to ``last_ms`` (both aligned):
        the history path, with the tape's trades in each bar; the bar now forming closes
        at the price now."""
        now = self._now_ms()
        with self.lock:
            tape = list(self.tape[symbol])
            current = self.price(symbol)
        bars = []
        index = 0
        for start in range(first_ms, last_ms + 1, interval_ms):
            end = start + interval_ms
            opening = self.history_price(symbol, start)
            closing = current if start <= now < end else self.history_price(symbol, end)
            middle = self.history_price(symbol, start + interval_ms // 2)
            high, low = max(opening, closing, middle), min(opening, closing, middle)
            while index < len(tape) and tape[index].at_ms < start:
                index += 1
            volume, quote, count = Decimal(0), Decimal(0), 0
            while index < len(tape) and tape[index].at_ms < end:
                trade = tape[index]
                high, low = max(high, trade.price), min(low, trade.price)
                volume += trade.quantity
                quote += trade.quantity * trade.price
                count += 1
                index += 1
            bars.append(Bar(start, opening, high, low, closing, volume, quote, count))
        return bars

    def book(self, symbol: str, depth: int) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        """``(bids, asks)``, best first, ``depth`` levels each: the resting limit orders of
        every account, over a synthetic ladder one tick apart from the price now (the
        counterparties the simulator otherwise only implies): the best bid and ask are one
        level from the price, whatever rests further away."""
        with self.lock:
            inst = self.instruments[symbol]
            price = self.price(symbol)
            bids: dict[Decimal, Decimal] = {}
            asks: dict[Decimal, Decimal] = {}
            unit = inst.min_quantity * 100
            # One level per basis point of the price (at least a tick): a deep book spans a
            # useful range, and resting orders near the price fall inside it.
            ticks = max(1, int(price / 10_000 / inst.tick_size))
            spacing = inst.tick_size * ticks
            for k in range(1, min(depth, _BOOK_LEVELS) + 1):
                size = unit * (1 + k % 7)
                bids[price - spacing * k] = size
                asks[price + spacing * k] = size
            for order in self._open.values():
                if order.symbol != symbol or order.price is None or order.waiting:
                    continue
                side = bids if order.side == "BUY" else asks
                left = order.quantity - order.filled
                side[order.price] = side.get(order.price, Decimal(0)) + left
        best_bids = sorted(bids.items(), key=lambda kv: kv[0], reverse=True)[:depth]
        best_asks = sorted(asks.items(), key=lambda kv: kv[0])[:depth]
        return best_bids, best_asks
