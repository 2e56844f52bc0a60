"""The two drivers of streams: async iterators for ``AsyncClient``, blocking iterators for
``Client`` (over one event loop in a background thread per client).

A :class:`StreamHub` hangs off each client: it builds the one user data supervisor of the
client's (venue, account) on first use, with the client's pinned TLS context, key ring,
venue clock, journal and kill switch, and tells it of every order and withdrawal the
client makes (from its audit events), so they are never taken for an intruder's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _fork
from .._checks import as_text, flag, function, instance, is_text, own_methods, seconds
from ..errors import InvalidRequest
from ..keys import Secret
from ..models import AccountTrade, Fill, Order, OrderRequest
from ..policy.anomaly import AnomalyMonitor, UnknownActivityDetector
from .dialects import dialect_for
from .events import (
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamGap,
    UnknownActivity,
    WithdrawalEvent,
)
from .host import AsyncHost, BlockingHost
from .market import MarketStream
from .supervisor import StreamOptions, Subscription, UserStream

if TYPE_CHECKING:
    from ..record.events import Event

__all__ = ["BlockingStream", "StreamHub", "hub_of"]

T = TypeVar("T")
_UNIFIED = re.compile(r"[A-Z0-9]{1,16}/[A-Z0-9]{1,16}")

KINDS: dict[str, tuple[type, ...]] = {
    "orders": (OrderUpdate, WithdrawalEvent, StreamGap, Resynced, UnknownActivity),
    "fills": (FillEvent, StreamGap, Resynced, UnknownActivity),
    "account": (
        OrderUpdate,
        FillEvent,
        WithdrawalEvent,
        StreamGap,
        Resynced,
        UnknownActivity,
    ),
}


class _AsyncRest:
    def __init__(self, client: AsyncHost) -> None:
        self._client = client

    async def open_orders(self) -> list[Order]:
        return await self._client.open_orders()

    async def order(self, symbol: str, client_order_id: str, order_id: str | None) -> Order:
        if order_id is not None:
            return await self._client.get_order(symbol, order_id=order_id)
        return await self._client.get_order(symbol, client_order_id=client_order_id)

    async def fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        return await self._client.fills(symbol, client_order_id=client_order_id)

    async def key_permissions(self) -> dict[str, Any]:
        return await self._client.key_permissions()

    async def ws_token(self) -> Secret:
        return await self._client.ws_token()

    async def my_trades(self, symbol: str, since_ms: int) -> list[AccountTrade]:
        return [trade async for trade in self._client.my_trades(symbol, since=since_ms)]


class _SyncRest:
    """The blocking client's calls, from the stream's loop thread (its transport is safe to
    share between threads)."""

    def __init__(self, client: BlockingHost) -> None:
        self._client = client

    async def open_orders(self) -> list[Order]:
        return await asyncio.to_thread(self._client.open_orders)

    async def order(self, symbol: str, client_order_id: str, order_id: str | None) -> Order:
        if order_id is not None:
            return await asyncio.to_thread(
                lambda: self._client.get_order(symbol, order_id=order_id)
            )
        return await asyncio.to_thread(
            lambda: self._client.get_order(symbol, client_order_id=client_order_id)
        )

    async def fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        return await asyncio.to_thread(
            lambda: self._client.fills(symbol, client_order_id=client_order_id)
        )

    async def key_permissions(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._client.key_permissions)

    async def ws_token(self) -> Secret:
        return await asyncio.to_thread(self._client.ws_token)

    async def my_trades(self, symbol: str, since_ms: int) -> list[AccountTrade]:
        return await asyncio.to_thread(lambda: list(self._client.my_trades(symbol, since=since_ms)))


class StreamHub:
    """Everything streaming of one client."""

    def __init__(self, client: BlockingHost | AsyncHost, *, asynchronous: bool) -> None:
        if not hasattr(client, "core"):
            raise InvalidRequest("streams need a securetrade Client or AsyncClient")
        self.client = client
        self.asynchronous = flag("asynchronous", asynchronous)
        self.dialect = dialect_for(client.core.venue.name)
        self.user: UserStream | None = None
        self._user_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._markets: list[MarketStream] = []
        client.audit.subscribe(self._on_audit)

    # --- the user data supervisor -------------------------------------------------------

    def user_stream(
        self,
        *,
        stream_url: str | None,
        monitor: AnomalyMonitor | None,
        options: StreamOptions | None,
    ) -> UserStream:
        """The client's one supervisor (built on the first call, from its arguments), on the
        event loop it runs on: an async caller's, or a blocking client's through :meth:`run`."""
        if self.user is not None:
            return self.user
        self._check_options(stream_url, monitor, options)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidRequest(
                "user_stream() is called on the event loop the stream runs on: await it from "
                "async code, or use the client's watch_orders() / watch_fills()"
            ) from None
        core = self.client.core
        key = core.keys.current
        url = (stream_url or self.dialect.user_url(key.environment)).replace(
            "{account}",
            key.key_id,  # OANDA: the stream is the account's, named in its path
        )
        if monitor is None:  # default: a foreign withdrawal engages the policy's kill switch
            monitor = AnomalyMonitor(
                [UnknownActivityDetector()], kill_switch=core.policy.kill_switch
            )
        rest = _AsyncRest(self.client) if self.asynchronous else _SyncRest(self.client)  # type: ignore[arg-type]

        def credentials() -> Any:
            current = core.keys.current
            return current, core._signer_of(current)

        self.user = UserStream(
            self.dialect,
            url=url,
            context=self.client._stream_tls(),
            credentials=credentials,
            now_ms=core.clock.now_ms,
            rest=rest,
            journal=core.journal,
            monitor=monitor,
            options=options,
            unify=self.unified if getattr(self.dialect, "unified_symbols", False) else None,
            rest_url=core.base_url,
        )
        self._user_loop = running
        return self.user

    def market_stream(
        self,
        channel: str,
        symbol: str,
        *,
        stream_url: str | None,
        options: StreamOptions | None,
    ) -> MarketStream:
        """A new ticker or book stream of ``symbol`` (``channel`` ``ticker`` or ``book``), closed
        with the client; :class:`InvalidRequest` for a symbol that is not the venue's."""
        if not is_text(channel) or channel not in ("ticker", "book"):  # no caller's ==
            raise InvalidRequest("channel must be 'ticker' or 'book'")
        self._check_options(stream_url, None, options)
        key = self.client.core.keys.current
        if not getattr(self.dialect, "market_data", True):  # says what to use instead
            self.dialect.market_url(key.environment, channel, symbol)
        if getattr(self.dialect, "unified_symbols", False):
            symbol = self.unified(symbol.upper()) if isinstance(symbol, str) else symbol
            if not isinstance(symbol, str) or not _UNIFIED.fullmatch(symbol):
                raise InvalidRequest(
                    f"{self.dialect.name} streams take unified symbols, such as BTC/USD"
                )
            dialect = dialect_for(self.dialect.name)  # its own book and numbering
            url = stream_url or dialect.market_url(key.environment, channel, symbol)
        else:
            if not isinstance(symbol, str) or not symbol.isalnum():
                raise InvalidRequest("symbol must be the venue's symbol, letters and digits only")
            self.client.core.venue.check_symbol(symbol)  # the REST calls' grammar: length too
            dialect = self.dialect
            if stream_url is not None:
                from .dialects import market_path

                url = market_path(stream_url, channel, symbol)
            else:
                url = self.dialect.market_url(key.environment, channel, symbol)
        stream = MarketStream(
            dialect, url=url, context=self.client._stream_tls(), symbol=symbol,
            options=options, channel=channel,
        )  # fmt: skip
        self._markets.append(stream)
        return stream

    def unified(self, symbol: str) -> str:
        """``symbol`` as ``BASE/QUOTE`` when it is one of the venue's own names the client's
        instrument table knows (``XBTUSDT`` -> ``BTC/USDT``); else as given."""
        plain = as_text(symbol)  # looked up in a dict: the caller's own hash never runs
        if plain is None:
            raise InvalidRequest(f"symbol must be a str, such as XBTUSDT{own_methods(symbol)}")
        symbol = plain
        instrument = self.client.core.market.instruments.get(symbol)
        if instrument is None:
            return symbol
        return f"{instrument.base_asset}/{instrument.quote_asset}"

    async def _load_instruments(self) -> None:
        """Read the venue's instruments once, so its own symbols can be named unified."""
        if self.client.core.market.instruments:
            return
        if self.asynchronous:
            await self.client.instruments()  # type: ignore[misc]
        else:
            await asyncio.to_thread(self.client.instruments)

    def _on_audit(self, event: Event) -> None:
        user, loop = self.user, self._user_loop
        if user is None or loop is None:
            return
        fields = event.fields
        if event.kind == "order.intent":
            symbol, cid = fields.get("symbol"), fields.get("client_order_id")
            if isinstance(symbol, str) and isinstance(cid, str):
                loop.call_soon_threadsafe(user.note_placed, symbol, cid)
        elif event.kind == "withdraw.attempt":
            asset, amount = fields.get("asset"), fields.get("amount")
            if isinstance(asset, str) and amount is not None:
                named = getattr(self.dialect, "asset", None)  # the stream's name of the asset
                asset = named(asset) if named is not None else asset
                loop.call_soon_threadsafe(user.note_withdrawal, asset, Decimal(str(amount)))

    # --- async iterators ------------------------------------------------------------------

    def watch_user(
        self,
        kinds: str,
        *,
        stream_url: str | None = None,
        monitor: AnomalyMonitor | None = None,
        options: StreamOptions | None = None,
    ) -> AsyncIterator[Any]:
        """An async iterator over the user stream's events of ``kinds`` (``orders``, ``fills`` or
        ``account``); the supervisor connects on its first ``__anext__``."""
        plain = as_text(kinds)  # looked up in a dict: the caller's own hash never runs
        if plain is None or plain not in KINDS:
            raise InvalidRequest(f"kinds must be one of {sorted(KINDS)}{own_methods(kinds)}")
        kinds = plain
        self._check_options(stream_url, monitor, options)
        hub = self

        async def iterate() -> AsyncIterator[Any]:
            if getattr(hub.dialect, "unified_symbols", False):
                await hub._load_instruments()
            user = hub.user_stream(stream_url=stream_url, monitor=monitor, options=options)
            sub: Subscription = user.subscribe(KINDS[kinds])
            try:
                await user.start()
                async for event in sub:
                    yield event
            finally:
                await sub.aclose()

        return iterate()

    def _check_options(self, stream_url: Any, monitor: Any, options: Any) -> None:
        """Refuse bad stream arguments before anything connects."""
        # a WebSocket venue's streams are wss://; OANDA's line stream is https://
        scheme = "https://" if getattr(self.dialect, "transport", "") == "http" else "wss://"
        if stream_url is not None and not (is_text(stream_url) and stream_url.startswith(scheme)):
            raise InvalidRequest(
                f"stream_url must be a {scheme} URL: {self.dialect.name}'s streams run over "
                "pinned TLS only"
            )
        instance("monitor", monitor, AnomalyMonitor)
        instance("options", options, StreamOptions)

    # --- the blocking driver's loop -------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop of a blocking client's streams (started on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="securetrade-streams", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the background loop and wait up to ``timeout`` seconds for its
        result."""
        if not isinstance(coroutine, Coroutine):
            raise InvalidRequest("run() takes a coroutine: call the async function, then pass it")
        _check_timeout(timeout)
        return _result(asyncio.run_coroutine_threadsafe(coroutine, self.loop()), timeout)

    def close(self) -> None:
        """Stop every stream and the background loop (the blocking client's close)."""
        if self._loop is not None:
            self.run(self.aclose(), timeout=15)
            loop = self._loop
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            if not loop.is_running():
                loop.close()
            self._loop = None

    async def aclose(self) -> None:
        """Stop the user stream and every market stream this client opened."""
        if self.user is not None:
            await self.user.close()
        for stream in self._markets:
            await stream.aclose()
        self._markets.clear()

    # --- placing with confirmation: over the stream while it is healthy, else REST --------

    async def place_confirmed(
        self, place: Callable[[], Awaitable[Order]], *, timeout: float
    ) -> tuple[Order, str]:
        """Place (``place()``), then wait for the venue's word on the order: its update on
        the stream while the stream is healthy; over REST when the stream is down or stays
        silent past ``timeout``. Returns the order and ``"stream"`` or ``"rest"``."""
        function("place", place)
        seconds("timeout", timeout, least=0)
        user = self.user
        sub = user.subscribe((OrderUpdate,)) if user is not None and user.healthy else None
        try:
            order = await place()
            if sub is not None:
                try:
                    await asyncio.wait_for(_seen(sub, order.client_order_id), timeout)
                    return order, "stream"
                except asyncio.TimeoutError:
                    pass
        finally:
            if sub is not None:
                await sub.aclose()
        client = self.client
        if self.asynchronous:
            found: Order = await client.get_order(  # type: ignore[misc]
                order.symbol, client_order_id=order.client_order_id
            )
        else:
            found = await asyncio.to_thread(
                client.get_order,  # type: ignore[arg-type]
                order.symbol,
                client_order_id=order.client_order_id,
            )
        return found, "rest"


async def _seen(sub: Subscription, client_order_id: str) -> None:
    async for update in sub:
        if update.client_order_id == client_order_id:
            return


class BlockingStream:
    """A blocking iterator over an async one running on the hub's loop."""

    def __init__(self, hub: StreamHub, make: Callable[[], AsyncIterator[Any]]) -> None:
        self._hub = hub
        self._iterator: AsyncIterator[Any] | None = None
        self._pending: Future[Any] | None = None
        self._make = make
        self._generation = _fork.generation  # its loop's thread is not in a forked child

    def __iter__(self) -> BlockingStream:
        return self

    def __next__(self) -> Any:
        return self.next(None)

    def next(self, timeout: float | None) -> Any:
        """The next event; ``TimeoutError`` after ``timeout`` seconds without one.
        :class:`~securetrade.errors.InheritedAcrossFork` in a child forked after the stream
        was made: its connection and its loop's thread are the parent's (the child waited
        for ever on a loop with no thread)."""
        if self._generation != _fork.generation:
            raise _fork.refused("stream (and its Client)")
        _check_timeout(timeout)
        if self._iterator is None:
            self._iterator = self._hub.run(self._start())
        future = self._pending
        if future is None:  # a wait that timed out is resumed, not cancelled
            future = asyncio.run_coroutine_threadsafe(_next(self._iterator), self._hub.loop())
            self._pending = future
        item = _result(future, timeout)
        self._pending = None
        if item is _DONE:
            raise StopIteration
        return item

    async def _start(self) -> AsyncIterator[Any]:
        return self._make()

    def close(self) -> None:
        """Close the async iterator underneath: a user stream subscription ends, a market stream
        disconnects. In a child forked after the stream was made, nothing: its connection
        and its loop are the parent's (the close waited 15 s for a loop with no thread
        there, and raised TimeoutError over the refusal a ``with`` block was leaving by)."""
        iterator = self._iterator
        if self._generation != _fork.generation:
            _fork.park(iterator)  # never finalized here: its cleanup would be the parent's
            return
        if iterator is not None:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                self._hub.run(closer(), timeout=15)

    def __enter__(self) -> BlockingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DONE = object()


async def _next(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _DONE


def hub_of(client: BlockingHost | AsyncHost, *, asynchronous: bool) -> StreamHub:
    """The client's :class:`StreamHub`, made and attached on first use (refused in a child
    forked after the client was built: its streams' connections are the parent's)."""
    here = getattr(client, "_here", None)
    if here is not None:
        here()
    hub: StreamHub | None = getattr(client, "_stream_hub", None)
    if hub is None:
        hub = StreamHub(client, asynchronous=asynchronous)
        client._stream_hub = hub
    return hub


_OPTIONS = frozenset({"stream_url", "monitor", "options"})


def _checked(options: dict[str, Any], hub: StreamHub) -> dict[str, Any]:
    """Refuse bad stream arguments before anything connects."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise InvalidRequest(
            f"unknown stream options {sorted(unknown)}; use stream_url=, monitor=, options="
        )
    hub._check_options(options.get("stream_url"), options.get("monitor"), options.get("options"))
    return dict(options)


def _market_symbol(kind: str, symbol: str | None) -> None:
    """A market stream needs its symbol: without one, the call would open the account's
    stream of a kind it does not have (a ``KeyError`` on the first read)."""
    if kind in ("ticker", "book") and symbol is None:
        raise InvalidRequest(f"watch_{kind}() needs the symbol to watch, such as BTCUSDT")


class AsyncStream:
    """``AsyncClient.watch_*``'s async iterator: the stream's own, with one int compare per
    event in front of it. In a child forked after it was made, its first use raises
    :class:`~securetrade.errors.InheritedAcrossFork` before anything connects or reads:
    its connection (if any yet) and its loop are the parent's. The stream is then parked
    (see :mod:`securetrade._fork`), so that its cleanup never closes the parent's
    connection from the child; ``aclose`` does nothing there either."""

    __slots__ = ("_generation", "_inner")

    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self._inner = inner
        self._generation = _fork.generation

    def __aiter__(self) -> AsyncStream:
        return self

    def __getattr__(self, name: str) -> Any:
        """The stream's own attributes (a market stream's ``venue``, ``symbol``,
        ``options``) read through, as before the wrapper (called only for names the
        wrapper does not have: no cost per event). In a forked child, refused like the rest:
        a user stream is an async generator, whose ``asend``/``athrow`` would run the
        parent's generator there (``asend(None)`` is ``__anext__`` by another name)."""
        if name.startswith("__"):
            raise AttributeError(name)
        if self._generation != _fork.generation:
            self._disown()
            raise _fork.refused("stream (and its AsyncClient)")
        return getattr(self._inner, name)

    def __anext__(self) -> Awaitable[Any]:  # the stream's own awaitable: no frame of ours
        if self._generation != _fork.generation:
            self._disown()
            raise _fork.refused("stream (and its AsyncClient)")
        return self._inner.__anext__()

    async def aclose(self) -> None:
        """Close the stream (its connection); in a forked child, nothing."""
        if self._generation != _fork.generation:
            self._disown()
            return
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    def _disown(self) -> None:
        if self._generation >= 0:
            _fork.park(self._inner)
            self._generation = -1  # parked once; every later use is refused as well


def watch_async(
    client: AsyncHost, kind: str, symbol: str | None, options: dict[str, Any]
) -> AsyncIterator[Any]:
    """``AsyncClient.watch_*``: an async iterator, connected on its first ``__anext__``."""
    _market_symbol(kind, symbol)
    hub = hub_of(client, asynchronous=True)
    options = _checked(options, hub)
    if symbol is None:
        return AsyncStream(hub.watch_user(kind, **options))
    return AsyncStream(
        hub.market_stream(
            kind, symbol, stream_url=options.get("stream_url"), options=options.get("options")
        )
    )


def watch_blocking(
    client: BlockingHost, kind: str, symbol: str | None, options: dict[str, Any]
) -> BlockingStream:
    """``Client.watch_*``: a blocking iterator over the hub's background loop."""
    _market_symbol(kind, symbol)
    hub = hub_of(client, asynchronous=False)
    options = _checked(options, hub)
    if symbol is None:
        return BlockingStream(hub, lambda: hub.watch_user(kind, **options))
    stream = hub.market_stream(
        kind, symbol, stream_url=options.get("stream_url"), options=options.get("options")
    )
    return BlockingStream(hub, lambda: stream)


async def place_confirmed(
    client: AsyncHost, order: OrderRequest, *, timeout: float = 2.0, **kwargs: Any
) -> tuple[Order, str]:
    """Place ``order``, then confirm it on the live stream, or over REST while the stream is
    down (or silent past ``timeout``): silence is never taken as an answer."""
    hub = hub_of(client, asynchronous=True)
    _check_placing(client, order, timeout, kwargs)
    return await hub.place_confirmed(lambda: client.place_order(order, **kwargs), timeout=timeout)


def place_confirmed_blocking(
    client: BlockingHost, order: OrderRequest, *, timeout: float = 2.0, **kwargs: Any
) -> tuple[Order, str]:
    """:func:`place_confirmed` for the blocking client."""
    hub = hub_of(client, asynchronous=False)
    _check_placing(client, order, timeout, kwargs)

    async def place() -> Order:
        return await asyncio.to_thread(client.place_order, order, **kwargs)

    return hub.run(hub.place_confirmed(place, timeout=timeout))


def _check_timeout(timeout: Any) -> None:
    """A wait's ``timeout``: None (no limit) or seconds; checked before anything is
    scheduled, as ``Future.result`` would raise a TypeError or OverflowError only then."""
    if timeout is not None:
        seconds("timeout", timeout, least=0)


def _check_placing(client: Any, order: Any, timeout: Any, kwargs: dict[str, Any]) -> None:
    """place_confirmed's arguments, refused before anything is placed: a keyword the
    client's ``place_order`` does not take would otherwise be its TypeError."""
    seconds("timeout", timeout, least=0)
    try:
        inspect.signature(client.place_order).bind(order, **kwargs)
    except TypeError:
        taken = [
            name
            for name, p in inspect.signature(client.place_order).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        ]
        raise InvalidRequest(
            f"place_confirmed passes {sorted(kwargs)} on to place_order, which takes "
            f"only {taken} besides the order"
        ) from None


def _result(future: Future[T], timeout: float | None) -> T:
    """``future.result(timeout)``, its timeout the builtin ``TimeoutError`` (which
    concurrent.futures raises itself only from Python 3.11)."""
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"nothing came within {timeout} s") from None
