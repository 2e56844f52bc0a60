"""The simulator's OANDA dialect: forex on its own engine, OANDA v20's wire and checks.

What it checks and answers as OANDA documents it (v20 REST):

* ``Authorization: Bearer <token>`` on every request, for the account in the path (401
  ``INVALID_AUTHORIZATION`` otherwise);
* ``POST /v3/accounts/{id}/orders`` with ``{"order": {...}}``: MARKET (FOK by default)
  and LIMIT orders, signed ``units``; answered 201 with ``orderCreateTransaction`` and,
  if it filled, ``orderFillTransaction``; a FOK market order that cannot fill (too little
  margin here) is answered 201 with ``orderCreateTransaction`` and
  ``orderCancelTransaction`` (its reason): created and cancelled, never filled;
* ``clientExtensions.id`` is refused only while an order holding it is PENDING (400,
  ``orderRejectTransaction`` with ``CLIENT_ORDER_ID_ALREADY_EXISTS``): the engine this
  dialect runs over dedupes open orders only;
* ``GET .../orders/{id|@clientID}`` in any state (PENDING only, with
  ``lookup_pending_only``), ``PUT .../orders/{spec}/cancel``,
  ``GET .../pendingOrders``, ``GET .../summary``, ``GET /v3/accounts/{id}`` (with
  ``hedgingEnabled`` and the open ``positions``), ``GET .../instruments``,
  ``GET .../pricing``, ``GET .../transactions/{id}``, ``GET .../transactions/sinceid``,
  ``GET /v3/instruments/{instrument}/candles``;
* every answer carries ``lastTransactionID``; every state change is a numbered
  transaction of the account, so ``sinceid`` lists them gap-free;
* 120 requests a second per account (429 with Retry-After: 1 otherwise; OANDA documents
  the limit, not the header, so the header is this simulator's choice).

A 5xx fault answers with a JSON ``errorMessage``, as OANDA's API does.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote

from .dialect import Dialect, DialectStats, SimRequest, SimResponse, json_response
from .engine import Market, SimInstrument, SimOrder, SimRejection
from .faults import Fault, Faults
from .oanda_market import OandaError, candles, instrument_body, pricing, stamp, whole

__all__ = ["OANDA_INSTRUMENTS", "OandaDialect", "oanda_market"]

#: Two currency pairs in whole units: EUR_USD (pip 0.0001, 5 decimals), USD_JPY (pip 0.01).
OANDA_INSTRUMENTS = (
    SimInstrument(
        "EUR_USD",
        "EUR",
        "USD",
        Decimal("0.00001"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0"),
        Decimal("1.08500"),
        max_quantity=Decimal("100000000"),
    ),
    SimInstrument(
        "USD_JPY",
        "USD",
        "JPY",
        Decimal("0.001"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0"),
        Decimal("151.250"),
        max_quantity=Decimal("100000000"),
    ),
)
OANDA_BALANCES = {"USD": Decimal("100000"), "EUR": Decimal("100000"), "JPY": Decimal("10000000")}
_RATE_WINDOW_S = 1.0
_TIF = frozenset({"GTC", "GFD", "IOC", "FOK"})
_FIELDS = frozenset(
    {"type", "instrument", "units", "timeInForce", "positionFill", "price", "clientExtensions"}
)


# Account ids, unique in the process as OANDA's are for good: an account's transaction ids
# only grow, and a client may remember a cursor in one across simulators.
_ACCOUNTS = itertools.count(1)


def oanda_market(now_ms: Callable[[], int] | None = None) -> Market:
    """The engine OANDA's dialect runs over: dedupe of pending orders only, no deadline."""
    return Market(list(OANDA_INSTRUMENTS), now_ms=now_ms, dedupe="open_only", deadline="none")


@dataclass(slots=True)
class _Stats(DialectStats):
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every order body received


@dataclass(slots=True)
class _Book:
    """One account's transactions, numbered from 1 with no gaps."""

    account: str = ""
    transactions: list[dict[str, Any]] = field(default_factory=list)
    created: dict[int, int] = field(default_factory=dict)  # order number -> create txn id
    filled: dict[int, int] = field(default_factory=dict)  # order number -> fill txn id
    cancelled: dict[int, int] = field(default_factory=dict)  # order number -> cancel txn id
    stillborn: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id -> order

    @property
    def last(self) -> str:
        return str(len(self.transactions))


