"""The simulator's exchange: accounts, balances, orders and a deterministic market.

Venue-neutral. A dialect (``sim/binance.py``) turns wire requests into calls here and the
results back into the venue's wire format. The market price of each symbol follows a fixed
path indexed by a step counter that advances once per order event, so the same sequence of
requests always gives the same fills.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from .._checks import instance, is_text, whole
from ..errors import InvalidRequest
from .quotes import Bar, MarketData
from .records import FeeSchedule, SimInstrument, SimOrder, SimTrade, SimTransfer, TapeTrade

__all__ = [
    "Account",
    "Bar",
    "FeeSchedule",
    "Market",
    "SimInstrument",
    "SimOrder",
    "SimRejection",
    "SimTrade",
    "TapeTrade",
    "opening_balances",
]

_FEE_PLACES = Decimal("0.00000001")  # commissions are kept to 8 decimals, as both venues show


class SimRejection(Exception):
    """The exchange refuses a request; ``reason`` is a dialect-neutral tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Account:
    name: str
    balances: dict[str, list[Decimal]]  # asset -> [free, locked]

    def free(self, asset: str) -> Decimal:
        return self.balances.setdefault(asset, [Decimal(0), Decimal(0)])[0]

    def move(self, asset: str, free: Decimal = Decimal(0), locked: Decimal = Decimal(0)) -> None:
        row = self.balances.setdefault(asset, [Decimal(0), Decimal(0)])
        row[0] += free
        row[1] += locked


