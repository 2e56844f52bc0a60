"""Market data streams (best bid/ask, top of book): public, one connection each.

Each event is a whole snapshot, so a gap needs no REST call: the next one is complete.
The supervisor still tells the consumer (:class:`StreamGap`, then :class:`Resynced` with
nothing recovered), and checks that book update ids only grow. A venue whose book comes
as updates (Kraken) keeps it in its dialect and checks it against the venue's checksum:
a mismatch is a :class:`StreamGap` and a resubscription on the same connection, whose
fresh snapshot comes after :class:`Resynced`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from .._checks import is_text, text
from ..errors import InvalidRequest, SecureTradeError
from .connection import Backoff, Connector
from .dialects import StreamDialect
from .events import BookUpdate, Resynced, StreamGap, TickerUpdate
from .options import Fatal, Marker, StreamOptions, check_stream

__all__ = ["MarketStream"]


class MarketStream:
    """An async iterator over one symbol's ticker or book snapshots."""

    def __init__(
        self,
        dialect: StreamDialect,
        *,
        url: str,
        context: ssl.SSLContext | None,
        symbol: str,
        options: StreamOptions | None = None,
        channel: str = "",
    ) -> None:
        check_stream(dialect, url, context, options)
        text("symbol", symbol)
        if not is_text(channel, empty=True) or channel not in ("", "ticker", "book"):
            raise InvalidRequest("channel must be 'ticker' or 'book'")
        self.options = options or StreamOptions(stale_after=5.0)
        self.venue = dialect.name
        self.symbol = symbol
        self._dialect = dialect
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.options.queue_size)
        self._overflowed = False
        self._last_sequence = -1
        self._resyncing = False
        self._channel = channel
        # A venue whose market data is subscribed to in a frame (Kraken), not by its URL.
        frames = getattr(dialect, "market_frames", None)
        floor = self.options.min_reconnect
        self._connector = Connector(
            url,
            context,
            on_frame=self._on_frame,
            on_gap=self._on_gap,
            on_fatal=self._on_fatal,
            auth=None if frames is None else lambda: frames(channel, symbol),
            check_auth=getattr(dialect, "check_market_answer", None),
            probe=lambda: None,  # market data flows all the time: silence is staleness
            backoff=Backoff(
                dialect.min_reconnect_delay if floor is None else floor,
                cap=self.options.max_reconnect,
            ),
            stale_after=self.options.stale_after,
            probe_timeout=0.0,
            max_age=dialect.max_connection_age - 600.0,
            decode=getattr(dialect, "decode", None),
        )
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def __aiter__(self) -> MarketStream:
        return self

    async def __anext__(self) -> TickerUpdate | BookUpdate | StreamGap | Resynced:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._connector.run())
        item = await self._queue.get()
        if isinstance(item, Fatal):
            self._queue.put_nowait(item)
            raise item.error
        if item is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    def _put(self, item: Any) -> None:
        if self._overflowed:  # the consumer fell behind: say so, then go on
            try:
                self._queue.put_nowait(StreamGap(self.venue, "overflow", "consumer too slow"))
                self._overflowed = False
            except asyncio.QueueFull:
                return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True

    def _on_frame(self, frame: Any) -> None:
        try:
            parsed = self._dialect.parse(frame)
        except (SecureTradeError, KeyError, TypeError, ValueError):
            parsed = []
        for item in parsed:
            if isinstance(item, Marker):  # the venue's checksum showed a wrong book
                self._resubscribe(item)
                continue
            if isinstance(item, BookUpdate):
                if self._resyncing:  # the fresh snapshot the resubscription asked for
                    self._resyncing = False
                    self._put(Resynced(self.venue, 0))
                if item.sequence <= self._last_sequence:
                    self._put(StreamGap(self.venue, "sequence", "book update id went back"))
                    self._put(Resynced(self.venue, 0))
                self._last_sequence = item.sequence
                item = BookUpdate(item.venue, self.symbol, item.bids, item.asks, item.sequence)
            if isinstance(item, (TickerUpdate, BookUpdate)):
                self._put(item)

    def _resubscribe(self, marker: Marker) -> None:
        """Tell the consumer, and ask the venue for a fresh snapshot on this connection."""
        self._put(StreamGap(self.venue, marker.reason, marker.detail))
        again = getattr(self._dialect, "resubscribe_frames", None)
        if self._resyncing or again is None:
            return
        self._resyncing = True
        task = asyncio.get_running_loop().create_task(
            self._connector.send(again(self._channel, self.symbol))
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _on_gap(self, reason: str, detail: str) -> None:
        self._put(StreamGap(self.venue, reason, detail))
        if reason == "reconnect":
            self._resyncing = False  # the new connection's snapshot is the fresh one
            self._put(Resynced(self.venue, 0))

    async def _on_fatal(self, error: SecureTradeError) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(Fatal(error))

    async def aclose(self) -> None:
        """Disconnect and end the iteration (a waiting ``__anext__`` stops)."""
        await self._connector.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
