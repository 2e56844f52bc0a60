"""The simulator's Alpaca dialect: US stocks on their own engine, Alpaca's wire and checks.

What it checks and answers as Alpaca documents it (Trading API v2):

* the ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` headers on every request, or an
  OAuth access token (``Authorization: Bearer``) that ``authorization`` (an
  :class:`~securetrade.sim.oauth.OAuthServerSim`) issued, for the account it was issued
  for; 401, code 40110000, otherwise (unknown, expired or revoked tokens alike);
* ``POST /v2/orders`` with a JSON body of string numbers; unknown fields, bad numbers and
  combinations Alpaca refuses are 422 (code 42210000); a reused ``client_order_id`` is 422
  with code 40010001, also after the first order closed (strong dedupe, which the engine
  this dialect runs over is set to); too little cash is 403 (40310000);
* ``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``, ``GET /v2/orders``
  (``status=open``), ``DELETE /v2/orders/{id}`` (204 No Content; 422 when the order is
  no longer cancellable), ``GET /v2/account``, ``GET /v2/assets``, ``GET /v2/clock``;
* 200 requests a minute per account (429, code 42910000), with the ``X-RateLimit-*``
  headers on every answer.

Stop and stop-limit orders wait in the dialect until their stop price trades (checked on
every request), then go to the engine as a market or limit order under the same client id.

The market clock is the simulator's: ``market_open`` says whether the regular session is
open now; ``next_open``/``next_close`` are derived from it. Orders are not refused for the
hours (Alpaca queues a DAY order placed while closed): the client's policy refuses them.
A 5xx fault answers as Alpaca's edge does, with an HTML page.
"""

from __future__ import annotations

import hmac
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .dialect import Dialect, DialectStats, Refusal, SimRequest, SimResponse, json_response
from .engine import Market, SimInstrument, SimOrder, SimRejection
from .faults import Fault, Faults

if TYPE_CHECKING:
    from .oauth import OAuthServerSim

__all__ = ["ALPACA_INSTRUMENTS", "AlpacaDialect", "alpaca_market"]

#: Two fractionable stocks, priced in cents; fractional orders need at least $1 of notional.
ALPACA_INSTRUMENTS = (
    SimInstrument(
        "AAPL",
        "AAPL",
        "USD",
        Decimal("0.01"),
        Decimal("0.000000001"),
        Decimal("0.000000001"),
        Decimal("1"),
        Decimal("190.00"),
    ),
    SimInstrument(
        "SPY",
        "SPY",
        "USD",
        Decimal("0.01"),
        Decimal("0.000000001"),
        Decimal("0.000000001"),
        Decimal("1"),
        Decimal("520.00"),
    ),
)
ALPACA_BALANCES = {"USD": Decimal("100000"), "AAPL": Decimal("100"), "SPY": Decimal("50")}

_FIELDS = frozenset(
    {
        "symbol",
        "qty",
        "notional",
        "side",
        "type",
        "time_in_force",
        "limit_price",
        "stop_price",
        "extended_hours",
        "client_order_id",
        "order_class",
    }
)
_KINDS = frozenset({"market", "limit", "stop", "stop_limit"})
_TIF = {"day": "GTC", "gtc": "GTC", "opg": "GTC", "cls": "GTC", "ioc": "IOC", "fok": "FOK"}
_STATUS = {
    "NEW": "new",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
}
_NINE = Decimal("0.000000001")
_RATE_WINDOW_S = 60.0


def alpaca_market(now_ms: Callable[[], int] | None = None) -> Market:
    """The engine Alpaca's dialect runs over: strong dedupe, no request deadline."""
    return Market(list(ALPACA_INSTRUMENTS), now_ms=now_ms, dedupe="strong", deadline="none")


@dataclass(slots=True)
class _Stats(DialectStats):
    # Every order body received, in order: what clients actually sent.
    bodies: list[dict[str, Any]] = field(default_factory=list)


