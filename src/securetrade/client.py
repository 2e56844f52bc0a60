"""``Client`` and ``AsyncClient``: two thin drivers of the same core, with the same methods.

The sync client never touches asyncio, so it works in a Jupyter cell whose event loop is
already running; the async client never blocks its loop on network I/O.
"""

from __future__ import annotations

import functools
import ssl
import time
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _fork
from .client_calls import AccountCalls, AsyncAccountCalls
from .core import (
    Call,
    Flow,
    Journal,
    RecoveryReport,
    Resource,
    Wait,
)
from .core.effects import Renew, Send
from .core.manage import named
from .errors import LocalRefusal
from .keys import KeyCheck, Secret
from .models import (
    Balance,
    Candle,
    Fill,
    Instrument,
    Order,
    OrderBook,
    OrderRequest,
    PublicTrade,
    Ticker,
)
from .policy import Decision
from .tables import KeyedResults, Results
from .transport import (
    AsyncTransport,
    HttpTransport,
    Proxy,
    Timeout,
    Transport,
    TransportFailure,
)
from .transport.telemetry import span
from .venues.base import Op

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .core.group_commit import GroupCommit
    from .mfa import Confirmation
    from .streams import BlockingStream, StreamEvent

from .client_base import T, _asleep, _Base, _in_thread, default_journal_path

__all__ = ["AsyncClient", "Client", "default_journal_path"]

# Sends whose local refusal (a pin, a certificate, the transport's context) goes into the
# flow, which has its own reading of it: an order's create settles its recorded attempt
# NOT_PLACED; a lookup that resolves an attempt leaves it unresolved (the attempt may be at
# the venue). Other refusals are raised to the caller as they are.
_REFUSALS_INTO_FLOW = frozenset({Op.PLACE_ORDER, Op.GET_ORDER})


