"""The calls whose resending is harmless: reads, cancels, withdrawals, and the local checks
of an order (scope, policy, instrument rules), over the request pipeline.

A read that tells us about one of our own orders is evidence (the venue holds it): it is
written to the journal as the evidence transition of :mod:`.states`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from .._checks import LAST_SECOND, flag, function, instance, shown, text
from ..errors import InvalidRequest, LocalRefusal, OrderNotFound, PolicyViolation, ScopeError
from ..keys import KeyCheck, Scope, Secret, assess
from ..models import (
    INTERVALS,
    Balance,
    Candle,
    Fill,
    Instrument,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    PublicTrade,
    Ticker,
    as_json,
    to_decimal,
)
from ..policy import Decision, KillState, ReferencePrice
from ..ratelimit import Priority
from ..tables import KeyedResults
from ..transport import telemetry
from ..venues.base import Capabilities, Op, Params, capabilities_of
from .effects import Flow, Lookup, Resource, Settle
from .pipeline import Pipeline
from .states import IntentState

if TYPE_CHECKING:
    from ..mfa import Confirmation

__all__ = ["Reads", "state_of"]

T = TypeVar("T")

log = logging.getLogger("securetrade")

_MAX_REF = 128  # the longest order reference a supported venue takes (Alpaca's)

# Read once, at import, as in models.common (a member read off its class is slow in 3.11).
_TRADE, _POLICY, _ORDER = Scope.TRADE, Resource.POLICY, Priority.ORDER


def _check_refs(client_order_id: object, order_id: object) -> None:
    """An order reference is 1-128 printable ASCII characters, checked before anything is
    sent: one with CR, LF or 100,000 characters used to go to the venue (encoded, but
    sent), to come back as "not found" or HTTP 414 rather than a refusal here. Each venue
    refuses what else it does not take (Kraken: a space) with its own reasons."""
    for name, value in (("client_order_id", client_order_id), ("order_id", order_id)):
        if value is None:
            continue
        if (
            not isinstance(value, str)
            or not 0 < len(value) <= _MAX_REF
            or not value.isascii()
            or not all("\x20" <= c <= "\x7e" for c in value)
        ):
            raise InvalidRequest(
                f"{name} must be the venue's reference as text: 1-{_MAX_REF} printable ASCII "
                "characters (e.g. order.order_id or order.client_order_id)"
            )


_STATE_OF = {
    OrderStatus.NEW: IntentState.ACKED,
    OrderStatus.PARTIALLY_FILLED: IntentState.ACKED,
    OrderStatus.FILLED: IntentState.FILLED,
    OrderStatus.CANCELED: IntentState.CANCELED,
    OrderStatus.REJECTED: IntentState.REJECTED,
    OrderStatus.EXPIRED: IntentState.EXPIRED,
}


def state_of(order: Order) -> IntentState:
    """The journal state of an order the venue reports."""
    return _STATE_OF[order.__dict__["status"]]  # one read past pydantic's slow hook


class Reads(Pipeline):
    """Reads and the other repeatable calls; the pre-trade checks; the kill switch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cancel_due: KillState | None = None  # a kill switch asked to cancel open orders
        self._cancelled_for: float | None = None  # ...and this engagement was honoured
        self._kill_lock = threading.Lock()  # one thread honours an engagement
        # unified symbol -> the venue's, for the instrument table it was built from
        self._unified: tuple[dict[str, Instrument], dict[str, str]] | None = None
        for switch in self.policy.kill_switches():
            switch.on_engage(_kill_listener(self))

    @functools.cached_property
    def capabilities(self) -> Capabilities:
        """What the venue supports, read once from its tables."""
        return capabilities_of(self.venue)

    def server_time(self) -> Flow[int]:
        payload = yield from self._call(Op.SERVER_TIME, [])
        return self.venue.parse_server_time(payload)

    def instruments(
        self, *, refresh: bool = False, priority: Priority = Priority.BULK
    ) -> Flow[KeyedResults[Instrument]]:
        """A copy of the cached rules (the caller may change it), shown as one table."""
        flag("refresh", refresh)
        if self._cancel_due is not None:
            yield from self._honour_kill_switch()
        return KeyedResults((yield from self.markets(refresh=refresh, priority=priority)))

    # --- market data: public, unsigned, and counted like every other request -------------

    def ticker(self, symbol: str) -> Flow[Ticker]:
        symbol = yield from self.native_symbol(symbol)
        params = self._market_params(Op.TICKER, "ticker_params", symbol)
        payload = yield from self._call(Op.TICKER, params, symbol=symbol, priority=Priority.BULK)
        ticker: Ticker = self.venue.parse_ticker(payload, symbol)  # type: ignore[attr-defined]
        return ticker

    def order_book(self, symbol: str, depth: int) -> Flow[OrderBook]:
        depth = _plain_int(depth)
        symbol = yield from self.native_symbol(symbol)
        params = self._market_params(Op.ORDER_BOOK, "order_book_params", symbol, depth)
        payload = yield from self._call(
            Op.ORDER_BOOK, params, symbol=symbol, priority=Priority.BULK
        )
        book: OrderBook = self.venue.parse_order_book(payload, symbol)  # type: ignore[attr-defined]
        return book

    def candles(
        self, symbol: str, interval: str, since: datetime | int | None, limit: int | None
    ) -> Flow[list[Candle]]:
        """Bars from ``since`` on (the first ``limit`` of them), else the latest ``limit``."""
        limit = _plain_int(limit)
        if not isinstance(interval, str) or (interval := str.__str__(interval)) not in INTERVALS:
            raise InvalidRequest(
                f"interval must be one of {', '.join(INTERVALS)}, not {shown(interval)}"
            )
        since_ms = None if since is None else _milliseconds(since, "since")
        symbol = yield from self.native_symbol(symbol)
        params = self._market_params(
            Op.CANDLES, "candles_params", symbol, interval, since_ms, limit
        )
        payload = yield from self._call(Op.CANDLES, params, symbol=symbol, priority=Priority.BULK)
        bars: list[Candle] = self.venue.parse_candles(payload, symbol, interval)  # type: ignore[attr-defined]
        if since_ms is not None:  # a venue whose cursor is coarser than ours (Kraken: seconds)
            bars = [b for b in bars if b.opened_at.timestamp() * 1000 >= since_ms]
        if limit is not None and len(bars) > limit:  # a venue without a count (Kraken's OHLC)
            bars = bars[:limit] if since_ms is not None else bars[-limit:]
        return bars

    def public_trades(self, symbol: str, limit: int | None) -> Flow[list[PublicTrade]]:
        """The latest trades on the venue's tape, oldest first."""
        limit = _plain_int(limit)
        symbol = yield from self.native_symbol(symbol)
        params = self._market_params(Op.PUBLIC_TRADES, "public_trades_params", symbol, limit)
        payload = yield from self._call(
            Op.PUBLIC_TRADES, params, symbol=symbol, priority=Priority.BULK
        )
        trades: list[PublicTrade] = self.venue.parse_public_trades(payload, symbol)  # type: ignore[attr-defined]
        if limit is not None and len(trades) > limit:
            trades = trades[-limit:]
        return trades

    def _market_params(self, op: Op, builder: str, symbol: str, *args: Any) -> Params:
        """The venue's parameters for a market-data call, checked before anything is sent."""
        self.venue.check_symbol(symbol)
        build = getattr(self.venue, builder, None)
        if build is None or op not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} does not offer {op.value}")
        params: Params = build(symbol, *args)
        return params

    # --- one symbol language ---------------------------------------------------------------

    def native_symbol(self, symbol: str) -> Flow[str]:
        """The venue's own name for ``symbol``: a unified ``BASE/QUOTE`` (``BTC/USDT``) is
        looked up in the venue's instrument table (read once); any other text is taken as
        the venue's own (``BTCUSDT``, ``XBTUSDT``, ``AAPL``) and checked as before."""
        if not isinstance(symbol, str) or "/" not in symbol:
            return symbol
        try:
            self.venue.check_symbol(symbol)
        except InvalidRequest:
            pass  # not the venue's own grammar: map it
        else:
            return symbol  # a venue whose own symbols are unified (ccxt)
        instruments = yield from self.markets()
        if symbol in instruments:  # a venue whose own symbols are unified (ccxt)
            return symbol
        cached = self._unified
        if cached is None or cached[0] is not instruments:
            table = {
                f"{i.base_asset}/{i.quote_asset}".upper(): i.symbol for i in instruments.values()
            }
            cached = self._unified = (instruments, table)
        native = cached[1].get(symbol.upper())
        if native is None:
            raise InvalidRequest(f"{symbol} is not listed at {self.venue.name}")
        return native

    def maps_symbol(self, order: OrderRequest) -> bool:
        """Whether ``order`` names its symbol in the unified form this venue must map."""
        return (
            isinstance(order, OrderRequest)
            and "/" in order.symbol
            and order.symbol not in self.market.instruments
        )

    def native_order(self, order: OrderRequest) -> Flow[OrderRequest]:
        """``order`` with its symbol in the venue's own name: the intent (and so the
        idempotency fingerprint) is the same whichever name the caller used."""
        if not isinstance(order, OrderRequest):
            instance("order", order, OrderRequest, optional=False)
        native = yield from self.native_symbol(order.symbol)
        if native == order.symbol:
            return order
        return order.model_copy(update={"symbol": native})

    def with_native_order(
        self, order: OrderRequest, then: Callable[[OrderRequest], Flow[T]]
    ) -> Flow[T]:
        """Map ``order``'s symbol, then run ``then(order)`` (placing it, say)."""
        if not callable(then):
            function("then", then)
        native = yield from self.native_order(order)
        result: T = yield from then(native)
        return result

    def balances(self) -> Flow[list[Balance]]:
        payload = yield from self._call(Op.BALANCES, [])
        return self.venue.parse_balances(payload)

    def open_orders(self, symbol: str | None = None) -> Flow[list[Order]]:
        if symbol is not None:
            symbol = yield from self.native_symbol(symbol)
            self.venue.check_symbol(symbol)
        params = self.venue.open_orders_params(symbol)
        payload = yield from self._call(Op.OPEN_ORDERS, params, symbol=symbol)
        orders = self.venue.parse_orders(payload)
        listed = [o for o in orders if symbol is None or o.symbol == symbol]
        self.policy.observe_open_orders(listed, symbol=symbol)
        keyed = []
        for order in listed:  # the idempotency key each of ours was placed with
            keyed.append((yield from self._keyed(order)))
        return keyed

    def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        _check_refs(client_order_id, order_id)
        symbol = yield from self.native_symbol(symbol)
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        payload = yield from self._call(Op.GET_ORDER, params, symbol=symbol)
        order = self.venue.parse_order(payload)
        self.policy.observe(order)
        return (yield from self._record(order))

    def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        _check_refs(client_order_id, order_id)
        symbol = yield from self.native_symbol(symbol)
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        # A cancel is idempotent at the venue: resending one is always safe.
        payload = yield from self._call(Op.CANCEL_ORDER, params, symbol=symbol)
        if Op.CANCEL_ORDER in self.venue.order_acks:  # an acknowledgement: read the order back
            order = yield from self.get_order(
                symbol, client_order_id=client_order_id, order_id=order_id
            )
        else:
            order = self.venue.parse_order(payload)
            order = yield from self._record(order)
        self.policy.observe(order)
        yield from self.note("order.canceled", client_order_id=order.client_order_id, symbol=symbol)
        return order

    def fills(self, symbol: str, *, client_order_id: str) -> Flow[list[Fill]]:
        """The executions of one of our orders: the venue's trades for it are recorded in
        the journal, once per trade id, and every fill recorded so far is returned."""
        if client_order_id is None:
            raise InvalidRequest("fills() needs the order's client_order_id")
        _check_refs(client_order_id, None)
        symbol = yield from self.native_symbol(symbol)
        self.venue.check_symbol(symbol)
        trades_params = getattr(self.venue, "trades_params", None)
        if trades_params is None or Op.TRADES not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} does not report an order's trades")
        journal = self.journal
        intent = yield Lookup(client_order_id)
        if intent is not None and intent.order_json is not None:
            order = self.stored(intent.order_json, intent.idempotency_key)
        else:
            order = yield from self.get_order(symbol, client_order_id=client_order_id)
        payload = yield from self._call(
            Op.TRADES, trades_params(symbol, order.order_id), symbol=symbol
        )
        trades: list[Fill] = self.venue.parse_trades(payload)  # type: ignore[attr-defined]

        def record() -> list[Fill]:
            journal.record_fills(client_order_id, trades)
            return journal.fills(client_order_id)

        recorded: list[Fill] = yield from self.perform(Resource.JOURNAL, record)
        return recorded

    def _record(self, order: Order) -> Flow[Order]:
        """Keep the journal row of one of our orders current with what the venue said of it
        (a cancel, a fill, an UNKNOWN intent adopted when its order lands): the evidence
        transition, which never moves an order back. The order is returned with the
        idempotency key the journal knows it by."""
        cid = order.client_order_id
        if not self.venue.owns_client_order_id(cid):
            return order
        intent = yield Lookup(cid)
        if intent is None or intent.account != self.account:
            return order
        order = order.model_copy(update={"idempotency_key": intent.idempotency_key})
        state = state_of(order)
        if state is IntentState.REJECTED:
            return order  # a venue that lists a refused order: it says nothing of our attempts
        yield Settle(cid, state, as_json(order), fills=order.fills)
        return order

    def _keyed(self, order: Order) -> Flow[Order]:
        """``order`` with the idempotency key the journal knows it by, if it is ours."""
        cid = order.client_order_id
        if order.idempotency_key is not None or not self.venue.owns_client_order_id(cid):
            return order
        intent = yield Lookup(cid)
        if intent is None or intent.account != self.account:
            return order
        return order.model_copy(update={"idempotency_key": intent.idempotency_key})

    def withdraw(
        self,
        asset: str,
        amount: Decimal | str | int,
        address: str,
        *,
        network: str | None = None,
        confirmation: Confirmation | None = None,
    ) -> Flow[str]:
        text("asset", asset)
        text("address (an allowlisted withdrawal address)", address)
        if network is not None:
            text("network", network)
        value = to_decimal(amount, field="amount")
        if value <= 0:
            raise InvalidRequest("amount must be greater than zero")
        params = self.venue.withdraw_params(asset, value, address, network)
        policy = self.policy
        try:
            yield from self.perform(Resource.POLICY, policy.check_withdrawal)
            self.key.require(Scope.WITHDRAW, address=address)
            yield from self.perform(  # last: a code is spent only on a withdrawal that may go
                Resource.POLICY,
                lambda: policy.confirm_withdrawal(
                    confirmation, asset=asset, amount=str(value), address=address
                ),
            )
        except LocalRefusal as exc:
            yield from self.note(
                "withdraw.refused", asset=asset, amount=value, reason=type(exc).__name__
            )
            raise
        yield from self.note("withdraw.attempt", asset=asset, amount=value, address=address)
        payload = yield from self._call(Op.WITHDRAW, params, once=True, address=address)
        return self.venue.parse_withdrawal(payload)

    def ws_token(self) -> Flow[Secret]:
        """A fresh token that opens the account's private WebSocket (Kraken's
        ``GetWebSocketsToken``), held as a :class:`~securetrade.keys.Secret` from the moment
        the answer is read; asked for anew on every (re)connect, as the venue wants."""
        parse = getattr(self.venue, "parse_ws_token", None)
        if parse is None or Op.WS_TOKEN not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} issues no WebSocket token")
        payload = yield from self._call(Op.WS_TOKEN, [])
        token: Secret = parse(payload)
        return token

    def key_permissions(self) -> Flow[dict[str, Any]]:
        if Op.KEY_PERMISSIONS not in self.capabilities.operations:
            raise InvalidRequest(f"{self.venue.name} does not offer key_permissions")
        payload = yield from self._call(Op.KEY_PERMISSIONS, [])
        return dict(payload)

    def check_key(self, *, refuse: bool = False) -> Flow[KeyCheck]:
        """Ask the venue what the key may really do; warn, or refuse, if more than declared."""
        flag("refuse", refuse)
        parse = getattr(self.venue, "parse_key_permissions", None)
        if parse is None or Op.KEY_PERMISSIONS not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} cannot report what a key may do")
        key = self.key
        payload = yield from self._call(Op.KEY_PERMISSIONS, [])
        report = assess(key, parse(payload))
        yield from self.note("key.checked", key=report.key_id_hint, ok=report.ok)
        return report.enforce(refuse=refuse)

    # --- the pre-trade checks --------------------------------------------------------------

    def check_order(self, order: OrderRequest) -> Flow[Instrument]:
        """Every local check of ``order`` (scope, policy, venue grammar, instrument rules)."""
        if self.maps_symbol(order):
            order = yield from self.native_order(order)
        instrument, _ = yield from self.vet(order)
        return instrument

    def would_pass(self, order: OrderRequest) -> Flow[Decision]:
        """The dry run: would ``order`` pass every local check now? Only reads are sent."""
        try:
            if self.maps_symbol(order):
                order = yield from self.native_order(order)
            yield from self.vet(order)
        except PolicyViolation as exc:
            return Decision.deny(exc.rule, exc.message)
        except LocalRefusal as exc:
            rule = "scope" if isinstance(exc, ScopeError) else "instrument"
            return Decision.deny(rule, exc.message)
        return Decision(True)

    def vet(self, order: OrderRequest) -> Flow[tuple[Instrument, ReferencePrice | None]]:
        """Scope, then the rules that need no market data, then the venue's grammar and
        instrument rules, then (only if a rule or the key's notional limit needs it) the
        reference price and the rest."""
        if not isinstance(order, OrderRequest):
            raise InvalidRequest("order must be an OrderRequest (LimitOrder, MarketOrder, ...)")
        if self._cancel_due is not None:
            yield from self._honour_kill_switch()
        key = self.key
        notional = order.notional  # a property that multiplies: read once
        # The fields from __dict__: a model's attribute read goes through pydantic's
        # __getattr__ hook, slowly, and this runs for every order.
        fields = order.__dict__
        quantity, tif = fields["quantity"], fields["time_in_force"]
        try:
            key.require(_TRADE, symbol=fields["symbol"], quantity=quantity, notional=notional)
        except ScopeError:
            yield from self.note("scope.refused", op="place_order", reason="permission")
            raise
        policy = self.policy
        caps = self.capabilities
        if fields["type"] not in caps.order_types:
            offered = _listing(t.value for t in caps.order_types)
            raise InvalidRequest(
                f"{self.venue.name} takes {offered} orders, not {order.type.value}; "
                "see client.capabilities"
            )
        if fields["quote_quantity"] is not None and fields["side"] not in caps.quote_quantity:
            sides = _listing(s.value for s in caps.quote_quantity)
            raise InvalidRequest(
                f"{self.venue.name} takes no quote_quantity {order.side.value} orders"
                + (f" (only {sides})" if sides else "")
                + "; give the quantity in the base asset. See client.capabilities"
            )
        if fields["post_only"] and not caps.post_only:
            raise InvalidRequest(
                f"{self.venue.name} takes no post-only orders; see client.capabilities"
            )
        if tif is not None and tif not in caps.time_in_force:
            offered = _listing(t.value for t in caps.time_in_force)
            raise InvalidRequest(
                f"{self.venue.name} offers {offered}, not {tif.value}; see client.capabilities"
            )
        try:
            yield from self.perform(_POLICY, functools.partial(policy.check, order, final=False))
            symbol = fields["symbol"]
            self.venue.check_symbol(symbol)
            instruments = yield from self.markets(priority=_ORDER)
            instrument = instruments.get(symbol)
            if instrument is None:
                raise InvalidRequest(f"{symbol} is not listed at {self.venue.name}")
            instrument.check(order)
            # The account's own rules, from the account as read now (OANDA: no hedging).
            account_endpoint = getattr(self.venue, "account_endpoint", None)
            check_account = getattr(self.venue, "check_account", None)
            if account_endpoint is not None and check_account is not None:
                account = yield from self._retrying(account_endpoint, [], priority=Priority.ORDER)
                check_account(order, account)
            reference = None
            valued_by_key = notional is None and key.max_notional is not None
            sized_by_key = quantity is None and key.max_quantity is not None
            priced_by_policy = policy.needs_reference(order)
            if valued_by_key or sized_by_key or priced_by_policy:
                reference = yield from self.reference_price(symbol)
            if valued_by_key or sized_by_key:
                yield from self._within_key_notional(order, reference)
            if priced_by_policy:  # else the first check was complete
                yield from self.perform(
                    Resource.POLICY,
                    functools.partial(policy.check, order, reference_price=reference),
                )
        except PolicyViolation as exc:
            if exc.rule == "kill_switch":  # engaged elsewhere: it may ask to cancel here too
                yield from self._honour_kill_switch()
            yield from self.note(
                "policy.denied", rule=exc.rule, symbol=order.symbol, reason=exc.message
            )
            telemetry.annotate("policy.decision", f"deny:{exc.rule}")
            raise
        telemetry.annotate("policy.decision", "allow")
        return instrument, reference

    def _within_key_notional(
        self, order: OrderRequest, reference: ReferencePrice | None
    ) -> Flow[None]:
        """A market order has no price of its own: the key's notional limit is checked at
        the venue's last price; a quote-quantity order has no base quantity: the key's
        quantity limit is checked on its amount over that price. No price, no order: the
        limit is never skipped."""
        key = self.key
        if reference is None or reference.price <= 0:
            if order.quantity is None:
                raise ScopeError(
                    f"key {key.key_id_hint} limits quantity to {key.max_quantity}; a "
                    "quote_quantity order is sized at the venue's last price, which could "
                    "not be read: nothing was sent. Give the quantity, or try again"
                )
            raise ScopeError(
                f"key {key.key_id_hint} limits notional to {key.max_notional}; a market order "
                "is valued at the venue's last price, which could not be read: nothing was "
                "sent. Use a limit order, or try again"
            )
        try:
            if order.quantity is None:
                key.require(Scope.TRADE, quantity=order.estimated_quantity(reference.price))
            else:
                key.require(Scope.TRADE, notional=order.quantity * reference.price)
        except ScopeError:
            yield from self.note("scope.refused", op="place_order", reason="notional")
            raise

    def reference_price(self, symbol: str) -> Flow[ReferencePrice]:
        """The venue's last price of ``symbol``, reused while younger than the policy's
        ``reference_max_age`` allows (half of it, so a reused price is never stale)."""
        if type(symbol) is not str:  # a dict key next: a list, or a hash that raises
            symbol = text("symbol", symbol)
        cached = self.market.references.get(symbol)
        if cached is not None and time.time() - cached.at < self.policy.reference_max_age / 2:
            return cached
        self.venue.check_symbol(symbol)
        # The venue's own parameters (Kraken names the pair ``pair``); ``symbol`` otherwise.
        ticker_params = getattr(self.venue, "ticker_params", None)
        params = [("symbol", symbol)] if ticker_params is None else ticker_params(symbol)
        payload = yield from self._call(
            Op.TICKER_PRICE, params, symbol=symbol, priority=Priority.ORDER
        )
        fresh = ReferencePrice(symbol, self.venue.parse_price(payload), time.time())
        self.market.references[symbol] = fresh
        return fresh

    # --- the kill switch -------------------------------------------------------------------

    def kill(self, reason: str, *, cancel_open: bool = False) -> Flow[list[Order]]:
        """Engage the kill switch (everywhere it reaches); cancel open orders if asked."""
        flag("cancel_open", cancel_open)
        switch = self.policy.kill_switch
        yield from self.perform(
            Resource.POLICY, lambda: switch.engage(reason, cancel_open=cancel_open)
        )
        yield from self.note("killswitch.engaged", reason=reason, cancel_open=cancel_open)
        cancelled = yield from self._honour_kill_switch()
        return cancelled

    def _honour_kill_switch(self) -> Flow[list[Order]]:
        """Cancel every open order once per engagement that asked for it."""
        switches = self.policy.kill_switches()
        states: list[KillState] = []
        if self._cancel_due is None:
            states = yield from self.perform(Resource.POLICY, lambda: [s.state() for s in switches])
        with self._kill_lock:  # two threads of one client: the first takes the engagement
            due = self._cancel_due
            if due is None:
                for state in states:
                    if state.engaged and state.cancel_open and state.at != self._cancelled_for:
                        due = state
                        break
            if due is None or due.at == self._cancelled_for:
                self._cancel_due = None
                return []
            self._cancel_due, self._cancelled_for = None, due.at
        if Scope.CANCEL not in self.key.scopes or Scope.READ not in self.key.scopes:
            log.error("kill switch asked to cancel open orders, but this key cannot")
            return []
        cancelled = []
        for order in (yield from self.open_orders()):
            try:
                done = yield from self.cancel_order(order.symbol, order_id=order.order_id)
            except OrderNotFound:
                continue  # filled or cancelled meanwhile
            cancelled.append(done)
        yield from self.note("killswitch.cancelled", orders=len(cancelled), reason=due.reason)
        return cancelled

    def _call(
        self,
        op: Op,
        params: Params,
        *,
        symbol: str | None = None,
        once: bool = False,
        address: str | None = None,
        priority: Priority | None = None,
    ) -> Flow[Any]:
        """A request whose resending is harmless (``once=False``): scope, limit, retry."""
        if self._cancel_due is not None:
            yield from self._honour_kill_switch()
        endpoint = self.venue.endpoints.get(op)
        if endpoint is None:
            raise InvalidRequest(f"{self.venue.name} does not offer {op.value}")
        if endpoint.scope is not None:
            self.key.require(
                endpoint.scope,
                symbol=symbol if op is not Op.OPEN_ORDERS else None,
                address=address,
            )
        payload = yield from self._retrying(
            endpoint, params, symbol=symbol, once=once, priority=priority
        )
        return payload

    def stored(self, order_json: str, key: str) -> Order:
        """An order the journal recorded, as the caller sees it."""
        return Order.model_validate_json(order_json).model_copy(update={"idempotency_key": key})