class _Error(Refusal):
    """Alpaca's error body: ``{"code": 8 digits, "message": text}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(status, {"code": code, "message": message}, code)


class AlpacaDialect(Dialect[_Stats]):
    """Answers Alpaca Trading API v2 requests from a :class:`Market` of its own."""

    def __init__(
        self,
        market: Market,
        *,
        faults: Faults | None = None,
        clock_offset_ms: int = 0,
        clock: Callable[[], float] = time.time,
        requests_per_minute: int | None = 200,
    ) -> None:
        super().__init__(
            market, _Stats(), faults=faults, clock_offset_ms=clock_offset_ms, clock=clock
        )
        self.secrets: dict[str, bytes] = {}  # key id -> secret
        self.authorization: OAuthServerSim | None = None  # whose bearer tokens count
        self.requests_per_minute = requests_per_minute
        self.market_open = True  # the regular session, as /v2/clock reports it
        self._calls: dict[str, deque[float]] = {}
        self._auto = itertools.count(1)
        self._ids: dict[str, int] = {}  # Alpaca order id (a UUID) -> engine order number
        self._wire: dict[int, _Wire] = {}  # engine order number -> what was asked on the wire
        self._stops: dict[str, _Stop] = {}  # stop orders by Alpaca id, triggered or not
        self._stop_cids: dict[tuple[str, str], str] = {}  # (account, client id) -> Alpaca id
        self._stop_lock = threading.RLock()
        self._rate_lock = threading.Lock()

    def add_secret(self, key_id: str, secret: bytes) -> None:
        self.secrets[key_id] = secret

    # --- the shared handler's hooks -----------------------------------------------------

    def _unknown_order(self, request: SimRequest) -> _Error:
        return _Error(404, 40410000, "order not found")

    def _fault_answer(self, fault: Fault) -> SimResponse | None:
        if fault.kind in ("status", "status_after"):
            page = f"<html><body><h1>{fault.status} Gateway</h1></body></html>".encode()
            return SimResponse(fault.status, {"content-type": "text/html"}, page)
        if fault.kind == "rate_limit":  # refused at the gate: never processed
            body = {"code": 42910000, "message": "rate limit exceeded"}
            return json_response(429, body, {"retry-after": str(max(1, round(fault.seconds)))})
        return None

    def _gate(self, request: SimRequest) -> SimResponse | None:
        """200 requests a minute per account, counted as they arrive."""
        limit = self.requests_per_minute
        account = self._caller(request)
        if limit is None or account is None:
            return None
        now = self._clock()
        with self._rate_lock:
            calls = self._calls.setdefault(account, deque())
            while calls and calls[0] <= now - _RATE_WINDOW_S:
                calls.popleft()
            if len(calls) >= limit:
                retry = max(1, int(calls[0] + _RATE_WINDOW_S - now + 0.999))
                body = {"code": 42910000, "message": "rate limit exceeded"}
                return json_response(429, body, {"retry-after": str(retry)})
            calls.append(now)
        return None

    def _usage(self, request: SimRequest) -> dict[str, str]:
        account = self._caller(request)
        if account is None or self.requests_per_minute is None:
            return {}
        with self._rate_lock:
            used = len(self._calls.get(account, ()))
        reset = int(self._clock()) + int(_RATE_WINDOW_S)
        return {
            "x-ratelimit-limit": str(self.requests_per_minute),
            "x-ratelimit-remaining": str(max(0, self.requests_per_minute - used)),
            "x-ratelimit-reset": str(reset),
        }

    def _process(self, request: SimRequest, delay: float) -> tuple[int, Any]:
        if delay:
            time.sleep(delay)
        account = self._authenticate(request)
        self._trigger()
        method, path = request.method, request.path
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        if method == "GET" and path == "/v2/clock":
            return 200, self._clock_body()
        if method == "GET" and path == "/v2/assets":
            return 200, [_asset(i) for i in self.market.instruments.values()]
        if method == "GET" and path == "/v2/account":
            return 200, self._account(account)
        if method == "GET" and path == "/v2/account/activities/FILL":
            return 200, self._fill_activities(account, query)
        if method == "POST" and path == "/v2/orders":
            return 200, self._place(account, request.body)
        if method == "GET" and path == "/v2/orders":
            symbols = set(filter(None, query.get("symbols", "").split(",")))
            if query.get("status", "open") != "open":
                raise _Error(422, 42210000, "this simulator lists open orders only")
            listed = [self._order(o) for o in self.market.open_orders(account, None)]
            with self._stop_lock:
                waiting = [_stop_body(t) for t in self._stops.values() if t.waits(account)]
            return 200, [o for o in listed + waiting if not symbols or o["symbol"] in symbols]
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            cid = query.get("client_order_id", "")
            with self._stop_lock:
                stop = self._stops.get(self._stop_cids.get((account, cid), ""))
            if stop is not None and stop.engine is None:
                return 200, _stop_body(stop)
            return 200, self._order(self._find(account, client_order_id=cid))
        if path.startswith("/v2/orders/") and method in ("GET", "DELETE"):
            alpaca_id = path.removeprefix("/v2/orders/")
            with self._stop_lock:
                stop = self._stops.get(alpaca_id)
                if stop is not None and stop.account == account and stop.engine is None:
                    if method == "GET":
                        return 200, _stop_body(stop)
                    if stop.status != "new":
                        raise _Error(422, 42210000, "order is not cancelable")
                    stop.status = "canceled"
                    return 204, None
            number = self._ids.get(alpaca_id)
            if number is None:
                raise _Error(404, 40410000, "order not found")
            if method == "GET":
                return 200, self._order(self._find(account, order_id=number))
            try:
                self.market.cancel(account, None, order_id=number, client_order_id=None)
            except SimRejection:
                raise _Error(422, 42210000, "order is not cancelable") from None
            return 204, None
        raise _Error(404, 40410000, "endpoint not found")

    # --- the venue's checks -------------------------------------------------------------

    def _caller(self, request: SimRequest) -> str | None:
        """The account a request claims to be for (its key id, or its bearer token)."""
        bearer = _bearer(request)
        if bearer is not None:
            server = self.authorization
            return None if server is None else server.account_of(bearer)
        key = self.keys.get(request.headers.get("apca-api-key-id", ""))
        return None if key is None else key.account

    def _authenticate(self, request: SimRequest) -> str:
        bearer = _bearer(request)
        if bearer is not None:  # an OAuth app acting for the account that approved it
            server = self.authorization
            account = None if server is None else server.account_of(bearer)
            if account is None or account not in self.market.accounts:
                raise _Error(401, 40110000, "request is not authorized")
            return account
        key_id = request.headers.get("apca-api-key-id", "")
        secret = request.headers.get("apca-api-secret-key", "").encode()
        expected = self.secrets.get(key_id)
        key = self.keys.get(key_id)
        if expected is None or key is None or not hmac.compare_digest(secret, expected):
            raise _Error(401, 40110000, "request is not authorized")
        return key.account

    def _clock_body(self) -> dict[str, Any]:
        now = datetime.fromtimestamp(self.now_ms() / 1000, tz=timezone.utc)
        if self.market_open:
            next_close, next_open = now + timedelta(hours=3), now + timedelta(hours=20)
        else:
            next_open, next_close = now + timedelta(hours=10), now + timedelta(hours=16, minutes=30)
        return {
            "timestamp": _stamp(now),
            "is_open": self.market_open,
            "next_open": _stamp(next_open),
            "next_close": _stamp(next_close),
        }

    def _account(self, account: str) -> dict[str, Any]:
        held = self.market.accounts[account].balances.get("USD", [Decimal(0), Decimal(0)])
        free, locked = held
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, account)),
            "account_number": account,
            "status": "ACTIVE",
            "currency": "USD",
            "cash": format(free + locked, "f"),
            "non_marginable_buying_power": format(free, "f"),
            "buying_power": format(free, "f"),
        }

    def _fill_activities(self, account: str, query: dict[str, str]) -> list[dict[str, Any]]:
        """Account activities of type FILL: every execution with the order's cumulative
        quantity after it; ``after``/``until`` (exclusive), ``direction`` (``desc`` unless
        ``asc``), ``page_size`` (at most 100) and ``page_token`` (start after that id)."""
        try:
            after = _moment(query.get("after"), 0)
            until = _moment(query.get("until"), 2**62)
            size = min(100, int(query.get("page_size") or 100))
        except ValueError:
            raise _Error(422, 42210000, "invalid after, until or page_size") from None
        trades = sorted(
            (t for s in self.market.instruments for t in self.market.trades(account, s, None)),
            key=lambda t: t.trade_id,
        )
        rows: list[dict[str, Any]] = []
        cumulative: dict[int, Decimal] = {}
        for trade in trades:
            order = trade.order
            done = cumulative[order.order_id] = cumulative.get(order.order_id, 0) + trade.quantity
            if not after < trade.at_ms < until:
                continue
            moment = datetime.fromtimestamp(trade.at_ms / 1000, tz=timezone.utc)
            rows.append({
                "id": f"{moment:%Y%m%d%H%M%S}{trade.at_ms % 1000:03d}::"
                      f"{uuid.uuid5(uuid.NAMESPACE_OID, str(trade.trade_id))}",
                "activity_type": "FILL",
                "transaction_time": _stamp(moment),
                "type": "fill" if done >= order.quantity else "partial_fill",
                "price": format(trade.price, "f"),
                "qty": format(trade.quantity, "f"),
                "side": order.side.lower(),
                "symbol": order.symbol,
                "leaves_qty": format(order.quantity - done, "f"),
                "order_id": self._order(order)["id"],
                "cum_qty": format(done, "f"),
                "order_status": "filled" if done >= order.quantity else "partially_filled",
            })  # fmt: skip
        if query.get("direction", "desc") != "asc":
            rows.reverse()
        token = query.get("page_token")
        if token is not None:
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        return rows[:size]

    def _place(self, account: str, body: bytes) -> dict[str, Any]:
        try:
            fields = json.loads(body)
        except ValueError:
            raise _Error(400, 40010000, "request body format is invalid") from None
        if not isinstance(fields, dict):
            raise _Error(400, 40010000, "request body format is invalid")
        with self._lock:
            self.stats.bodies.append(fields)
        unknown = set(fields) - _FIELDS
        if unknown:
            raise _Error(422, 42210000, f"unknown field {sorted(unknown)[0]}")
        symbol = fields.get("symbol")
        inst = self.market.instruments.get(str(symbol))
        if inst is None:
            raise _Error(422, 42210000, f"asset {symbol} not found")
        side, kind = fields.get("side"), fields.get("type")
        tif = fields.get("time_in_force")
        if side not in ("buy", "sell") or kind not in _KINDS or tif not in _TIF:
            raise _Error(422, 42210000, "invalid side, type or time_in_force")
        price = _number(fields.get("limit_price"), "limit_price")
        if (kind in ("limit", "stop_limit")) != (price is not None):
            raise _Error(422, 42210000, "limit_price is required for limit orders only")
        stop_price = _number(fields.get("stop_price"), "stop_price")
        if (kind in ("stop", "stop_limit")) != (stop_price is not None):
            raise _Error(422, 42210000, "stop_price is required for stop orders only")
        quantity = _number(fields.get("qty"), "qty")
        notional = _number(fields.get("notional"), "notional")
        if (quantity is None) == (notional is None):
            raise _Error(422, 42210000, "qty or notional is required, not both")
        if notional is not None:
            if kind != "market" or tif != "day":
                raise _Error(422, 42210000, "notional orders must be DAY market orders")
            exponent = notional.normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent < -2:
                raise _Error(422, 42210000, "notional must be limited to 2 decimal places")
            quantity = Decimal(0)  # the engine works it out at the price it fills at
        elif quantity is None:
            raise _Error(422, 42210000, "qty or notional is required")
        elif quantity != quantity.to_integral_value() and tif != "day":
            raise _Error(422, 42210000, "fractional orders must be DAY orders")
        extended = fields.get("extended_hours", False)
        if not isinstance(extended, bool) or (extended and (kind != "limit" or tif != "day")):
            raise _Error(422, 42210000, "extended hours order must be DAY limit orders")
        cid = fields.get("client_order_id")
        if cid is None:
            cid = f"~auto-{next(self._auto)}"
        elif not isinstance(cid, str) or not 1 <= len(cid) <= 128:
            raise _Error(422, 42210000, "client_order_id must be at most 128 characters")
        with self._stop_lock:
            if (account, cid) in self._stop_cids:  # strong dedupe covers stop orders too
                raise _Error(422, 40010001, "client_order_id must be unique")
            if stop_price is not None:
                if any(o.account == account for o in self.market.orders_with_client_id(cid)):
                    raise _Error(422, 40010001, "client_order_id must be unique")
                stop = _Stop(
                    str(uuid.uuid4()),
                    account,
                    inst.symbol,
                    side,
                    kind,
                    quantity,
                    stop_price,
                    price,
                    tif,
                    cid,
                    self.now_ms(),
                )
                self._stops[stop.alpaca_id] = stop
                self._stop_cids[(account, cid)] = stop.alpaca_id
                return _stop_body(stop)
        try:
            order = self.market.place(
                account,
                symbol=inst.symbol,
                side=side.upper(),
                type=kind.upper(),
                quantity=quantity,
                price=price,
                time_in_force=_TIF[tif] if kind == "limit" else ("IOC" if tif == "ioc" else None),
                client_order_id=cid,
                quote_quantity=notional,
            )
        except SimRejection as exc:
            if exc.reason == "duplicate":
                raise _Error(422, 40010001, "client_order_id must be unique") from None
            if exc.reason == "insufficient":
                raise _Error(403, 40310000, "insufficient buying power") from None
            raise _Error(422, 42210000, exc.detail or exc.reason) from None
        self._wire[order.order_id] = _Wire(tif, extended)
        return self._order(order)

    def _trigger(self) -> None:
        """Stop orders whose stop price has traded go to the engine: a market order, or a
        limit order at their limit price, under the same client id."""
        with self._stop_lock:
            for stop in self._stops.values():
                if stop.status != "new":
                    continue
                market = self.market.price(stop.symbol)
                if (market < stop.stop_price) if stop.side == "buy" else (market > stop.stop_price):
                    continue
                limit = stop.kind == "stop_limit"
                try:
                    order = self.market.place(
                        stop.account,
                        symbol=stop.symbol,
                        side=stop.side.upper(),
                        type="LIMIT" if limit else "MARKET",
                        quantity=stop.quantity,
                        price=stop.limit_price,
                        time_in_force=_TIF[stop.tif] if limit else None,
                        client_order_id=stop.cid,
                    )
                except SimRejection:
                    stop.status = "rejected"
                    continue
                stop.status, stop.engine = "triggered", order.order_id
                self._ids[stop.alpaca_id] = order.order_id
                self._wire[order.order_id] = _Wire(stop.tif, False, stop.kind, stop.stop_price)

    def _find(
        self, account: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> SimOrder:
        try:
            return self.market.find(
                account, None, order_id=order_id, client_order_id=client_order_id
            )
        except SimRejection:
            raise _Error(404, 40410000, "order not found") from None

    def _order(self, order: SimOrder) -> dict[str, Any]:
        wire = self._wire.get(order.order_id, _Wire("day", False))
        stop = self._stops.get(self._stop_cids.get((order.account, order.client_order_id), ""))
        order_id = stop.alpaca_id if stop is not None else str(uuid.UUID(int=order.order_id))
        self._ids[order_id] = order.order_id
        filled = order.filled
        average = order.quote_filled / filled if filled else None
        created = _stamp(datetime.fromtimestamp(order.created_ms / 1000, tz=timezone.utc))
        tif, extended, kind = wire.tif, wire.extended, wire.kind or order.type.lower()
        return {
            "id": order_id,
            "client_order_id": order.client_order_id,
            "created_at": created,
            "updated_at": created,
            "submitted_at": created,
            "symbol": order.symbol,
            "asset_class": "us_equity",
            # A notional order reports its dollars, and no qty (Alpaca's order object).
            "qty": None if order.quote_order_qty is not None else format(order.quantity, "f"),
            "notional": None
            if order.quote_order_qty is None
            else format(order.quote_order_qty, "f"),
            "filled_qty": format(filled, "f"),
            "filled_avg_price": None if average is None else format(average.quantize(_NINE), "f"),
            "order_class": "",
            "order_type": kind,
            "type": kind,
            "side": order.side.lower(),
            "time_in_force": tif,
            "limit_price": None if order.price is None else format(order.price, "f"),
            "stop_price": None if wire.stop_price is None else format(wire.stop_price, "f"),
            "status": _STATUS.get(order.status, "new"),
            "extended_hours": extended,
        }


@dataclass(frozen=True, slots=True)
class _Wire:
    """What an order asked for on the wire, beyond what the engine keeps."""

    tif: str
    extended: bool
    kind: str | None = None  # "stop" or "stop_limit" for a triggered stop order
    stop_price: Decimal | None = None


@dataclass(slots=True)
class _Stop:
    """A stop order: held here until its stop price trades, then in the engine."""

    alpaca_id: str
    account: str
    symbol: str
    side: str  # buy | sell
    kind: str  # stop | stop_limit
    quantity: Decimal
    stop_price: Decimal
    limit_price: Decimal | None
    tif: str
    cid: str
    created_ms: int
    status: str = "new"  # new | canceled | rejected | triggered
    engine: int | None = None  # the engine's order number once triggered

    def waits(self, account: str) -> bool:
        return self.account == account and self.status == "new"


def _stop_body(stop: _Stop) -> dict[str, Any]:
    """A stop order that has not triggered, as Alpaca shows it."""
    created = _stamp(datetime.fromtimestamp(stop.created_ms / 1000, tz=timezone.utc))
    return {
        "id": stop.alpaca_id,
        "client_order_id": stop.cid,
        "created_at": created,
        "updated_at": created,
        "submitted_at": created,
        "symbol": stop.symbol,
        "asset_class": "us_equity",
        "qty": format(stop.quantity, "f"),
        "notional": None,
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": stop.kind,
        "type": stop.kind,
        "side": stop.side,
        "time_in_force": stop.tif,
        "limit_price": None if stop.limit_price is None else format(stop.limit_price, "f"),
        "stop_price": format(stop.stop_price, "f"),
        "status": "new" if stop.status == "new" else stop.status,
        "extended_hours": False,
    }


def _bearer(request: SimRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if the request has one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" and token else None


def _asset(inst: SimInstrument) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, inst.symbol)),
        "class": "us_equity",
        "exchange": "NASDAQ",
        "symbol": inst.symbol,
        "status": "active",
        "tradable": True,
        "marginable": True,
        "shortable": False,
        "fractionable": True,
    }


def _number(value: Any, name: str) -> Decimal | None:
    """A positive decimal sent as a string (or a JSON number, as Alpaca also takes)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Error(422, 42210000, f"invalid {name}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _Error(422, 42210000, f"invalid {name}") from None
    if (
        not number.is_finite()
        or number <= 0
        or number.adjusted() > 12  # no share count or price is this large: refused, not read
        or number.as_tuple().exponent < -9  # type: ignore[operator]
    ):
        raise _Error(422, 42210000, f"invalid {name}")
    return number


def _moment(text: str | None, default: int) -> int:
    """Epoch ms of an RFC 3339 time or a date (``YYYY-MM-DD``), as the activities take."""
    if not text:
        return default
    if len(text) == 10:
        text += "T00:00:00Z"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _stamp(moment: datetime) -> str:
    """RFC 3339 with nanoseconds, as Alpaca writes its times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