class Market(MarketData):
    """Order book of one simulated exchange, thread-safe behind one lock."""

    def __init__(
        self,
        instruments: list[SimInstrument],
        *,
        now_ms: Callable[[], int] | None = None,
        dedupe: str = "open_only",
        visibility_lag_ms: int = 0,
        deadline: str = "recv_window",
        history_ttl_ms: int | None = None,
    ) -> None:
        if dedupe not in ("open_only", "strong", "none"):
            raise InvalidRequest("dedupe must be open_only, strong or none")
        if deadline not in ("recv_window", "none"):
            raise InvalidRequest("deadline must be recv_window or none")
        if history_ttl_ms is not None:
            whole("history_ttl_ms (or None)", history_ttl_ms, 0)
        whole("visibility_lag_ms", visibility_lag_ms, 0)
        for instrument in instruments:
            instance("each of instruments", instrument, SimInstrument, optional=False)
        #: How the venue treats a repeated client order id: refused while the first order is
        #: open (Binance), refused forever (Bybit, Coinbase), or accepted (no dedupe at all).
        self.dedupe = dedupe
        #: Orders younger than this are invisible to queries (eventual consistency).
        self.visibility_lag_ms = visibility_lag_ms
        #: ``recv_window``: a signed request is refused once older than its window (Binance).
        #: ``none``: requests carry no validity window (OANDA, Alpaca): a request held up
        #: anywhere on the way executes whenever it arrives.
        self.deadline = deadline
        #: Cancelled or expired orders with no fill vanish from queries this long after
        #: they closed (Bybit keeps them 24 h); ``None`` keeps them forever.
        self.history_ttl_ms = history_ttl_ms
        self.instruments = {i.symbol: i for i in instruments}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, SimOrder] = {}
        self._open: dict[int, SimOrder] = {}  # only these can fill or be canceled
        self._by_client_id: dict[tuple[str, str], list[SimOrder]] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self.tape: dict[str, list[TapeTrade]] = {i.symbol: [] for i in instruments}
        #: deposits and withdrawals of every account, oldest first (sim/ledger.py)
        self.transfers: list[SimTransfer] = []
        self._step = 0
        self._pinned: dict[str, Decimal] = {}  # symbol -> a price set by set_price
        self._now_ms: Callable[[], int] = now_ms or (lambda: int(time.time() * 1000))
        #: called under the lock with (what, order, fill) for every order event: ``NEW``,
        #: ``TRADE`` (fill is (price, quantity, trade id)), ``CANCELED``, ``EXPIRED``; and
        #: with ("WITHDRAWAL", None, (asset, amount, account)) for funds leaving an account.
        #: The simulator's WebSockets push user data from here.
        self.listeners: list[Callable[[str, SimOrder | None, tuple[object, ...] | None], None]] = []

    # --- accounts ----------------------------------------------------------------------

    def open_account(self, name: str, balances: dict[str, Decimal]) -> Account:
        with self.lock:
            account = Account(name, {a: [Decimal(v), Decimal(0)] for a, v in balances.items()})
            self.accounts[name] = account
            return account

    # --- prices ------------------------------------------------------------------------

    def price(self, symbol: str) -> Decimal:
        """The market price now: a slow deterministic wave around the start price, or
        where :meth:`set_price` put it."""
        pinned = self._pinned.get(symbol)
        if pinned is not None:
            return pinned
        inst = self.instruments[symbol]
        wave = Decimal(str(round(math.sin(self._step / 9.0) * 0.01, 6)))
        raw = inst.start_price * (1 + wave)
        return (raw / inst.tick_size).quantize(Decimal(1), ROUND_HALF_UP) * inst.tick_size

    def set_price(self, symbol: str, price: Decimal | None) -> None:
        """Move the market in ``symbol`` to ``price`` (``None``: back to its wave), for
        tests and demos: conditional orders whose trigger it reaches fire, and resting
        limit orders it crosses fill."""
        with self.lock:
            if price is None:
                self._pinned.pop(symbol, None)
            else:
                self._pinned[symbol] = price
            self._match()

    def _advance(self) -> None:
        self._step += 1
        self._match()

    def _match(self) -> None:
        for order in list(self._open.values()):
            if order.waiting:
                if not self._reached(order):
                    continue
                order.triggered = True
                self._unlink(order, "EXPIRED")  # one triggered: the other goes
                self._try_fill(order, taker=True)  # it arrives at the book now
            elif order.type == "LIMIT":
                self._try_fill(order, taker=False)  # resting: it made the book

    def _reached(self, order: SimOrder) -> bool:
        assert order.stop_price is not None
        market = self.price(order.symbol)
        return (
            market <= order.stop_price if order.trigger == "below" else market >= order.stop_price
        )

    # --- orders ------------------------------------------------------------------------

    def place(
        self,
        account_name: str,
        *,
        symbol: str,
        side: str,
        type: str,
        quantity: Decimal,
        price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str,
        fees: FeeSchedule | None = None,
        post_only: str | None = None,
        userref: int | None = None,
        validate_only: bool = False,
        stop_price: Decimal | None = None,
        stop_kind: str | None = None,
        quote_quantity: Decimal | None = None,
    ) -> SimOrder:
        """Place an order for ``account_name``.

        ``post_only`` is ``"reject"`` (Binance ``LIMIT_MAKER``: refused if it would take) or
        ``"cancel"`` (Kraken ``oflags=post``: accepted, then cancelled); ``validate_only``
        runs every check and places nothing (the order returned is not kept).
        ``stop_price`` with ``stop_kind`` ``"loss"`` or ``"profit"`` makes it conditional:
        refused when the price is already there (it would trigger at once), else resting
        unseen until the price reaches it.
        ``quote_quantity`` (a MARKET order; ``quantity`` is then ignored) spends (BUY) or
        receives (SELL) that much of the quote asset: the quantity is the amount over the
        price the order fills at, rounded down to the instrument's step, as Binance does.
        """
        trigger = None
        if stop_price is not None:
            against = stop_kind == "loss"
            trigger = "below" if (side == "SELL") == against else "above"
        with self.lock:
            inst = self.instruments.get(symbol)
            if inst is None:
                raise SimRejection("bad_symbol", "Invalid symbol.")
            account = self.accounts[account_name]
            same_id = self._by_client_id.get((account_name, client_order_id), [])
            if (self.dedupe == "strong" and same_id) or (
                self.dedupe == "open_only" and any(o.is_open for o in same_id)
            ):
                raise SimRejection("duplicate", "Duplicate order sent.")
            advanced = False
            if quote_quantity is not None:
                if type != "MARKET":
                    raise SimRejection("filter", "Quote order quantity is for MARKET orders.")
                self._advance()  # the price this order fills at
                advanced = True
                quantity = self._quantity_for(inst, quote_quantity)
            check_price = price if price is not None and type == "LIMIT" else self.price(symbol)
            self._check_filters(inst, quantity, check_price)
            if validate_only:
                reserve_price = price if price is not None else self.price(symbol)
                needed = quantity * reserve_price if side == "BUY" else quantity
                if account.free(inst.quote if side == "BUY" else inst.base) < needed:
                    raise SimRejection(
                        "insufficient", "Account has insufficient balance for requested action."
                    )
                return SimOrder(
                    0,
                    client_order_id,
                    account_name,
                    symbol,
                    side,
                    type,
                    quantity,
                    price,
                    time_in_force,
                    userref=userref,
                    quote_order_qty=quote_quantity,
                )
            if not advanced:
                self._advance()
            if stop_price is not None:
                market = self.price(symbol)
                if (market <= stop_price) if trigger == "below" else (market >= stop_price):
                    raise SimRejection("would_trigger", "Stop price would trigger immediately.")
            if post_only == "reject" and price is not None and self._crosses(side, price, symbol):
                raise SimRejection("would_take", "Order would immediately match and take.")
            now = self._now_ms()
            order = SimOrder(
                order_id=next(self._ids),
                client_order_id=client_order_id,
                account=account_name,
                symbol=symbol,
                side=side,
                type=type,
                quantity=quantity,
                price=price,
                time_in_force=time_in_force,
                created_ms=now,
                updated_ms=now,
                fee_schedule=fees,
                userref=userref,
                stop_price=stop_price,
                trigger=trigger,
                quote_order_qty=quote_quantity,
            )
            reserve_price = price if price is not None else (stop_price or self.price(symbol))
            if side == "BUY":
                asset, amount = inst.quote, quantity * reserve_price
            else:
                asset, amount = inst.base, quantity
            if fees is not None and side == "BUY" and fees.asset in ("quote", "kraken"):
                needed = amount * (1 + fees.taker)  # a buy's fee is paid on top, in quote
            else:
                needed = amount
            if account.free(asset) < needed:
                raise SimRejection(
                    "insufficient", "Account has insufficient balance for requested action."
                )
            account.move(asset, free=-amount, locked=amount)
            self.orders[order.order_id] = order
            self._open[order.order_id] = order
            self._by_client_id.setdefault((account_name, client_order_id), []).append(order)
            self._notify("NEW", order, None)
            if post_only == "cancel" and price is not None and self._crosses(side, price, symbol):
                self._close(order, "CANCELED")
                order.reason = "Post only order"
                return order
            if order.waiting:
                return order  # rests unseen until its trigger
            self._try_fill(order, taker=True)
            if order.is_open and order.time_in_force in ("IOC", "FOK"):
                self._close(order, "EXPIRED")
            return order

    def _quantity_for(self, inst: SimInstrument, quote: Decimal) -> Decimal:
        """The base quantity ``quote`` buys (or must sell) at the price now, rounded down to
        the step: never more quote than asked. Refused when that is below one step."""
        if quote <= 0:
            raise SimRejection("filter", "Filter failure: NOTIONAL")
        steps = (quote / self.price(inst.symbol) / inst.step_size).to_integral_value(ROUND_DOWN)
        if steps < 1:
            raise SimRejection("filter", "Filter failure: LOT_SIZE")
        return steps * inst.step_size

    def _crosses(self, side: str, price: Decimal, symbol: str) -> bool:
        market = self.price(symbol)
        return market <= price if side == "BUY" else market >= price

    def _check_filters(self, inst: SimInstrument, quantity: Decimal, price: Decimal) -> None:
        if (
            quantity % inst.step_size != 0
            or quantity < inst.min_quantity
            or quantity > inst.max_quantity
        ):
            raise SimRejection("filter", "Filter failure: LOT_SIZE")
        if price % inst.tick_size != 0 or price > inst.max_price:
            raise SimRejection("filter", "Filter failure: PRICE_FILTER")
        if quantity * price < inst.min_notional:
            raise SimRejection("filter", "Filter failure: NOTIONAL")

    def _try_fill(self, order: SimOrder, *, taker: bool) -> None:
        market = self.price(order.symbol)
        if order.type == "LIMIT":
            assert order.price is not None
            crosses = market <= order.price if order.side == "BUY" else market >= order.price
            if not crosses:
                return
            fill_price = (
                min(market, order.price) if order.side == "BUY" else max(market, order.price)
            )
        else:
            fill_price = market
        self._execute(order, order.quantity - order.filled, fill_price, taker=taker)

    def trade(self, order_id: int, quantity: Decimal) -> SimOrder:
        """A counterparty takes ``quantity`` (at most what is left) of a resting limit order
        at its price: a partial fill when less than what is left. For tests and demos."""
        with self.lock:
            order = self._open.get(order_id)
            if order is None or order.price is None:
                raise SimRejection("unknown", "Order does not exist.")
            self._execute(
                order, min(quantity, order.quantity - order.filled), order.price, taker=False
            )
            return order

    def trades(self, account_name: str, symbol: str, order_id: int | None) -> list[SimTrade]:
        """The account's executions in ``symbol`` (of one order, if given), oldest first."""
        with self.lock:
            orders = [
                o
                for o in self.orders.values()
                if o.account == account_name
                and o.symbol == symbol
                and order_id in (None, o.order_id)
            ]
            found = [
                SimTrade(o, p, q, t, o.fill_times.get(t, o.updated_ms))
                for o in orders
                for p, q, t in o.fills
            ]
        return sorted(found, key=lambda t: t.trade_id)

    def _execute(
        self, order: SimOrder, quantity: Decimal, fill_price: Decimal, *, taker: bool
    ) -> None:
        inst = self.instruments[order.symbol]
        account = self.accounts[order.account]
        reserved_price = _reserved(order, fill_price)
        if order.side == "BUY":
            account.move(
                inst.quote,
                locked=-quantity * reserved_price,
                free=quantity * (reserved_price - fill_price),
            )
            account.move(inst.base, free=quantity)
        else:
            account.move(inst.base, locked=-quantity)
            account.move(inst.quote, free=quantity * fill_price)
        order.filled += quantity
        order.quote_filled += quantity * fill_price
        trade_id = next(self._trade_ids)
        order.fills.append((fill_price, quantity, trade_id))
        order.fill_times[trade_id] = self._now_ms()
        taker_side = order.side if taker else ("SELL" if order.side == "BUY" else "BUY")
        self.tape[order.symbol].append(
            TapeTrade(trade_id, order.symbol, fill_price, quantity, self._now_ms(), taker_side)
        )
        schedule = order.fee_schedule
        if schedule is not None:
            rate = schedule.taker if taker else schedule.maker
            if schedule.asset == "received":
                in_base = order.side == "BUY"
            elif schedule.asset == "kraken":
                in_base = order.side == "SELL" and account.free(inst.base) >= quantity * rate
            else:
                in_base = schedule.asset == "base"
            asset = inst.base if in_base else inst.quote
            base_amount = quantity if in_base else quantity * fill_price
            fee = (base_amount * rate).quantize(_FEE_PLACES, ROUND_HALF_UP)
            account.move(asset, free=-fee)
            order.fees[trade_id] = (fee, asset, taker)
        order.status = "FILLED" if order.filled >= order.quantity else "PARTIALLY_FILLED"
        order.updated_ms = self._now_ms()
        if order.status == "FILLED":
            self._open.pop(order.order_id, None)
        self._notify("TRADE", order, (fill_price, quantity, trade_id))
        self._unlink(order, "EXPIRED")  # one executed: the other goes

    def link(self, first: SimOrder, second: SimOrder) -> None:
        """Make two open orders one OCO list: when one executes, triggers or is
        cancelled, the other is closed."""
        with self.lock:
            first.linked, second.linked = second.order_id, first.order_id
            first.list_id = second.list_id = next(self._list_ids)

    def _unlink(self, order: SimOrder, status: str) -> None:
        other = self._open.get(order.linked) if order.linked is not None else None
        order.linked = None
        if other is not None:
            other.linked = None
            self._close(other, status)

    def _close(self, order: SimOrder, status: str) -> None:
        inst = self.instruments[order.symbol]
        account = self.accounts[order.account]
        remaining = order.quantity - order.filled
        if order.side == "BUY":
            price = _reserved(order, self.price(order.symbol))
            account.move(inst.quote, free=remaining * price, locked=-remaining * price)
        else:
            account.move(inst.base, free=remaining, locked=-remaining)
        order.status = status
        order.updated_ms = self._now_ms()
        self._open.pop(order.order_id, None)
        self._notify(status, order, None)

    def _notify(self, what: str, order: SimOrder | None, detail: tuple[object, ...] | None) -> None:
        for listener in list(self.listeners):
            listener(what, order, detail)

    def withdraw(self, account_name: str, asset: str, amount: Decimal) -> None:
        """Funds leave the account (a withdrawal, however it was asked for)."""
        with self.lock:
            account = self.accounts[account_name]
            if account.free(asset) < amount:
                raise SimRejection("insufficient", "Insufficient balance for withdrawal.")
            account.move(asset, free=-amount)
            self._notify("WITHDRAWAL", None, (asset, amount, account_name))

    def find(
        self,
        account_name: str,
        symbol: str | None,
        *,
        order_id: int | None,
        client_order_id: str | None,
    ) -> SimOrder:
        """The newest matching order of this account, or ``SimRejection('unknown')``.

        ``symbol=None`` matches any symbol (dialects whose lookups name no pair)."""
        with self.lock:
            self._advance()
            if order_id is not None:
                candidates = [o for o in (self.orders.get(order_id),) if o is not None]
            else:
                candidates = self._by_client_id.get((account_name, client_order_id or ""), [])
            for order in reversed(candidates):  # the newest first
                if (
                    order.account == account_name
                    and symbol in (None, order.symbol)
                    and self._visible(order)
                ):
                    return order
            raise SimRejection("unknown", "Order does not exist.")

    def _visible(self, order: SimOrder) -> bool:
        now = self._now_ms()
        if (
            self.history_ttl_ms is not None
            and order.status in ("CANCELED", "EXPIRED")
            and order.filled == 0
            and now - order.updated_ms > self.history_ttl_ms
        ):
            return False  # out of the venue's history
        return now - order.created_ms >= self.visibility_lag_ms

    def cancel(
        self,
        account_name: str,
        symbol: str | None,
        *,
        order_id: int | None,
        client_order_id: str | None,
    ) -> SimOrder:
        with self.lock:
            try:
                order = self.find(
                    account_name, symbol, order_id=order_id, client_order_id=client_order_id
                )
            except SimRejection:
                raise SimRejection("unknown_cancel", "Unknown order sent.") from None
            if not order.is_open:
                raise SimRejection("unknown_cancel", "Unknown order sent.")
            self._close(order, "CANCELED")
            self._unlink(order, "CANCELED")  # cancelling one leg cancels the list
            return order

    def open_orders(self, account_name: str, symbol: str | None) -> list[SimOrder]:
        with self.lock:
            self._advance()
            return [
                o
                for o in self._open.values()
                if o.account == account_name
                and (symbol is None or o.symbol == symbol)
                and self._visible(o)
            ]

    def orders_with_client_id(self, client_order_id: str) -> list[SimOrder]:
        """Every order ever placed with this client order id (for tests and the demo)."""
        with self.lock:
            return [o for o in self.orders.values() if o.client_order_id == client_order_id]


def _reserved(order: SimOrder, market: Decimal) -> Decimal:
    """The price a buy reserved quote at when placed: its limit, else its stop, else the
    market price (a market order executes at once, at that price)."""
    if order.price is not None:
        return order.price
    return order.stop_price if order.stop_price is not None else market


def opening_balances(balances: object) -> dict[str, Decimal]:
    """``balances`` as Decimals: each asset's amount a Decimal or a whole number (not a
    float, whose binary value is not the amount written), finite and at least 0."""
    if isinstance(balances, dict):
        opening = {}
        for asset, amount in balances.items():
            if not is_text(asset):
                break
            if type(amount) is int:
                amount = Decimal(amount)
            if not (isinstance(amount, Decimal) and amount.is_finite() and amount >= 0):
                break
            opening[asset] = amount
        else:
            return opening
    raise InvalidRequest(
        "balances must map each asset to a Decimal (or a whole number) of at least 0, "
        "such as {'USDT': Decimal('1000')}"
    )