class Client(_Base[Transport], AccountCalls):
    """Synchronous client. Every protective layer applies to every call.

    Works in scripts, threads and Jupyter (also inside a running event loop). Use it as a
    context manager, or call :meth:`close`. Build it in the process that uses it: in a child
    forked after it was built (a multiprocessing worker), every call raises
    :class:`~securetrade.errors.InheritedAcrossFork` before sending or writing anything.
    Every argument is checked before anything is built or sent; a wrong one raises
    :class:`~securetrade.errors.InvalidRequest` naming it.

    Args:
        key: The scoped credential (:class:`~securetrade.keys.ApiKey`), or a
            :class:`~securetrade.keys.KeyRing` to rotate keys while running. Leave it out
            (and name ``venue``) for a market-data-only client: every call that needs a key
            is then refused with :class:`~securetrade.errors.ScopeError` before anything is
            sent, and its journal is in memory, since it can place nothing.
        venue: A venue name (``"binance"``, ``"kraken"``, ``"ccxt:okx"``) or a venue
            adapter. Defaults to the key's venue.
        base_url: The API root; defaults to the venue's URL for the key's environment
            (live, testnet). The simulator prints its own.
        pins: SPKI pins of the venue's TLS keys, ``{"host": ["sha256/...", ...]}`` or a
            :class:`~securetrade.transport.PinSet`: checked after the handshake and before
            the first request byte. Required unless ``unsafe_disable_pinning=True``.
            ``securetrade pins --host HOST`` prints a pin set.
        cafile: A CA bundle file to trust instead of the system's (e.g. the simulator's).
        cadata: The same, as PEM text.
        journal: The order journal: a file path, ``":memory:"`` (tests and notebooks: no
            protection across restarts), a :class:`~securetrade.core.Journal`, or a
            ``RedisJournal`` shared by several hosts. Default: the file
            ``$XDG_STATE_HOME/securetrade/journal-<venue>.sqlite3``, that is
            ``~/.local/state/securetrade/journal-<venue>.sqlite3`` when ``XDG_STATE_HOME``
            is unset (:func:`default_journal_path`).
        policy: Pre-trade limits (:class:`~securetrade.policy.Policy`); by default only
            the key's own restrictions apply.
        limiter: Where the rate-limit windows live (:class:`~securetrade.ratelimit.RateLimiter`):
            this process by default; ``RateLimiter.sqlite(path)`` or
            ``RateLimiter.redis(url)`` when processes or hosts share an IP or account.
        settings: Retry, resolution and recovery settings (:class:`~securetrade.core.Settings`).
        audit: Where every intent, request and state change is recorded
            (:class:`~securetrade.record.AuditLog`, e.g. a signed ``AuditTrail``).
        nonces: Where nonce venues (Kraken) draw nonces: one source per process by
            default; processes or hosts sharing a key need a shared one
            (:mod:`securetrade.nonce`).
        recv_window_ms: How long a signed request stays valid at venues that take a
            receive window (Binance: 5000 ms unless given).
        clock: The venue clock (:class:`~securetrade.clock.VenueClock`), e.g. with drift
            alarm thresholds and an ``on_alarm`` callback.
        timeout: Seconds for each phase of an HTTP exchange (lookup, connect, TLS, and
            the reply from the request's start, however slowly it drips in; at most 600),
            or a :class:`~securetrade.transport.Timeout` giving each phase its own (ccxt
            venues take its ``response``): see docs/transport.md.
        proxy: An ``http://`` proxy URL to tunnel through (CONNECT); pinning still applies
            end to end.
        transport: Replaces HTTPS entirely (the in-process simulator: ``sim.transport()``).
        unsafe_disable_pinning: Trust any certificate the CA store accepts. For local
            experiments only; says so in the log.
        unsafe_allow_withdraw_scope: Let a trading client use a key that may withdraw
            (refused by default: a leaked trading key should not drain the account).
        unsafe_allow_plain_http: Allow an ``http://`` base URL (a local test server only).
    """

    def _https(
        self,
        base_url: str,
        context: ssl.SSLContext,
        *,
        timeout: float | Timeout,
        proxy: Proxy | None,
        unsafe_allow_plain_http: bool,
    ) -> Transport:
        return HttpTransport(
            base_url,
            context,
            timeout=timeout,
            proxy=proxy,
            unsafe_allow_plain_http=unsafe_allow_plain_http,
        )

    def _run(self, name: str, flow: Flow[T]) -> T:
        """Drive ``flow``: every effect is performed here, in this thread, in order. The
        flow is closed when this returns or raises, whatever happened."""
        if self._generation != _fork.generation:  # a forked child: nothing of this is its own
            flow.close()
            raise _fork.refused("Client")
        journal = self.core.journal
        with span(name, venue=self.core.venue.name):
            value: Any = None
            failure: Exception | None = None
            try:
                while True:
                    try:
                        effect = flow.send(value) if failure is None else flow.throw(failure)
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]
                    value, failure = None, None
                    kind = type(effect)
                    if kind is Send:
                        try:
                            value = self._transport.send(effect.request)  # type: ignore[union-attr]
                        except TransportFailure as exc:
                            failure = exc
                        except LocalRefusal as exc:
                            if effect.op not in _REFUSALS_INTO_FLOW:  # type: ignore[union-attr]
                                raise
                            # A transport refuses (a pin, a certificate, its context, the
                            # request) only before any byte of the request left: the flow
                            # reads it (see _REFUSALS_INTO_FLOW).
                            failure = exc
                    elif kind is Wait:
                        time.sleep(effect.seconds)  # type: ignore[union-attr]
                    elif kind is Renew:  # an OAuth token: refreshed here, raised in the flow
                        try:
                            effect.source.renew()  # type: ignore[union-attr]
                        except Exception as exc:
                            failure = exc
                    else:  # a journal, limiter or audit call: its error is raised in the flow
                        try:
                            value = (
                                effect.run()  # type: ignore[union-attr]
                                if kind is Call
                                else effect.apply(journal)  # type: ignore[union-attr]
                            )
                        except Exception as exc:
                            failure = exc
            finally:
                flow.close()

    def server_time(self) -> int:
        """The venue's clock, in milliseconds since the epoch."""
        return self._run("server_time", self.core.server_time())

    def sync_clock(self) -> float:
        """Re-measure the offset to venue time; returns it in milliseconds."""
        self._run("sync_clock", self.core.sync_clock())
        return self.core.clock.offset_ms

    def instruments(self, *, refresh: bool = False) -> KeyedResults[Instrument]:
        """Trading rules per symbol (cached after the first call; a copy each time)."""
        return self._run("instruments", self.core.instruments(refresh=refresh))

    def ticker(self, symbol: str) -> Ticker:
        """Best bid and ask, last price and the day's range of ``symbol``. Needs no key."""
        return self._run("ticker", self.core.ticker(symbol))

    def order_book(self, symbol: str, depth: int = 100) -> OrderBook:
        """The book of ``symbol`` to ``depth`` levels a side, best first. Needs no key."""
        return self._run("order_book", self.core.order_book(symbol, depth))

    def candles(
        self,
        symbol: str,
        interval: str = "1m",
        *,
        since: datetime | int | None = None,
        limit: int | None = None,
    ) -> Results[Candle]:
        """OHLCV bars, oldest first: from ``since`` (an aware datetime or epoch ms) on,
        else the most recent. ``interval`` is one of ``securetrade.models.INTERVALS``
        (``"1m"``, ``"1h"``, ``"1d"``...) that the venue offers. Needs no key."""
        return Results(self._run("candles", self.core.candles(symbol, interval, since, limit)))

    def trades(self, symbol: str, *, limit: int | None = None) -> Results[PublicTrade]:
        """The latest trades on the venue's public tape, oldest first (everyone's; this
        account's own executions are :meth:`fills`). Needs no key."""
        return Results(self._run("trades", self.core.public_trades(symbol, limit)))

    def balances(self) -> Results[Balance]:
        """Holdings per asset. Needs the ``read`` scope."""
        return Results(self._run("balances", self.core.balances()))

    def place_order(self, order: OrderRequest, *, idempotency_key: str | None = None) -> Order:
        """Place ``order`` at most once per ``idempotency_key`` (generated when omitted).

        ``order.symbol`` may be the venue's own (``BTCUSDT``, ``XBTUSDT``) or unified
        (``BTC/USDT``), looked up in the venue's instruments; the order comes back under
        the venue's own name, and the same intent under either name is one order.

        Raises :class:`LocalRefusal` subclasses before sending anything,
        :class:`VenueRejected` when the venue says no, :class:`RetryableError` when it was
        certainly not placed, and :class:`UnresolvedOrder` when the venue cannot yet say.
        """
        core = self.core
        if core.maps_symbol(order):  # BTC/USDT at a venue that names it otherwise
            placing = core.with_native_order(
                order, functools.partial(core.place_order, idempotency_key=idempotency_key)
            )
            return self._run("place_order", named(order.symbol, placing))
        return self._run("place_order", core.place_order(order, idempotency_key))

    def check_order(self, order: OrderRequest) -> Instrument:
        """Run every local check on ``order`` without placing it (a dry run)."""
        return self._run("check_order", self.core.check_order(order))

    def would_pass(self, order: OrderRequest) -> Decision:
        """Would ``order`` pass scope, policy and instrument rules now? Sends reads only."""
        return self._run("would_pass", self.core.would_pass(order))

    def kill(self, reason: str, *, cancel_open: bool = False) -> Results[Order]:
        """Engage the policy's kill switch; with ``cancel_open``, cancel open orders too."""
        return Results(self._run("kill", self.core.kill(reason, cancel_open=cancel_open)))

    def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order:
        """One order by client order id or venue order id."""
        return self._run(
            "get_order",
            named(
                symbol,
                self.core.get_order(symbol, client_order_id=client_order_id, order_id=order_id),
            ),
        )

    def fills(self, symbol: str, *, client_order_id: str) -> Results[Fill]:
        """The order's fills: its trades at the venue, recorded in the journal once per
        trade id (a fill reported twice counts once). Needs the ``read`` scope."""
        return Results(self._run("fills", self.core.fills(symbol, client_order_id=client_order_id)))

    def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order:
        """Cancel one order. Needs the ``cancel`` scope."""
        return self._run(
            "cancel_order",
            named(
                symbol,
                self.core.cancel_order(symbol, client_order_id=client_order_id, order_id=order_id),
            ),
        )

    def open_orders(self, symbol: str | None = None) -> Results[Order]:
        """Open orders, for one symbol or all (named as asked: ``BTC/USDT`` in, out)."""
        return Results(self._run("open_orders", named(symbol, self.core.open_orders(symbol))))

    def withdraw(
        self,
        asset: str,
        amount: Decimal | str | int,
        address: str,
        *,
        network: str | None = None,
        confirmation: Confirmation | None = None,
    ) -> str:
        """Withdraw to an allowlisted address. Needs the ``withdraw`` scope; never retried.
        ``confirmation``: an operator's one-time code, when the policy has a confirmer."""
        return self._run(
            "withdraw",
            self.core.withdraw(asset, amount, address, network=network, confirmation=confirmation),
        )

    def recover(self) -> RecoveryReport:
        """Reconcile the journal with the venue now (it also runs before the first order)."""
        return self._run("recover", self.core.recover())

    def key_permissions(self) -> dict[str, Any]:
        """What the venue says this key may do."""
        return self._run("key_permissions", self.core.key_permissions())

    def ws_token(self) -> Secret:
        """A fresh token for the account's private WebSocket (Kraken's
        ``GetWebSocketsToken``), as a :class:`~securetrade.keys.Secret`; the streams ask for
        one on every connect."""
        return self._run("ws_token", self.core.ws_token())

    def check_key(self, *, refuse: bool = False) -> KeyCheck:
        """Compare the key's declared scopes with what the venue really allows.

        Problems (withdrawals enabled, no IP allowlist, undeclared permissions) are logged
        as warnings and listed in the returned report; with ``refuse=True`` they raise
        :class:`OverPermissionedKey` instead.
        """
        return self._run("check_key", self.core.check_key(refuse=refuse))

    # --- live streams (securetrade.streams, docs/streams.md) ---------------------------

    def watch_orders(self, **options: Any) -> BlockingStream:
        """This account's order updates, gap-free, with intruder orders flagged."""
        from .streams.drivers import watch_blocking

        return watch_blocking(self, "orders", None, options)

    def watch_fills(self, **options: Any) -> BlockingStream:
        """This account's fills, each exactly once, across disconnects."""
        from .streams.drivers import watch_blocking

        return watch_blocking(self, "fills", None, options)

    def watch_ticker(self, symbol: str, **options: Any) -> BlockingStream:
        """Best bid and ask of ``symbol`` as the venue streams them."""
        from .streams.drivers import watch_blocking

        return watch_blocking(self, "ticker", symbol, options)

    def watch_book(self, symbol: str, **options: Any) -> BlockingStream:
        """Top-of-book snapshots of ``symbol``."""
        from .streams.drivers import watch_blocking

        return watch_blocking(self, "book", symbol, options)

    def close(self) -> None:
        """Close the connections; the journal, limiter and audit trail stay with their owners.
        ``with`` calls it. In a child forked after the client was built it does nothing: the
        connections are the parent's, and it goes on using them."""
        if self._inherited:
            return
        if self._stream_hub is not None:
            self._stream_hub.close()
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_Base[AsyncTransport], AsyncAccountCalls):
    """Asynchronous client with the same methods as :class:`Client`, awaited.

    It takes exactly :class:`Client`'s arguments (documented there once), except that
    ``transport`` is an asynchronous one (``sim.async_transport()``). Use it with
    ``async with``, or await :meth:`aclose`. Journal, limiter and audit calls that wait on
    a file or the network run in worker threads, never on the event loop.
    """

    _asynchronous = True

    # The address of this host its connections leave from (None: the system's choice); the
    # copy engine's clients for one egress IP set it.
    _local_address: str | None = None

    def _https(
        self,
        base_url: str,
        context: ssl.SSLContext,
        *,
        timeout: float | Timeout,
        proxy: Proxy | None,
        unsafe_allow_plain_http: bool,
    ) -> AsyncTransport:
        from .transport.aio import AsyncHttpTransport

        return AsyncHttpTransport(
            base_url,
            context,
            timeout=timeout,
            proxy=proxy,
            unsafe_allow_plain_http=unsafe_allow_plain_http,
            local_address=self._local_address,
        )

    @functools.cached_property
    def _group(self) -> GroupCommit:
        """Journal writes of concurrent orders, committed in groups (loaded by async users)."""
        from .core.group_commit import GroupCommit

        return GroupCommit.of(self.core.journal)

    @functools.cached_property
    def _off_loop(self) -> frozenset[Resource]:
        """The resources whose calls wait on a file or the network: made in a thread."""
        core = self.core
        waits = {
            Resource.LIMITER: core.limiter.blocking,
            Resource.JOURNAL: core.journal.blocking or isinstance(core.journal, Journal),
            Resource.AUDIT: core.audit.trail is not None,
            Resource.POLICY: core.policy.blocking,
        }
        off = frozenset(resource for resource, blocks in waits.items() if blocks)
        core.inline = frozenset(Resource) - off  # the rest the flows call in place
        return off

    async def _run(self, name: str, flow: Flow[T]) -> T:
        """Drive ``flow`` on the running loop; nothing that waits on I/O runs on the loop
        itself. The flow is closed when this returns or raises (a cancelled task too)."""
        if self._generation != _fork.generation:  # a forked child: see Client._run
            flow.close()
            raise _fork.refused("AsyncClient")
        off_loop = self._off_loop
        with span(name, venue=self.core.venue.name):
            value: Any = None
            failure: Exception | None = None
            try:
                while True:
                    try:
                        effect = flow.send(value) if failure is None else flow.throw(failure)
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]
                    value, failure = None, None
                    kind = type(effect)
                    if kind is Send:
                        try:
                            value = await self._transport.send(effect.request)  # type: ignore[union-attr]
                        except TransportFailure as exc:
                            failure = exc
                        except LocalRefusal as exc:
                            if effect.op not in _REFUSALS_INTO_FLOW:  # type: ignore[union-attr]
                                raise
                            failure = exc  # refused before any byte left: as in Client._run
                    elif kind is Wait:
                        await _asleep(effect.seconds)  # type: ignore[union-attr]
                    elif kind is Renew:  # an OAuth token: refreshed off the loop, once
                        try:
                            await effect.source.arenew()  # type: ignore[union-attr]
                        except Exception as exc:
                            failure = exc
                    else:  # an order's journal call (grouped), or a limiter, journal, audit call
                        try:
                            if kind is Call:
                                if effect.resource in off_loop:  # type: ignore[union-attr]
                                    value = await _in_thread(effect.run)  # type: ignore[union-attr]
                                else:
                                    value = effect.run()  # type: ignore[union-attr]
                            else:
                                value = await self._group.perform(effect)  # type: ignore[arg-type]
                        except Exception as exc:
                            failure = exc
            finally:
                flow.close()

    async def server_time(self) -> int:
        """The venue's clock, in milliseconds since the epoch."""
        return await self._run("server_time", self.core.server_time())

    async def sync_clock(self) -> float:
        """Re-measure the offset to venue time; returns it in milliseconds."""
        await self._run("sync_clock", self.core.sync_clock())
        return self.core.clock.offset_ms

    async def instruments(self, *, refresh: bool = False) -> KeyedResults[Instrument]:
        """Trading rules per symbol (cached after the first call; a copy each time)."""
        return await self._run("instruments", self.core.instruments(refresh=refresh))

    async def ticker(self, symbol: str) -> Ticker:
        """Best bid and ask, last price and the day's range; see :meth:`Client.ticker`."""
        return await self._run("ticker", self.core.ticker(symbol))

    async def order_book(self, symbol: str, depth: int = 100) -> OrderBook:
        """The book to ``depth`` levels a side; see :meth:`Client.order_book`."""
        return await self._run("order_book", self.core.order_book(symbol, depth))

    async def candles(
        self,
        symbol: str,
        interval: str = "1m",
        *,
        since: datetime | int | None = None,
        limit: int | None = None,
    ) -> Results[Candle]:
        """OHLCV bars, oldest first; see :meth:`Client.candles`."""
        return Results(
            await self._run("candles", self.core.candles(symbol, interval, since, limit))
        )

    async def trades(self, symbol: str, *, limit: int | None = None) -> Results[PublicTrade]:
        """The latest public trades, oldest first; see :meth:`Client.trades`."""
        return Results(await self._run("trades", self.core.public_trades(symbol, limit)))

    async def balances(self) -> Results[Balance]:
        """Holdings per asset. Needs the ``read`` scope."""
        return Results(await self._run("balances", self.core.balances()))

    async def place_order(
        self, order: OrderRequest, *, idempotency_key: str | None = None
    ) -> Order:
        """Place ``order`` at most once per ``idempotency_key``; see :meth:`Client.place_order`."""
        core = self.core
        if core.maps_symbol(order):  # BTC/USDT at a venue that names it otherwise
            placing = core.with_native_order(
                order, functools.partial(core.place_order, idempotency_key=idempotency_key)
            )
            return await self._run("place_order", named(order.symbol, placing))
        return await self._run("place_order", core.place_order(order, idempotency_key))

    async def check_order(self, order: OrderRequest) -> Instrument:
        """Run every local check on ``order`` without placing it (a dry run)."""
        return await self._run("check_order", self.core.check_order(order))

    async def would_pass(self, order: OrderRequest) -> Decision:
        """Would ``order`` pass scope, policy and instrument rules now? Sends reads only."""
        return await self._run("would_pass", self.core.would_pass(order))

    async def kill(self, reason: str, *, cancel_open: bool = False) -> Results[Order]:
        """Engage the policy's kill switch; with ``cancel_open``, cancel open orders too."""
        return Results(await self._run("kill", self.core.kill(reason, cancel_open=cancel_open)))

    async def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order:
        """One order by client order id or venue order id."""
        return await self._run(
            "get_order",
            named(
                symbol,
                self.core.get_order(symbol, client_order_id=client_order_id, order_id=order_id),
            ),
        )

    async def fills(self, symbol: str, *, client_order_id: str) -> Results[Fill]:
        """The order's fills, recorded once per trade id; see :meth:`Client.fills`."""
        return Results(
            await self._run("fills", self.core.fills(symbol, client_order_id=client_order_id))
        )

    async def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order:
        """Cancel one order. Needs the ``cancel`` scope."""
        return await self._run(
            "cancel_order",
            named(
                symbol,
                self.core.cancel_order(symbol, client_order_id=client_order_id, order_id=order_id),
            ),
        )

    async def open_orders(self, symbol: str | None = None) -> Results[Order]:
        """Open orders, for one symbol or all (named as asked: ``BTC/USDT`` in, out)."""
        return Results(await self._run("open_orders", named(symbol, self.core.open_orders(symbol))))

    async def withdraw(
        self,
        asset: str,
        amount: Decimal | str | int,
        address: str,
        *,
        network: str | None = None,
        confirmation: Confirmation | None = None,
    ) -> str:
        """Withdraw to an allowlisted address. Needs the ``withdraw`` scope; never retried.
        ``confirmation``: an operator's one-time code, when the policy has a confirmer."""
        return await self._run(
            "withdraw",
            self.core.withdraw(asset, amount, address, network=network, confirmation=confirmation),
        )

    async def recover(self) -> RecoveryReport:
        """Reconcile the journal with the venue now (it also runs before the first order)."""
        return await self._run("recover", self.core.recover())

    async def key_permissions(self) -> dict[str, Any]:
        """What the venue says this key may do."""
        return await self._run("key_permissions", self.core.key_permissions())

    async def ws_token(self) -> Secret:
        """A fresh private WebSocket token; see :meth:`Client.ws_token`."""
        return await self._run("ws_token", self.core.ws_token())

    async def check_key(self, *, refuse: bool = False) -> KeyCheck:
        """Compare declared scopes with the venue's; see :meth:`Client.check_key`."""
        return await self._run("check_key", self.core.check_key(refuse=refuse))

    # --- live streams (securetrade.streams, docs/streams.md) ---------------------------

    def watch_orders(self, **options: Any) -> AsyncIterator[StreamEvent]:
        """This account's order updates, gap-free: ``async for event in ...``."""
        from .streams.drivers import watch_async

        return watch_async(self, "orders", None, options)

    def watch_fills(self, **options: Any) -> AsyncIterator[StreamEvent]:
        """This account's fills, each exactly once, across disconnects."""
        from .streams.drivers import watch_async

        return watch_async(self, "fills", None, options)

    def watch_ticker(self, symbol: str, **options: Any) -> AsyncIterator[StreamEvent]:
        """Best bid and ask of ``symbol`` as the venue streams them."""
        from .streams.drivers import watch_async

        return watch_async(self, "ticker", symbol, options)

    def watch_book(self, symbol: str, **options: Any) -> AsyncIterator[StreamEvent]:
        """Top-of-book snapshots of ``symbol``."""
        from .streams.drivers import watch_async

        return watch_async(self, "book", symbol, options)

    async def aclose(self) -> None:
        """Close the connections; the journal, limiter and audit trail stay with their owners.
        ``async with`` calls it. In a forked child it does nothing (see :meth:`Client.close`)."""
        if self._inherited:
            return
        if self._stream_hub is not None:
            await self._stream_hub.aclose()
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