class OandaDialect(Dialect[_Stats]):
    """Answers OANDA v20 REST requests from a :class:`Market` of its own."""

    def __init__(
        self,
        market: Market,
        *,
        faults: Faults | None = None,
        clock_offset_ms: int = 0,
        clock: Callable[[], float] = time.time,
        requests_per_second: int | None = 120,
    ) -> None:
        super().__init__(
            market, _Stats(), faults=faults, clock_offset_ms=clock_offset_ms, clock=clock
        )
        self.tokens: dict[bytes, str] = {}  # bearer token -> account id
        self.requests_per_second = requests_per_second
        self.hedging_enabled = False  # a US account: FIFO, no hedging
        self.hedging: dict[str, bool] = {}  # per account, where it differs from the above
        #: ``True``: ``GET .../orders/@{clientID}`` answers for PENDING orders only (the
        #: reading of the research note, not confirmed): a filled or cancelled order is
        #: then found in the account's transactions only.
        self.lookup_pending_only = False
        self.transactions_page = 1000  # sinceid answers at most this many
        self._books: dict[str, _Book] = {}
        self._calls: dict[str, deque[float]] = {}
        self._book_lock = threading.RLock()
        #: called with (account, transaction) as each is recorded (the transaction stream)
        self.transaction_listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def new_account_id(self) -> str:
        """A practice account id in OANDA's shape: ``101-004-<user>-<sub>``."""
        return f"101-004-{1435156 + next(_ACCOUNTS)}-001"

    def add_secret(self, key_id: str, secret: bytes) -> None:
        self.tokens[secret] = self.keys[key_id].account

    def book(self, account: str) -> _Book:
        with self._book_lock:
            book = self._books.get(account)
            if book is None:
                book = self._books[account] = _Book(account)
            return book

    # --- the shared handler's hooks -----------------------------------------------------

    def _unknown_order(self, request: SimRequest) -> OandaError:
        account = self.tokens.get(_token(request))
        last = self.book(account).last if account is not None else None
        extra = {} if last is None else {"lastTransactionID": last}
        return OandaError(404, "ORDER_DOESNT_EXIST", "The Order specified does not exist", **extra)

    def _fault_answer(self, fault: Fault) -> SimResponse | None:
        if fault.kind in ("status", "status_after"):
            body = {"errorMessage": "Service unavailable, please try again later"}
            return json_response(fault.status, body)
        if fault.kind == "rate_limit":  # refused at the gate: never processed
            retry = {"retry-after": str(max(1, round(fault.seconds)))}
            body = {"errorMessage": "Rate limit violation of newly established connections"}
            return json_response(429, body, retry)
        return None

    def _gate(self, request: SimRequest) -> SimResponse | None:
        limit = self.requests_per_second
        account = self.tokens.get(_token(request))
        if limit is None or account is None:
            return None
        now = self._clock()
        with self._book_lock:
            calls = self._calls.setdefault(account, deque())
            while calls and calls[0] <= now - _RATE_WINDOW_S:
                calls.popleft()
            if len(calls) >= limit:
                body = {"errorMessage": "Requests per second exceeded"}
                return json_response(429, body, {"retry-after": "1"})
            calls.append(now)
        return None

    def _process(self, request: SimRequest, delay: float) -> tuple[int, Any]:
        if delay:
            time.sleep(delay)
        account = self.tokens.get(_token(request))
        if account is None:
            raise OandaError(
                401, "INVALID_AUTHORIZATION", "Insufficient authorization to perform request."
            )
        path = request.path
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        if path.startswith("/v3/instruments/") and path.endswith("/candles"):
            return 200, candles(self.market, self.now_ms(), path.split("/")[3], query)
        prefix = f"/v3/accounts/{account}"
        if path != prefix and not path.startswith(prefix + "/"):
            raise OandaError(
                403, "INVALID_AUTHORIZATION", "The token is not authorized for this account"
            )
        rest = path.removeprefix(prefix)
        with self._book_lock:
            return self._account_call(account, request.method, rest, query, request.body)

    def _account_call(
        self, account: str, method: str, rest: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        book = self.book(account)
        if method == "GET" and rest == "/pricing":
            return 200, pricing(self.market, self.now_ms(), query, book.last)
        if method == "GET" and rest == "/instruments":
            return 200, {
                "instruments": [instrument_body(i) for i in self.market.instruments.values()],
                "lastTransactionID": book.last,
            }
        if method == "GET" and rest == "/summary":
            return 200, self._summary(account, book)
        if method == "GET" and rest == "":
            return 200, self._details(account, book)
        if method == "POST" and rest == "/orders":
            return 201, self._place(account, book, body)
        if method == "GET" and rest == "/pendingOrders":
            listed = self.market.open_orders(account, None)
            return 200, {
                "orders": [self._order(o, book) for o in listed],
                "lastTransactionID": book.last,
            }
        if method == "GET" and rest == "/transactions/sinceid":
            since = whole(query.get("id", ""), "id")
            page = book.transactions[since : since + self.transactions_page]
            return 200, {"transactions": page, "lastTransactionID": book.last}
        if method == "GET" and rest.startswith("/transactions/"):
            number = whole(rest.removeprefix("/transactions/"), "transactionID")
            if not 1 <= number <= len(book.transactions):
                raise OandaError(
                    404,
                    "NO_SUCH_TRANSACTION",
                    "The transaction does not exist",
                    lastTransactionID=book.last,
                )
            return 200, {
                "transaction": book.transactions[number - 1],
                "lastTransactionID": book.last,
            }
        if rest.startswith("/orders/"):
            spec, _, action = rest.removeprefix("/orders/").partition("/")
            if method == "GET" and not action:
                return 200, {
                    "order": self._lookup(account, book, unquote(spec)),
                    "lastTransactionID": book.last,
                }
            if method == "PUT" and action == "cancel":
                return 200, self._cancel(account, book, unquote(spec))
        raise OandaError(
            404, "NOT_FOUND", "The requested endpoint does not exist", lastTransactionID=book.last
        )

    # --- the venue's behaviour ----------------------------------------------------------

    def _record(self, book: _Book, kind: str, **fields: Any) -> dict[str, Any]:
        number = len(book.transactions) + 1
        moment = datetime.fromtimestamp(self.now_ms() / 1000, tz=timezone.utc)
        transaction = {"id": str(number), "time": stamp(moment), "type": kind, **fields}
        book.transactions.append(transaction)
        for listener in list(self.transaction_listeners):
            listener(book.account, transaction)
        return transaction

    def _place(self, account: str, book: _Book, body: bytes) -> dict[str, Any]:
        try:
            wrapper = json.loads(body)
        except ValueError:
            raise OandaError(
                400, "INVALID_REQUEST", "Invalid JSON", lastTransactionID=book.last
            ) from None
        order = wrapper.get("order") if isinstance(wrapper, dict) else None
        if not isinstance(order, dict) or set(wrapper) != {"order"}:
            raise OandaError(
                400,
                "INVALID_REQUEST",
                "The order specification is missing",
                lastTransactionID=book.last,
            )
        with self._lock:
            self.stats.bodies.append(order)
        unknown = set(order) - _FIELDS
        kind, instrument = order.get("type"), order.get("instrument")
        tif = order.get("timeInForce", "FOK" if kind == "MARKET" else "GTC")
        extensions = order.get("clientExtensions") or {}
        cid = extensions.get("id") if isinstance(extensions, dict) else None
        inst = self.market.instruments.get(str(instrument))
        units = _units(order.get("units"))
        price = _price(order.get("price")) if kind == "LIMIT" else None
        reason = None
        if unknown or kind not in ("MARKET", "LIMIT") or tif not in _TIF:
            reason = "INVALID_REQUEST"
        elif inst is None:
            reason = "INSTRUMENT_NOT_TRADEABLE"
        elif units is None:
            reason = "UNITS_INVALID"
        elif kind == "LIMIT" and price is None:
            reason = "PRICE_INVALID"
        elif kind == "MARKET" and tif not in ("FOK", "IOC"):
            reason = "TIME_IN_FORCE_INVALID"
        elif cid is not None and (not isinstance(cid, str) or not 1 <= len(cid) <= 128):
            reason = "CLIENT_ORDER_ID_INVALID"
        if reason is not None:
            named = {"clientExtensions": {"id": cid}} if isinstance(cid, str) else {}
            reject = self._record(book, kind=f"{kind}_ORDER_REJECT", rejectReason=reason, **named)
            raise OandaError(
                400,
                reason,
                f"The order was rejected: {reason}",
                orderRejectTransaction=reject,
                lastTransactionID=book.last,
            )
        assert inst is not None
        assert units is not None
        kind = str(kind)
        side = "BUY" if units > 0 else "SELL"
        create_fields = {
            "instrument": inst.symbol,
            "units": format(units, "f"),
            "timeInForce": tif,
            "positionFill": order.get("positionFill", "DEFAULT"),
            "reason": "CLIENT_ORDER",
        }
        if price is not None:
            create_fields["price"] = format(price, "f")
        if cid is not None:
            create_fields["clientExtensions"] = {"id": cid}
        try:
            placed = self.market.place(
                account,
                symbol=inst.symbol,
                side=side,
                type=kind,
                quantity=abs(units),
                price=price,
                time_in_force={"GFD": "GTC"}.get(tif, tif) if kind == "LIMIT" else "FOK",
                client_order_id=cid if cid is not None else f"~auto-{len(book.transactions)}",
            )
        except SimRejection as exc:
            if exc.reason == "duplicate":
                reject = self._record(
                    book,
                    f"{kind}_ORDER_REJECT",
                    rejectReason="CLIENT_ORDER_ID_ALREADY_EXISTS",
                    **create_fields,
                )
                raise OandaError(
                    400,
                    "CLIENT_ORDER_ID_ALREADY_EXISTS",
                    "The client order ID specified is already in use",
                    orderRejectTransaction=reject,
                    lastTransactionID=book.last,
                ) from None
            if exc.reason == "insufficient" and kind == "MARKET":
                # Created, then cancelled at once: 201, and nothing filled.
                created = self._record(book, f"{kind}_ORDER", **create_fields)
                cancel = self._record(
                    book,
                    "ORDER_CANCEL",
                    orderID=created["id"],
                    reason="INSUFFICIENT_MARGIN",
                    **({"clientOrderID": cid} if cid else {}),
                )
                if cid is not None:
                    book.stillborn[cid] = {
                        **created,
                        "type": kind,
                        "state": "CANCELLED",
                        "createTime": created["time"],
                        "cancellingTransactionID": cancel["id"],
                    }
                return {
                    "orderCreateTransaction": created,
                    "orderCancelTransaction": cancel,
                    "relatedTransactionIDs": [created["id"], cancel["id"]],
                    "lastTransactionID": book.last,
                }
            code = "INSUFFICIENT_MARGIN" if exc.reason == "insufficient" else "UNITS_INVALID"
            reject = self._record(book, f"{kind}_ORDER_REJECT", rejectReason=code, **create_fields)
            raise OandaError(
                400,
                code,
                exc.detail or code,
                orderRejectTransaction=reject,
                lastTransactionID=book.last,
            ) from None
        created = self._record(book, f"{kind}_ORDER", **create_fields)
        book.created[placed.order_id] = int(created["id"])
        answer: dict[str, Any] = {"orderCreateTransaction": created}
        fill = self._fill_of(placed, book)
        if fill is not None:
            answer["orderFillTransaction"] = fill
        if placed.status == "EXPIRED":
            cancel = self._cancel_record(placed, book, "TIME_IN_FORCE_EXPIRED")
            answer["orderCancelTransaction"] = cancel
        ids = [t["id"] for t in answer.values()]
        return {**answer, "relatedTransactionIDs": ids, "lastTransactionID": book.last}

    def _fill_of(self, order: SimOrder, book: _Book) -> dict[str, Any] | None:
        """The order's ORDER_FILL transaction, recorded the first time it is seen filled."""
        number = book.filled.get(order.order_id)
        if number is not None:
            return book.transactions[number - 1]
        if order.status != "FILLED":
            return None
        units = order.filled if order.side == "BUY" else -order.filled
        average = order.quote_filled / order.filled
        fill = self._record(
            book,
            "ORDER_FILL",
            orderID=str(self._public_id(order, book)),
            clientOrderID=order.client_order_id,
            instrument=order.symbol,
            units=format(units, "f"),
            price=format(average.quantize(self.market.instruments[order.symbol].tick_size), "f"),
            reason=f"{order.type}_ORDER",
        )
        book.filled[order.order_id] = int(fill["id"])
        return fill

    def _cancel_record(self, order: SimOrder, book: _Book, reason: str) -> dict[str, Any]:
        number = book.cancelled.get(order.order_id)
        if number is not None:
            return book.transactions[number - 1]
        cancel = self._record(
            book,
            "ORDER_CANCEL",
            orderID=str(self._public_id(order, book)),
            clientOrderID=order.client_order_id,
            reason=reason,
        )
        book.cancelled[order.order_id] = int(cancel["id"])
        return cancel

    def _public_id(self, order: SimOrder, book: _Book) -> int:
        """OANDA's order id is the id of the transaction that created it."""
        return book.created.get(order.order_id, order.order_id)

    def _engine_order(self, account: str, book: _Book, spec: str) -> SimOrder | None:
        if spec.startswith("@"):
            try:
                return self.market.find(account, None, order_id=None, client_order_id=spec[1:])
            except SimRejection:
                return None
        if not spec.isdigit():
            return None
        for number, created in book.created.items():
            if created == int(spec):
                try:
                    return self.market.find(account, None, order_id=number, client_order_id=None)
                except SimRejection:
                    return None
        return None

    def _lookup(self, account: str, book: _Book, spec: str) -> dict[str, Any]:
        order = self._engine_order(account, book, spec)
        by_client = spec.startswith("@")
        if order is not None and not (by_client and self.lookup_pending_only and not order.is_open):
            return self._order(order, book)
        stillborn = None
        if not (by_client and self.lookup_pending_only):  # found by client id, or by id
            for client_id, entry in book.stillborn.items():
                if spec in (f"@{client_id}", entry["id"]):
                    stillborn = entry
        if stillborn is not None:
            return stillborn
        raise OandaError(
            404,
            "ORDER_DOESNT_EXIST",
            "The Order specified does not exist",
            lastTransactionID=book.last,
        )

    def _cancel(self, account: str, book: _Book, spec: str) -> dict[str, Any]:
        order = self._engine_order(account, book, spec)
        if order is None or not order.is_open:
            raise OandaError(
                404,
                "ORDER_DOESNT_EXIST",
                "The Order specified does not exist",
                lastTransactionID=book.last,
            )
        self.market.cancel(account, None, order_id=order.order_id, client_order_id=None)
        cancel = self._cancel_record(order, book, "CLIENT_REQUEST")
        return {
            "orderCancelTransaction": cancel,
            "relatedTransactionIDs": [cancel["id"]],
            "lastTransactionID": book.last,
        }

    def _order(self, order: SimOrder, book: _Book) -> dict[str, Any]:
        fill = self._fill_of(order, book)
        if order.status in ("CANCELED", "EXPIRED"):
            self._cancel_record(
                order,
                book,
                "CLIENT_REQUEST" if order.status == "CANCELED" else "TIME_IN_FORCE_EXPIRED",
            )
        created_id = book.created.get(order.order_id)
        create = book.transactions[created_id - 1] if created_id else {}
        state = {"FILLED": "FILLED", "CANCELED": "CANCELLED", "EXPIRED": "CANCELLED"}.get(
            order.status, "PENDING"
        )
        entry: dict[str, Any] = {
            "id": str(self._public_id(order, book)),
            "createTime": create.get("time")
            or stamp(datetime.fromtimestamp(order.created_ms / 1000, tz=timezone.utc)),
            "type": order.type,
            "instrument": order.symbol,
            "units": create.get("units")
            or format(order.quantity if order.side == "BUY" else -order.quantity, "f"),
            "timeInForce": create.get("timeInForce", "GTC"),
            "positionFill": "DEFAULT",
            "state": state,
        }
        if order.price is not None:
            entry["price"] = format(order.price, "f")
        if not order.client_order_id.startswith("~auto-"):
            entry["clientExtensions"] = {"id": order.client_order_id}
        if fill is not None:
            entry["fillingTransactionID"] = fill["id"]
        return entry

    def _details(self, account: str, book: _Book) -> dict[str, Any]:
        """``GET /v3/accounts/{id}``: the summary's fields and the open positions."""
        summary = self._summary(account, book)
        summary["account"]["positions"] = _positions(self.market, account)
        return summary

    def _summary(self, account: str, book: _Book) -> dict[str, Any]:
        free, locked = self.market.accounts[account].balances.get("USD", [Decimal(0), Decimal(0)])
        return {
            "account": {
                "id": account,
                "currency": "USD",
                "balance": format(free + locked, "f"),
                "marginAvailable": format(free, "f"),
                "hedgingEnabled": self.hedging.get(account, self.hedging_enabled),
                "pendingOrderCount": len(self.market.open_orders(account, None)),
                "lastTransactionID": book.last,
            },
            "lastTransactionID": book.last,
        }


def _positions(market: Market, account: str) -> list[dict[str, Any]]:
    """The account's open positions: the filled units of its orders, netted per
    instrument (long units positive, short units negative, as OANDA writes them)."""
    net: dict[str, Decimal] = {}
    for order in list(market.orders.values()):
        if order.account == account and order.filled:
            signed = order.filled if order.side == "BUY" else -order.filled
            net[order.symbol] = net.get(order.symbol, Decimal(0)) + signed
    return [
        {
            "instrument": symbol,
            "long": {"units": format(max(units, Decimal(0)), "f")},
            "short": {"units": format(min(units, Decimal(0)), "f")},
        }
        for symbol, units in sorted(net.items())
        if units
    ]


def _token(request: SimRequest) -> bytes:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.encode() if scheme == "Bearer" and token else b""


def _units(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        units = Decimal(value)
    except InvalidOperation:
        return None
    if not units.is_finite() or units == 0 or units.adjusted() > 12:
        return None
    if units != units.to_integral_value():
        return None
    return units


def _price(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        price = Decimal(value)
    except InvalidOperation:
        return None
    return price if price.is_finite() and price > 0 and price.adjusted() <= 12 else None
