"""What the stream's parts share: tuning, the REST calls reconciliation needs, and the
subscription (a bounded queue per consumer, ended by a marker or a fatal error)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

from .._checks import instance, is_text, seconds, whole
from ..errors import InvalidRequest, SecureTradeError
from ..keys import Secret
from ..models import AccountTrade, Fill, Order

__all__ = ["Rest", "StreamOptions", "Subscription"]


def check_stream(dialect: Any, url: Any, context: Any, options: Any) -> None:
    """What every stream is built from, refused when built (not at its first connect, in a
    background task): a venue's dialect, a ``wss://`` (or, for a line stream,
    ``https://``) URL, a TLS context or None, :class:`StreamOptions` or None."""
    named = isinstance(getattr(dialect, "name", None), str)
    if not (named and callable(getattr(dialect, "parse", None))):
        raise InvalidRequest(
            "dialect must be a stream dialect: securetrade.streams.dialect_for(venue)"
        )
    if not (is_text(url) and url.startswith(("wss://", "https://"))):
        raise InvalidRequest("url must be a wss:// (or a line stream's https://) URL")
    instance("context", context, ssl.SSLContext)
    instance("options", options, StreamOptions)


class Rest(Protocol):
    """What reconciliation asks of the venue (the client's own REST calls)."""

    async def open_orders(self) -> list[Order]: ...

    async def order(self, symbol: str, client_order_id: str, order_id: str | None) -> Order:
        """One order, by the venue's id when known (unambiguous), else by ours."""
        ...

    async def fills(self, symbol: str, client_order_id: str) -> list[Fill]: ...

    async def key_permissions(self) -> dict[str, Any]: ...

    async def ws_token(self) -> Secret:
        """A fresh token for a venue whose private stream opens with one (Kraken)."""
        ...

    async def my_trades(self, symbol: str, since_ms: int) -> list[AccountTrade]:
        """The account's executions in ``symbol`` since ``since_ms`` (its trade history)."""
        ...


@dataclass
class StreamOptions:
    """Tuning of one supervisor. ``stale_after``: seconds of silence before the venue is
    asked whether the data path still flows (``probe_timeout`` to answer). ``sweep_every``:
    seconds between quiet REST checks of the orders in play. ``queue_size``: frames held
    between the socket and the processing; beyond it, frames are dropped and a gap is
    reconciled. ``min_reconnect``: the least delay between dials (default: the venue's).
    ``key_check_every``: seconds between reads of the key's permissions at the venue (a
    change none of ours can make)."""

    stale_after: float = 30.0
    probe_timeout: float = 5.0
    sweep_every: float = 30.0
    queue_size: int = 1024
    min_reconnect: float | None = None
    max_reconnect: float = 30.0
    subscriber_queue: int = 10_000
    key_check_every: float = 60.0

    def __post_init__(self) -> None:
        seconds("key_check_every", self.key_check_every, above=0)
        seconds("stale_after", self.stale_after, above=0)
        seconds("probe_timeout", self.probe_timeout, least=0)
        seconds("sweep_every", self.sweep_every, above=0)
        seconds("max_reconnect", self.max_reconnect, above=0)
        if self.min_reconnect is not None:
            seconds("min_reconnect", self.min_reconnect, least=0)
        whole("queue_size", self.queue_size, 1)
        whole("subscriber_queue", self.subscriber_queue, 1)


class _Owner(Protocol):
    def unsubscribe(self, sub: Subscription) -> None: ...


@dataclass(frozen=True, slots=True)
class Marker:
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Fatal:
    error: SecureTradeError


END = object()


class Subscription:
    """An async iterator over the events of some kinds; :meth:`aclose` ends it."""

    def __init__(self, owner: _Owner, kinds: tuple[type, ...], size: int) -> None:
        self._owner = owner
        self.kinds = kinds
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        item = await self.queue.get()
        if item is END:
            self.queue.put_nowait(END)  # stays ended
            raise StopAsyncIteration
        if isinstance(item, Fatal):
            self.queue.put_nowait(item)
            raise item.error
        return item

    async def aclose(self) -> None:
        self._owner.unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(END)
