"""Live streams over pinned WebSockets: orders, fills, ticker and book, gap-free.

``client.watch_orders()`` / ``watch_fills()`` / ``watch_ticker(symbol)`` /
``watch_book(symbol)`` are async iterators on :class:`~securetrade.AsyncClient` and
blocking iterators on :class:`~securetrade.Client`. See docs/streams.md.
"""

from __future__ import annotations

from .alpaca import AlpacaStreams
from .dialects import DIALECTS, BinanceStreams, StreamDialect, dialect_for
from .drivers import BlockingStream, StreamHub, hub_of, place_confirmed, place_confirmed_blocking
from .events import (
    BookUpdate,
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamEvent,
    StreamGap,
    TickerUpdate,
    UnknownActivity,
    WithdrawalEvent,
)
from .kraken import KrakenStreams
from .market import MarketStream
from .oanda import OandaStreams
from .supervisor import StreamOptions, UserStream

DIALECTS["kraken"] = KrakenStreams  # registered here: the module builds on .dialects
DIALECTS["alpaca"] = AlpacaStreams
DIALECTS["oanda"] = OandaStreams

__all__ = [
    "DIALECTS",
    "AlpacaStreams",
    "BinanceStreams",
    "BlockingStream",
    "BookUpdate",
    "FillEvent",
    "KrakenStreams",
    "MarketStream",
    "OandaStreams",
    "OrderUpdate",
    "Resynced",
    "StreamDialect",
    "StreamEvent",
    "StreamGap",
    "StreamHub",
    "StreamOptions",
    "TickerUpdate",
    "UnknownActivity",
    "UserStream",
    "WithdrawalEvent",
    "dialect_for",
    "hub_of",
    "place_confirmed",
    "place_confirmed_blocking",
]