def _listing(names: Iterable[str]) -> str:
    """``GTC and IOC``, ``FOK, GTC and IOC``: for messages."""
    ordered: list[str] = sorted(names)
    if len(ordered) < 2:
        return "".join(ordered)
    return ", ".join(ordered[:-1]) + " and " + ordered[-1]


def _milliseconds(moment: datetime | int, name: str) -> int:
    """An aware datetime or milliseconds since the epoch, as milliseconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise InvalidRequest(f"{name} must be timezone-aware (e.g. tzinfo=timezone.utc)")
        return int(moment.timestamp() * 1000)
    if type(moment) is not int or not 0 <= moment <= LAST_SECOND * 1000:  # str() of 5,000 digits
        raise InvalidRequest(f"{name} must be an aware datetime or milliseconds since the epoch")
    return moment


def _kill_listener(core: Reads) -> Callable[[KillState], None]:
    """Tell ``core`` (if it still exists) that a local engagement wants open orders gone."""
    ref = weakref.ref(core)

    def listener(state: KillState) -> None:
        alive = ref()
        if alive is not None and state.cancel_open:
            alive._cancel_due = state

    return listener


def _plain_int(value: Any) -> Any:
    """An ``int`` subclass as a plain ``int`` (its own ``__str__`` would write the wire
    parameter); anything else as it is, for the venue's own check to refuse."""
    if isinstance(value, int) and type(value) is not int and not isinstance(value, bool):
        return int.__index__(value)
    return value
