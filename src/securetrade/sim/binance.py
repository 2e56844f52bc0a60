"""The simulator's Binance spot dialect: one request handler for every way it is served.

It checks what Binance checks, the way Binance documents it: the API key (-2014, -2015),
the signature over the exact query string plus body (-1022), the timestamp against
``recvWindow`` (-1021: older than the window, or more than 1 s ahead), duplicate client
order ids among open orders (-2010), filters (-1013), and its published rate limits (429
with Retry-After, then 418 for a client that keeps going).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature

from .dialect import Dialect, DialectStats, Refusal, SimKey, SimRequest, SimResponse, json_response
from .engine import Market, SimOrder, SimRejection, SimTrade
from .faults import Fault, Faults

# SimKey and SimResponse live in .dialect; they are exported here too, where callers
# have always found them.
__all__ = ["BinanceDialect", "SimKey", "SimLimits", "SimResponse"]


@dataclass(frozen=True, slots=True)
class SimLimits:
    """Published limits: weight per IP and orders per account, each per window."""

    weight: int = 6000
    weight_seconds: int = 60
    orders: int = 100
    orders_seconds: int = 10
    ban_seconds: float = 10.0


_WEIGHTS = {
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/price"): 2,
    ("POST", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/sapi/v1/capital/withdraw/apply"): 1,
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
}


# Asking about every symbol (no ``symbol`` parameter) weighs more, as at Binance.
_ALL_SYMBOLS_WEIGHTS = {("GET", "/api/v3/openOrders"): 80, ("GET", "/api/v3/ticker/price"): 4}


def _weight(method: str, path: str, query: str) -> int:
    heavy = _ALL_SYMBOLS_WEIGHTS.get((method, path))
    if heavy is not None and not any(p.startswith("symbol=") for p in query.split("&")):
        return heavy
    return _WEIGHTS.get((method, path), 1)


def _interval(seconds: int) -> tuple[str, int, str]:
    for unit, letter, size in (("DAY", "d", 86400), ("HOUR", "h", 3600), ("MINUTE", "m", 60)):
        if seconds % size == 0:
            return unit, seconds // size, letter
    return "SECOND", seconds, "s"


@dataclass(slots=True)
class _Counter:
    """A fixed, clock-aligned window like Binance's."""

    seconds: int
    start: int = -1
    used: int = 0

    def add(self, now: float, amount: int) -> int:
        window = int(now // self.seconds)
        if window != self.start:
            self.start, self.used = window, 0
        self.used += amount
        return self.used

    def current(self, now: float) -> int:
        return self.used if int(now // self.seconds) == self.start else 0


@dataclass(slots=True)
class _Stats(DialectStats):
    status_429: int = 0
    status_418: int = 0
    weight: int = 0  # request weight counted, as Binance counts it
    #: (monotonic time, method, path) of every request received, in order.
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    #: (monotonic time, request weight) of the same requests: what the venue counts
    #: against its weight limit at the moment each one arrives.
    arrival_weights: list[tuple[float, int]] = field(default_factory=list)


class BinanceDialect(Dialect[_Stats]):
    """Answers Binance spot REST requests from a :class:`Market`."""

    def __init__(
        self,
        market: Market,
        *,
        limits: SimLimits | None = None,
        faults: Faults | None = None,
        clock_offset_ms: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            market, _Stats(), faults=faults, clock_offset_ms=clock_offset_ms, clock=clock
        )
        self.limits = limits or SimLimits()
        self._weight: dict[str, _Counter] = {}
        self._orders: dict[str, _Counter] = {}
        self._backoff_until: dict[str, float] = {}
        self._banned_until: dict[str, float] = {}

    def revoke(self, key_id: str) -> None:
        """Forget a key, as deleting it at Binance does: it is answered with -2015 after."""
        with self._lock:
            self.keys.pop(key_id, None)

    # --- what differs from the shared handler (see Dialect.handle) ----------------------

    def _arrived(self, request: SimRequest) -> None:
        super()._arrived(request)
        now = time.monotonic()
        self.stats.arrivals.append((now, request.method, request.path))
        weight = _weight(request.method, request.path, request.query)
        self.stats.arrival_weights.append((now, weight))

    def _fault_answer(self, fault: Fault) -> SimResponse:
        retry = {"retry-after": str(max(1, round(fault.seconds)))}
        if fault.kind in ("status", "status_after"):
            return self._error(fault.status, -1000, _UNKNOWN_ERROR, {})
        if fault.kind == "rate_limit_after":  # forwarded, then throttled
            return self._error(429, -1003, "Too many requests.", retry)
        banned = fault.kind == "ban"  # or "rate_limit": refused before processing
        with self._lock:
            if banned:
                self.stats.status_418 += 1
            else:
                self.stats.status_429 += 1
        return self._error(
            418 if banned else 429,
            -1003,
            "Too many requests; please use the websocket for live updates.",
            retry,
        )

    def _process(self, request: SimRequest, delay: float) -> tuple[int, Any]:
        route = (request.method, request.path)
        query, body = request.query, request.body
        if route == ("GET", "/api/v3/time"):
            return 200, {"serverTime": self.now_ms()}
        if route == ("GET", "/api/v3/exchangeInfo"):
            return 200, self._exchange_info()
        if route == ("GET", "/api/v3/ticker/price"):
            symbol = _required(dict(parse_qsl(query)), "symbol")
            if symbol not in self.market.instruments:
                raise _ApiError(400, -1121, "Invalid symbol.")
            with self.market.lock:
                return 200, {"symbol": symbol, "price": _text(self.market.price(symbol))}
        if route not in _WEIGHTS:
            raise _ApiError(404, -1000, "Unknown endpoint.")
        key, params = self._authenticate(query, request.headers, body)
        if delay:
            time.sleep(delay)  # past the gateway, queued before the engine
        if route == ("POST", "/api/v3/order"):
            return 200, self._new_order(key, params)
        if route == ("GET", "/api/v3/order"):
            return 200, _order_json(self._find(key, params))
        if route == ("DELETE", "/api/v3/order"):
            order = self._guard(
                lambda: self.market.cancel(
                    key.account, _required(params, "symbol"), **_lookup(params)
                )
            )
            return 200, _order_json(order)
        if route == ("GET", "/api/v3/openOrders"):
            orders = self.market.open_orders(key.account, params.get("symbol"))
            return 200, [_order_json(o) for o in orders]
        if route == ("GET", "/api/v3/myTrades"):
            order_id = params.get("orderId")
            if order_id is not None and not order_id.isdigit():
                raise _ApiError(400, -1100, "Illegal characters found in parameter 'orderId'.")
            trades = self.market.trades(
                key.account,
                _required(params, "symbol"),
                None if order_id is None else int(order_id),
            )
            return 200, [_trade_json(t) for t in trades]
        if route == ("GET", "/api/v3/account"):
            account = self.market.accounts[key.account]
            with self.market.lock:
                balances = [
                    {"asset": a, "free": _text(v[0]), "locked": _text(v[1])}
                    for a, v in sorted(account.balances.items())
                ]
            return 200, {
                "canTrade": key.can_trade,
                "canWithdraw": key.can_withdraw,
                "accountType": "SPOT",
                "balances": balances,
            }
        if route == ("GET", "/sapi/v1/account/apiRestrictions"):
            return 200, {
                "ipRestrict": key.ip_restricted,
                "createTime": 1_700_000_000_000,
                "enableReading": True,
                "enableSpotAndMarginTrading": key.can_trade,
                "enableWithdrawals": key.can_withdraw,
                "enableInternalTransfer": False,
                "enableMargin": False,
                "enableFutures": False,
                "permitsUniversalTransfer": False,
            }
        # POST /sapi/v1/capital/withdraw/apply
        if not key.can_withdraw:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        return 200, {"id": hashlib.sha256(body).hexdigest()[:32]}

    # --- authentication, as Binance documents it ----------------------------------------

    def _authenticate(
        self, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[SimKey, dict[str, str]]:
        key_id = headers.get("x-mbx-apikey")
        if not key_id:
            raise _ApiError(401, -2014, "API-key format invalid.")
        key = self.keys.get(key_id)
        if key is None:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        text = body.decode("ascii", "replace")
        pairs = []
        for part in (query, text):
            if part:
                try:
                    pairs.extend(parse_qsl(part, keep_blank_values=True, strict_parsing=True))
                except ValueError:
                    raise _ApiError(
                        400, -1100, "Illegal characters found in a parameter."
                    ) from None
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise _ApiError(400, -1101, "Duplicate values for a parameter detected.")
        params = dict(pairs)
        signature = params.pop("signature", None)
        if signature is None:
            raise _ApiError(400, -1102, "Mandatory parameter 'signature' was not sent.")
        payload = _strip_signature(query) + _strip_signature(text)
        if not self._signature_ok(key, payload.encode("ascii", "replace"), signature):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            raise _ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent.") from None
        if recv_window > 60000:
            raise _ApiError(400, -1131, "recvWindow must be less than 60000")
        server = self.now_ms()
        if self.market.deadline == "none":  # a venue without request deadlines
            return key, params
        if timestamp >= server + 1000:
            raise _ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - timestamp > recv_window:
            raise _ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return key, params

    def _signature_ok(self, key: SimKey, payload: bytes, signature: str) -> bool:
        if key.hmac_secret is not None:
            expected = hmac.new(key.hmac_secret, payload, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        if key.ed25519_public is not None:
            try:
                key.ed25519_public.verify(base64.b64decode(signature, validate=True), payload)
            except (InvalidSignature, ValueError):
                return False
            return True
        return False

    # --- rate limits, as Binance applies them --------------------------------------------

    def _gate(self, request: SimRequest) -> SimResponse | None:
        """Request weight per IP: 429 over the limit, then 418 for a client that keeps on."""
        client = request.client
        now = self._clock()
        limits = self.limits
        with self._lock:
            banned = self._banned_until.get(client, 0.0)
            if now < banned:
                self.stats.status_418 += 1
                return self._error(
                    418,
                    -1003,
                    f"Way too much request weight used; IP banned until {int(banned * 1000)}.",
                    {"retry-after": str(max(1, int(banned - now + 0.999)))},
                )
            if now < self._backoff_until.get(client, 0.0):
                # Still sending while told to back off: this is what earns a ban.
                self._banned_until[client] = now + limits.ban_seconds
                self.stats.status_418 += 1
                return self._error(
                    418,
                    -1003,
                    "Way too much request weight used; IP banned.",
                    {"retry-after": str(int(limits.ban_seconds))},
                )
            counter = self._weight.setdefault(client, _Counter(limits.weight_seconds))
            weight = _weight(request.method, request.path, request.query)
            self.stats.weight += weight
            used = counter.add(now, weight)
            if used > limits.weight:
                return self._too_many(client, now, limits.weight_seconds)
        return None

    def _too_many(self, client: str, now: float, seconds: int) -> SimResponse:
        retry = seconds - (now % seconds)
        self._backoff_until[client] = now + retry
        self.stats.status_429 += 1
        return self._error(
            429,
            -1003,
            "Too many requests; current limit is exceeded.",
            {"retry-after": str(max(1, int(retry + 0.999)))},
        )

    def _count_order(self, key: SimKey) -> None:
        now = self._clock()
        with self._lock:
            counter = self._orders.setdefault(key.account, _Counter(self.limits.orders_seconds))
            if counter.add(now, 1) > self.limits.orders:
                self.stats.status_429 += 1
                raise _ApiError(
                    429,
                    -1015,
                    "Too many new orders.",
                    {"retry-after": str(self.limits.orders_seconds)},
                )

    def _usage(self, request: SimRequest) -> dict[str, str]:
        """X-MBX-USED-WEIGHT-<window>, and X-MBX-ORDER-COUNT-<window> for a known key."""
        now = self._clock()
        limits = self.limits
        _, wnum, wletter = _interval(limits.weight_seconds)
        result = {}
        with self._lock:
            counter = self._weight.get(request.client)
            result[f"x-mbx-used-weight-{wnum}{wletter}"] = str(
                0 if counter is None else counter.current(now)
            )
            key = self.keys.get(request.headers.get("x-mbx-apikey", ""))
            if key is not None:
                _, onum, oletter = _interval(limits.orders_seconds)
                orders = self._orders.get(key.account)
                result[f"x-mbx-order-count-{onum}{oletter}"] = str(
                    0 if orders is None else orders.current(now)
                )
        return result

    # --- orders ----------------------------------------------------------------------------

    def _new_order(self, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
        if not key.can_trade:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        symbol = _required(params, "symbol")
        side = _required(params, "side")
        order_type = _required(params, "type")
        if side not in ("BUY", "SELL") or order_type not in ("LIMIT", "MARKET"):
            raise _ApiError(400, -1102, "Invalid side or type.")
        quantity = _decimal(params, "quantity")
        price = _decimal(params, "price") if order_type == "LIMIT" else None
        tif = params.get("timeInForce") if order_type == "LIMIT" else None
        if order_type == "LIMIT" and tif not in ("GTC", "IOC", "FOK"):
            raise _ApiError(400, -1102, "Mandatory parameter 'timeInForce' was not sent.")
        client_id = params.get("newClientOrderId") or f"sim{time.time_ns()}"
        self._count_order(key)
        order = self._guard(
            lambda: self.market.place(
                key.account,
                symbol=symbol,
                side=side,
                type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=tif,
                client_order_id=client_id,
            )
        )
        result = _order_json(order)
        result["transactTime"] = order.created_ms
        result["fills"] = [
            {
                "price": _text(p),
                "qty": _text(q),
                "commission": "0",
                "commissionAsset": "BNB",
                "tradeId": t,
            }
            for p, q, t in order.fills
        ]
        return result

    def _find(self, key: SimKey, params: dict[str, str]) -> SimOrder:
        symbol = _required(params, "symbol")
        return self._guard(lambda: self.market.find(key.account, symbol, **_lookup(params)))

    def _guard(self, action: Callable[[], SimOrder]) -> SimOrder:
        try:
            return action()
        except SimRejection as rej:
            code, status = {
                "bad_symbol": (-1121, 400),
                "duplicate": (-2010, 400),
                "insufficient": (-2010, 400),
                "filter": (-1013, 400),
                "unknown": (-2013, 400),
                "unknown_cancel": (-2011, 400),
            }[rej.reason]
            raise _ApiError(status, code, rej.detail) from None

    def _exchange_info(self) -> dict[str, Any]:
        limits = self.limits
        wunit, wnum, _ = _interval(limits.weight_seconds)
        ounit, onum, _ = _interval(limits.orders_seconds)
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": wunit,
                    "intervalNum": wnum,
                    "limit": limits.weight,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": ounit,
                    "intervalNum": onum,
                    "limit": limits.orders,
                },
            ],
            "symbols": [
                {
                    "symbol": i.symbol,
                    "status": "TRADING",
                    "baseAsset": i.base,
                    "quoteAsset": i.quote,
                    "orderTypes": ["LIMIT", "MARKET"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _text(i.tick_size),
                            "maxPrice": "1000000",
                            "tickSize": _text(i.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _text(i.min_quantity),
                            "maxQty": "9000",
                            "stepSize": _text(i.step_size),
                        },
                        {"filterType": "NOTIONAL", "minNotional": _text(i.min_notional)},
                    ],
                }
                for i in self.market.instruments.values()
            ],
        }

    # --- wire helpers ----------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str, headers: dict[str, str]) -> SimResponse:
        return json_response(status, {"code": code, "msg": message}, headers)


_UNKNOWN_ERROR = "An unknown error occurred while processing the request."


class _ApiError(Refusal):
    """Binance's error: ``{"code": ..., "msg": ...}``, counted by its code."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, {"code": code, "msg": message}, code, headers)


def _strip_signature(text: str) -> str:
    """The signed payload: the part as sent, less its ``signature`` parameter."""
    if "signature=" not in text:
        return text
    kept = [p for p in text.split("&") if not unquote(p).startswith("signature=")]
    return "&".join(kept)


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _ApiError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    text = _required(params, name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite() or value <= 0:
        raise _ApiError(400, -1013, f"Invalid {name}.")
    return value


def _lookup(params: Mapping[str, str]) -> dict[str, Any]:
    order_id = params.get("orderId")
    client_id = params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise _ApiError(
            400,
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        )
    try:
        return {
            "order_id": None if order_id is None else int(order_id),
            "client_order_id": client_id,
        }
    except ValueError:
        raise _ApiError(400, -1100, "Illegal characters found in parameter 'orderId'.") from None


def _text(value: Decimal) -> str:
    return format(value, "f")


def _trade_json(trade: SimTrade) -> dict[str, Any]:
    order = trade.order
    return {
        "symbol": order.symbol,
        "id": trade.trade_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "price": _text(trade.price),
        "qty": _text(trade.quantity),
        "quoteQty": _text(trade.price * trade.quantity),
        "commission": "0",
        "commissionAsset": "BNB",
        "time": order.updated_ms,
        "isBuyer": order.side == "BUY",
        "isMaker": order.type == "LIMIT",
        "isBestMatch": True,
    }


def _order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "clientOrderId": order.client_order_id,
        "price": _text(order.price or Decimal(0)),
        "origQty": _text(order.quantity),
        "executedQty": _text(order.filled),
        "cummulativeQuoteQty": _text(order.quote_filled),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "time": order.created_ms,
        "updateTime": order.updated_ms,
    }
