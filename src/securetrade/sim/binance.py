"""The simulator's Binance spot dialect: one request handler for every way it is served.

It checks what Binance checks, the way Binance documents it: the API key (-2014, -2015),
the signature over the exact query string plus body (-1022), the timestamp against
``recvWindow`` (-1021: older than the window, or more than 1 s ahead), duplicate client
order ids among open orders (-2010), filters (-1013), and its published rate limits (429
with Retry-After, then 418 for a client that keeps going).

Strict by default, as the venue is: a parameter the endpoint does not read (-1104), a
number outside Binance's grammar or a client order id outside its own (-1100), a
parameter the order type does not take (-1106), too many decimals (-1111), an unknown
time in force, order type or side (-1115, -1116, -1117) and an unknown symbol on any
endpoint (-1121) are refused; fills pay the published commission. ``strict=False`` lifts
the grammar and parameter checks, for a test that needs a lenient venue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature

from .binance_wire import _ApiError, _order_json, _required, _text
from .dialect import Dialect, DialectStats, SimKey, SimRequest, SimResponse, json_response
from .engine import FeeSchedule, Market, SimOrder, SimRejection, SimTrade
from .faults import Fault, Faults
from .ledger import record_withdrawal, transfers_of
from .lists import oco

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
    orders_day: int = 200_000


_WEIGHTS = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/price"): 2,
    ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/depth"): 5,  # by limit: see _depth_weight
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/trades"): 25,
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/order/cancelReplace"): 1,
    ("POST", "/api/v3/orderList/oco"): 1,
    ("POST", "/api/v3/order/test"): 1,
    ("GET", "/api/v3/allOrders"): 20,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/sapi/v1/capital/withdraw/apply"): 1,
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
    ("GET", "/sapi/v1/capital/deposit/hisrec"): 1,
    ("GET", "/sapi/v1/capital/withdraw/history"): 1,
}


# Asking about every symbol (no ``symbol`` parameter) weighs more, as at Binance.
_ALL_SYMBOLS_WEIGHTS = {
    ("GET", "/api/v3/openOrders"): 80,
    ("GET", "/api/v3/ticker/price"): 4,
    ("GET", "/api/v3/ticker/24hr"): 80,
}
_PUBLIC = frozenset(
    {
        ("GET", "/api/v3/ping"),
        ("GET", "/api/v3/time"),
        ("GET", "/api/v3/exchangeInfo"),
        ("GET", "/api/v3/ticker/price"),
        ("GET", "/api/v3/ticker/24hr"),
        ("GET", "/api/v3/depth"),
        ("GET", "/api/v3/klines"),
        ("GET", "/api/v3/trades"),
    }
)

# The parameters each endpoint reads, from its page in Binance's spot REST reference
# (developers.binance.com/docs/binance-spot-api-docs/rest-api/...): any other is answered
# -1104 "Not all sent parameters were read" (errors page, -1104 UNREAD_PARAMETERS).
_SIGNED = ("recvWindow", "timestamp", "signature")
_ORDER_PARAMS = (
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "strategyId",
    "strategyType",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "newOrderRespType",
    "selfTradePreventionMode",
    *_SIGNED,
)
_PARAMS: dict[tuple[str, str], frozenset[str]] = {
    route: frozenset(names)
    for route, names in {
        ("GET", "/api/v3/ping"): (),
        ("GET", "/api/v3/time"): (),
        ("GET", "/api/v3/exchangeInfo"): ("symbol", "symbols", "permissions", "symbolStatus"),
        ("GET", "/api/v3/ticker/price"): ("symbol", "symbols"),
        ("GET", "/api/v3/ticker/24hr"): ("symbol", "symbols", "type"),
        ("GET", "/api/v3/depth"): ("symbol", "limit"),
        ("GET", "/api/v3/klines"): (
            "symbol",
            "interval",
            "startTime",
            "endTime",
            "timeZone",
            "limit",
        ),
        ("GET", "/api/v3/trades"): ("symbol", "limit"),
        ("POST", "/api/v3/order"): _ORDER_PARAMS,
        ("POST", "/api/v3/orderList/oco"): (
            "symbol",
            "listClientOrderId",
            "side",
            "quantity",
            *(
                f"{leg}{name}"
                for leg in ("above", "below")
                for name in ("Type", "ClientOrderId", "Price", "StopPrice", "TimeInForce")
            ),
            "newOrderRespType",
            "selfTradePreventionMode",
            *_SIGNED,
        ),
        ("POST", "/api/v3/order/cancelReplace"): (
            *_ORDER_PARAMS,
            "cancelReplaceMode",
            "cancelOrderId",
            "cancelOrigClientOrderId",
            "cancelNewClientOrderId",
            "cancelRestrictions",
            "orderRateLimitExceededMode",
        ),
        ("POST", "/api/v3/order/test"): (*_ORDER_PARAMS, "computeCommissionRates"),
        ("GET", "/api/v3/order"): ("symbol", "orderId", "origClientOrderId", *_SIGNED),
        ("DELETE", "/api/v3/order"): (
            "symbol",
            "orderId",
            "origClientOrderId",
            "newClientOrderId",
            "cancelRestrictions",
            *_SIGNED,
        ),
        ("GET", "/api/v3/openOrders"): ("symbol", *_SIGNED),
        ("GET", "/api/v3/allOrders"): (
            "symbol",
            "orderId",
            "startTime",
            "endTime",
            "limit",
            *_SIGNED,
        ),
        ("GET", "/api/v3/account"): ("omitZeroBalances", *_SIGNED),
        ("GET", "/api/v3/myTrades"): (
            "symbol",
            "orderId",
            "startTime",
            "endTime",
            "fromId",
            "limit",
            *_SIGNED,
        ),
        ("POST", "/sapi/v1/capital/withdraw/apply"): (
            "coin",
            "withdrawOrderId",
            "network",
            "address",
            "addressTag",
            "amount",
            "transactionFeeFlag",
            "name",
            "walletType",
            *_SIGNED,
        ),
        ("GET", "/sapi/v1/account/apiRestrictions"): _SIGNED,
        ("GET", "/sapi/v1/capital/deposit/hisrec"): (
            "includeSource",
            "coin",
            "status",
            "startTime",
            "endTime",
            "offset",
            "limit",
            "txId",
            *_SIGNED,
        ),
        ("GET", "/sapi/v1/capital/withdraw/history"): (
            "coin",
            "withdrawOrderId",
            "status",
            "offset",
            "limit",
            "idList",
            "startTime",
            "endTime",
            *_SIGNED,
        ),
    }.items()
}

# Grammars Binance states in its -1100 answers ("legal range is ..."):
_NUMBER = re.compile(r"([0-9]{1,20})(\.[0-9]{1,20})?")
_NUMBER_TEXT = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
_CLIENT_ID = re.compile(r"[a-zA-Z0-9\-_]{1,36}")
_CLIENT_ID_TEXT = "^[a-zA-Z0-9-_]{1,36}$"
_ORDER_ID = re.compile(r"[0-9]{1,20}")
# What exchangeInfo publishes here: every spot order type Binance has.
_ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "LIMIT_MAKER",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
# Conditional types -> (the order they become once triggered, "loss" or "profit").
_CONDITIONAL = {
    "STOP_LOSS": ("MARKET", "loss"),
    "STOP_LOSS_LIMIT": ("LIMIT", "loss"),
    "TAKE_PROFIT": ("MARKET", "profit"),
    "TAKE_PROFIT_LIMIT": ("LIMIT", "profit"),
}
# Binance's other order types: real, but not modelled by this simulator (none left).
_UNMODELLED_TYPES: tuple[str, ...] = ()
_PRECISION = 8  # baseAssetPrecision and quoteAssetPrecision published for every symbol
#: Binance's standard spot commission without BNB: 0.1% maker and taker, in the asset
#: received (developers.binance.com .../rest-api/account-endpoints, "commissionRates").
BINANCE_FEES = FeeSchedule(Decimal("0.001"), Decimal("0.001"), "received")


# Kline intervals (market-data-endpoints, "Kline/Candlestick data") in milliseconds; "1M"
# (a calendar month) is not served here.
_KLINE_MS = {
    name: seconds * 1000
    for name, seconds in {
        "1s": 1,
        "1m": 60,
        "3m": 180,
        "5m": 300,
        "15m": 900,
        "30m": 1800,
        "1h": 3600,
        "2h": 7200,
        "4h": 14400,
        "6h": 21600,
        "8h": 28800,
        "12h": 43200,
        "1d": 86400,
        "3d": 259200,
        "1w": 604800,
    }.items()
}


def _depth_weight(query: str) -> int:
    """``depth`` weighs by ``limit`` (default 100): 5 up to 100, 25 up to 500, 50 up to
    1000, 250 up to 5000."""
    limit = next((p[6:] for p in query.split("&") if p.startswith("limit=")), "100")
    size = int(limit) if limit.isdigit() else 100
    for most, weight in ((100, 5), (500, 25), (1000, 50)):
        if size <= most:
            return weight
    return 250


def _weight(method: str, path: str, query: str) -> int:
    if (method, path) == ("GET", "/api/v3/depth"):
        return _depth_weight(query)
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
    #: The same requests' peer addresses, in the same order: ``zip`` them with
    #: ``arrival_weights`` for the weight each source IP spent (the venue's limit is per IP).
    arrival_clients: list[str] = field(default_factory=list)


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
        strict: bool = True,
        fees: FeeSchedule | None = BINANCE_FEES,
    ) -> None:
        """``strict=False`` lifts the parameter and grammar checks (see the module's
        docstring); ``fees=None`` fills without commission."""
        super().__init__(
            market, _Stats(), faults=faults, clock_offset_ms=clock_offset_ms, clock=clock
        )
        self.limits = limits or SimLimits()
        self.strict = strict
        self.fees = fees
        self._weight: dict[str, _Counter] = {}
        self._orders: dict[str, _Counter] = {}
        self._orders_day: dict[str, _Counter] = {}
        self._backoff_until: dict[str, float] = {}
        self._banned_until: dict[str, float] = {}
        self._book_updates = 0  # depth's lastUpdateId

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
        self.stats.arrival_clients.append(request.client)

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
        if route not in _WEIGHTS:
            raise _ApiError(404, -1000, "Unknown endpoint.")
        if route in _PUBLIC:
            params = _parameters(query, "")
            self._check_read(route, params)
            return 200, self._public(route, params)
        key, params = self._authenticate(query, request.headers, body)
        self._check_read(route, params)
        if delay:
            time.sleep(delay)  # past the gateway, queued before the engine
        if route == ("POST", "/api/v3/order"):
            return 200, self._new_order(key, params)
        if route == ("POST", "/api/v3/order/cancelReplace"):
            return 200, self._cancel_replace(key, params)
        if route == ("POST", "/api/v3/orderList/oco"):
            return 200, oco(self, key, params)
        if route == ("POST", "/api/v3/order/test"):
            return 200, self._new_order(key, params, test=True)
        if route == ("GET", "/api/v3/order"):
            return 200, _order_json(self._find(key, params))
        if route == ("DELETE", "/api/v3/order"):
            return 200, self._cancel(key, params)
        if route == ("GET", "/api/v3/openOrders"):
            symbol = params.get("symbol")
            if symbol is not None:
                self._symbol(symbol)
            orders = self.market.open_orders(key.account, symbol)
            return 200, [_order_json(o) for o in orders]
        if route == ("GET", "/api/v3/allOrders"):
            return 200, self._all_orders(key, params)
        if route == ("GET", "/api/v3/myTrades"):
            return 200, self._my_trades(key, params)
        if route == ("GET", "/sapi/v1/capital/deposit/hisrec"):
            return 200, _deposits(self.market, key, params)
        if route == ("GET", "/sapi/v1/capital/withdraw/history"):
            return 200, _withdrawals(self.market, key, params)
        if route == ("GET", "/api/v3/account"):
            return 200, self._account(key)
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
        record_withdrawal(
            self.market,
            key.account,
            _required(params, "coin"),
            self._decimal(params, "amount"),
            _required(params, "address"),
            network=params.get("network", "ETH"),
        )
        return 200, {"id": hashlib.sha256(body).hexdigest()[:32]}

    def _public(self, route: tuple[str, str], params: dict[str, str]) -> Any:
        if route == ("GET", "/api/v3/ping"):
            return {}
        if route == ("GET", "/api/v3/time"):
            return {"serverTime": self.now_ms()}
        if route == ("GET", "/api/v3/exchangeInfo"):
            return self._exchange_info(self._symbols(params))
        if route == ("GET", "/api/v3/depth"):
            return self._depth(params)
        if route == ("GET", "/api/v3/klines"):
            return self._klines(params)
        if route == ("GET", "/api/v3/trades"):
            return self._recent_trades(params)
        symbols = self._symbols(params)
        if route == ("GET", "/api/v3/ticker/price"):
            with self.market.lock:
                rows = [{"symbol": s, "price": _text(self.market.price(s))} for s in symbols]
        else:  # ticker/24hr
            rows = [self._ticker_24h(s) for s in symbols]
        if "symbol" in params:
            return rows[0]
        return rows

    def _symbols(self, params: Mapping[str, str]) -> list[str]:
        """``symbol=X`` or ``symbols=["X","Y"]`` as named instruments; all of them if neither."""
        if "symbol" in params and "symbols" in params:
            raise _ApiError(400, -1106, "Parameter 'symbols' sent when not required.")
        if "symbol" in params:
            return [self._symbol(_required(params, "symbol"))]
        if "symbols" in params:
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                names = None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise _ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.")
            return [self._symbol(n) for n in names]
        return list(self.market.instruments)

    def _symbol(self, symbol: str) -> str:
        if symbol not in self.market.instruments:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def _check_read(self, route: tuple[str, str], params: Mapping[str, str]) -> None:
        """-1104 for a parameter the endpoint does not read (a misspelt one, most often)."""
        if not self.strict:
            return
        known = _PARAMS[route]
        sent = [n for n in params if n != "signature"]
        read = [n for n in sent if n in known]
        if len(read) != len(sent):
            raise _ApiError(
                400,
                -1104,
                f"Not all sent parameters were read; read '{len(read)}' parameter(s) but "
                f"was sent '{len(sent)}'.",
            )

    def _depth(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v3/depth``: ``limit`` 1 to 5000 (default 100), best first."""
        symbol = self._symbol(_required(params, "symbol"))
        limit = _limit(params, default=100, most=5000)
        bids, asks = self.market.book(symbol, limit)
        with self._lock:
            self._book_updates += 1
            update = self._book_updates
        return {
            "lastUpdateId": update,
            "bids": [[_text(p), _text(q)] for p, q in bids],
            "asks": [[_text(p), _text(q)] for p, q in asks],
        }

    def _klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        """``GET /api/v3/klines``: bars opening from ``startTime`` (aligned down) up to
        ``endTime``, the first ``limit`` (default 500, at most 1000) of them; without
        ``startTime``, the latest ``limit`` up to ``endTime`` or now."""
        symbol = self._symbol(_required(params, "symbol"))
        step = _KLINE_MS.get(_required(params, "interval"))
        if step is None:
            raise _ApiError(400, -1120, "Invalid interval.")
        limit = _limit(params, default=500, most=1000)
        start, end = _time(params, "startTime"), _time(params, "endTime")
        if "timeZone" in params and params["timeZone"] not in ("0", "+00:00", "0:00"):
            raise _ApiError(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
        now = self.now_ms()
        last = (min(now, end) if end is not None else now) // step * step
        if start is not None:
            first = -(-start // step) * step  # the first bar opening at or after startTime
            last = min(last, first + (limit - 1) * step)
        else:
            first = last - (limit - 1) * step
        if first > last:
            return []
        return [
            [
                bar.open_ms,
                _text(bar.open),
                _text(bar.high),
                _text(bar.low),
                _text(bar.close),
                _text(bar.volume),
                bar.open_ms + step - 1,
                _text(bar.quote_volume),
                bar.count,
                "0",
                "0",
                "0",
            ]
            for bar in self.market.bars(symbol, step, first, last)
        ]

    def _recent_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/trades``: the latest ``limit`` (default 500, at most 1000), oldest
        first."""
        symbol = self._symbol(_required(params, "symbol"))
        limit = _limit(params, default=500, most=1000)
        with self.market.lock:
            recent = self.market.tape[symbol][-limit:]
        return [
            {
                "id": t.trade_id,
                "price": _text(t.price),
                "qty": _text(t.quantity),
                "quoteQty": _text(t.price * t.quantity),
                "time": t.at_ms,
                "isBuyerMaker": t.taker_side == "SELL",
                "isBestMatch": True,
            }
            for t in recent
        ]

    def _ticker_24h(self, symbol: str) -> dict[str, Any]:
        now = self.now_ms()
        with self.market.lock:
            last = self.market.price(symbol)
            open_price = self.market.instruments[symbol].start_price
            fills = [
                (p, q, t)
                for o in self.market.orders.values()
                if o.symbol == symbol
                for p, q, t in o.fills
            ]
        (bid,), (ask,) = self.market.book(symbol, 1)
        volume = sum((q for _, q, _ in fills), Decimal(0))
        quote = sum((p * q for p, q, _ in fills), Decimal(0))
        prices = [p for p, _, _ in fills] + [last, open_price]
        change = last - open_price
        return {
            "symbol": symbol,
            "priceChange": _text(change),
            "priceChangePercent": _text((change * 100 / open_price).quantize(Decimal("0.001"))),
            "weightedAvgPrice": _text(
                (quote / volume).quantize(Decimal("0.00000001")) if volume else last
            ),
            "prevClosePrice": _text(open_price),
            "lastPrice": _text(last),
            "lastQty": _text(fills[-1][1] if fills else Decimal(0)),
            "bidPrice": _text(bid[0]),
            "bidQty": _text(bid[1]),
            "askPrice": _text(ask[0]),
            "askQty": _text(ask[1]),
            "openPrice": _text(open_price),
            "highPrice": _text(max(prices)),
            "lowPrice": _text(min(prices)),
            "volume": _text(volume),
            "quoteVolume": _text(quote),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": fills[0][2] if fills else -1,
            "lastId": fills[-1][2] if fills else -1,
            "count": len(fills),
        }

    def _account(self, key: SimKey) -> dict[str, Any]:
        account = self.market.accounts[key.account]
        with self.market.lock:
            balances = [
                {"asset": a, "free": _text(v[0]), "locked": _text(v[1])}
                for a, v in sorted(account.balances.items())
            ]
        maker = self.fees.maker if self.fees else Decimal(0)
        taker = self.fees.taker if self.fees else Decimal(0)
        return {
            "makerCommission": int(maker * 10000),
            "takerCommission": int(taker * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": f"{maker:.8f}",
                "taker": f"{taker:.8f}",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": key.can_trade,
            "canWithdraw": key.can_withdraw,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": int(hashlib.sha256(key.account.encode()).hexdigest()[:8], 16),
        }

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
        params = _parameters(query, text)
        signature = params.get("signature")
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
        params.pop("signature", None)
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
        limits = self.limits
        with self._lock:
            counter = self._orders.setdefault(key.account, _Counter(limits.orders_seconds))
            daily = self._orders_day.setdefault(key.account, _Counter(86400))
            if counter.add(now, 1) > limits.orders or daily.add(now, 1) > limits.orders_day:
                self.stats.status_429 += 1
                raise _ApiError(
                    429,
                    -1015,
                    "Too many new orders.",
                    {"retry-after": str(limits.orders_seconds)},
                )

    def _usage(self, request: SimRequest) -> dict[str, str]:
        """X-MBX-USED-WEIGHT-<window>, and X-MBX-ORDER-COUNT-<window> (each order window)
        for a known key."""
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
                daily = self._orders_day.get(key.account)
                result["x-mbx-order-count-1d"] = str(0 if daily is None else daily.current(now))
        return result

    # --- orders ----------------------------------------------------------------------------

    def _new_order(
        self, key: SimKey, params: dict[str, str], *, test: bool = False
    ) -> dict[str, Any]:
        """``POST /api/v3/order`` (or ``/order/test``: every check, nothing placed), with
        the checks and codes of Binance's "New order" page and errors page."""
        if not key.can_trade:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        symbol = self._symbol(_required(params, "symbol"))
        side = _required(params, "side")
        order_type = _required(params, "type")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1117, "Invalid side.")
        if order_type in _UNMODELLED_TYPES:
            raise _ApiError(400, -2010, "Order type not supported for this symbol.")
        if order_type not in _ORDER_TYPES:
            raise _ApiError(400, -1116, "Invalid orderType.")
        becomes, stop_kind = _CONDITIONAL.get(order_type, (order_type, None))
        limit = becomes != "MARKET"
        tif = params.get("timeInForce")
        stop_price = self._decimal(params, "stopPrice") if stop_kind is not None else None
        if stop_kind is None and "stopPrice" in params and self.strict:
            _not_required("stopPrice")
        if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            tif = _required(params, "timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise _ApiError(400, -1115, "Invalid timeInForce.")
        elif tif is not None:
            if self.strict:
                _not_required("timeInForce")
            tif = None
        if not limit and "price" in params and self.strict:
            _not_required("price")
        price = self._decimal(params, "price") if limit else None
        quote_qty = None
        if order_type == "MARKET" and "quoteOrderQty" in params:
            if "quantity" in params and self.strict:
                _not_required("quoteOrderQty")
            quote_qty = self._decimal(params, "quoteOrderQty")
        elif "quoteOrderQty" in params and self.strict:
            _not_required("quoteOrderQty")
        if quote_qty is not None and "quantity" not in params:
            quantity = Decimal(0)  # the engine works it out at the price it fills at
        else:
            quote_qty = None
            quantity = self._decimal(params, "quantity")
        client_id = params.get("newClientOrderId")
        if client_id is not None and self.strict and not _CLIENT_ID.fullmatch(client_id):
            raise _illegal("newClientOrderId", _CLIENT_ID_TEXT)
        client_id = client_id or f"sim{time.time_ns()}"
        response_type = params.get(
            "newOrderRespType", "FULL" if order_type != "LIMIT_MAKER" else "ACK"
        )
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise _illegal("newOrderRespType", "ACK, RESULT, FULL")
        if not test:
            self._count_order(key)
        order = self._guard(
            lambda: self.market.place(
                key.account,
                symbol=symbol,
                side=side,
                type="MARKET" if becomes == "MARKET" else "LIMIT",
                quantity=quantity,
                price=price,
                time_in_force=tif,
                client_order_id=client_id,
                fees=self.fees,
                post_only="reject" if order_type == "LIMIT_MAKER" else None,
                validate_only=test,
                stop_price=stop_price,
                stop_kind=stop_kind,
                quote_quantity=quote_qty,
            )
        )
        if test:
            if params.get("computeCommissionRates") == "true":
                return self._commission_rates()
            return {}
        if order_type != becomes or order_type == "LIMIT_MAKER":
            order.display_type = order_type
        if response_type == "ACK":
            return {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderListId": -1,
                "clientOrderId": order.client_order_id,
                "transactTime": order.created_ms,
            }
        result = _order_json(order)
        result["transactTime"] = order.created_ms
        if response_type == "FULL":
            result["fills"] = [
                {
                    "price": _text(p),
                    "qty": _text(q),
                    "commission": _text(order.fees[t][0]) if t in order.fees else "0",
                    "commissionAsset": order.fees[t][1] if t in order.fees else "BNB",
                    "tradeId": t,
                }
                for p, q, t in order.fills
            ]
        return result

    def _cancel_replace(self, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
        """``POST /api/v3/order/cancelReplace``: cancel one order and place another, under
        one lock, so nothing sees both or neither live. ``STOP_ON_FAILURE``: a failed cancel
        places nothing (-2022); a new order refused after the cancel is -2021."""
        if not key.can_trade:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        mode = _required(params, "cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise _illegal("cancelReplaceMode", "STOP_ON_FAILURE, ALLOW_FAILURE")
        lookup = {
            "orderId": params.get("cancelOrderId"),
            "origClientOrderId": params.get("cancelOrigClientOrderId"),
        }
        cancel = {k: v for k, v in lookup.items() if v is not None}
        new = {
            k: v
            for k, v in params.items()
            if not k.startswith("cancel") and k != "orderRateLimitExceededMode"
        }
        with self.market.lock:
            try:
                cancelled = self._cancel(key, {"symbol": params.get("symbol", ""), **cancel})
            except _ApiError as failed:
                if mode == "STOP_ON_FAILURE":
                    raise _ApiError(400, -2022, "Order cancel-replace failed.") from failed
                raise
            try:
                placed = self._new_order(key, new)
            except _ApiError as failed:
                raise _ApiError(400, -2021, "Order cancel-replace partially failed.") from failed
        return {
            "cancelResult": "SUCCESS",
            "newOrderResult": "SUCCESS",
            "cancelResponse": cancelled,
            "newOrderResponse": placed,
        }

    def _commission_rates(self) -> dict[str, Any]:
        maker = self.fees.maker if self.fees else Decimal(0)
        taker = self.fees.taker if self.fees else Decimal(0)
        return {
            "standardCommissionForOrder": {"maker": f"{maker:.8f}", "taker": f"{taker:.8f}"},
            "taxCommissionForOrder": {"maker": "0.00000000", "taker": "0.00000000"},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0.00000000",
            },
        }

    def _decimal(self, params: Mapping[str, str], name: str) -> Decimal:
        """A positive number in Binance's grammar (-1100), with at most the published
        precision (-1111)."""
        text = _required(params, name)
        if self.strict and not _NUMBER.fullmatch(text):
            raise _illegal(name, _NUMBER_TEXT)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise _illegal(name, _NUMBER_TEXT) from None
        if not value.is_finite() or value <= 0:
            raise _ApiError(400, -1013, f"Invalid {name}.")
        exponent = value.normalize().as_tuple().exponent
        if self.strict and isinstance(exponent, int) and -exponent > _PRECISION:
            raise _ApiError(400, -1111, f"Parameter '{name}' has too much precision.")
        return value

    def _find(self, key: SimKey, params: dict[str, str]) -> SimOrder:
        symbol = self._symbol(_required(params, "symbol"))
        return self._guard(lambda: self.market.find(key.account, symbol, **_lookup(params)))

    def _cancel(self, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
        """``DELETE /api/v3/order``: the order's id in ``origClientOrderId``, and the cancel's
        own id (``newClientOrderId`` or a generated one) in ``clientOrderId``."""
        symbol = self._symbol(_required(params, "symbol"))
        cancel_id = params.get("newClientOrderId")
        if cancel_id is not None and self.strict and not _CLIENT_ID.fullmatch(cancel_id):
            raise _illegal("newClientOrderId", _CLIENT_ID_TEXT)
        order = self._guard(lambda: self.market.cancel(key.account, symbol, **_lookup(params)))
        result = _order_json(order)
        result["origClientOrderId"] = order.client_order_id
        result["clientOrderId"] = cancel_id or f"cancel{time.time_ns()}"
        result["transactTime"] = order.updated_ms
        for name in ("time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty"):
            result.pop(name, None)  # the cancel answer does not carry these
        return result

    def _all_orders(self, key: SimKey, params: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/allOrders``: orders of one symbol from ``orderId`` on, oldest first,
        at most ``limit`` (500 by default, 1000 at most)."""
        symbol = self._symbol(_required(params, "symbol"))
        start = params.get("orderId")
        if start is not None:
            _order_id(start)
        limit = _limit(params, default=500, most=1000)
        begin, end = _day_range(params)
        with self.market.lock:
            orders = sorted(
                (
                    o
                    for o in self.market.orders.values()
                    if o.account == key.account
                    and o.symbol == symbol
                    and (start is None or o.order_id >= int(start))
                    and (begin is None or o.created_ms >= begin)
                    and (end is None or o.created_ms <= end)
                ),
                key=lambda o: o.order_id,
            )
        if start is None and begin is None:  # neither: the most recent
            return [_order_json(o) for o in orders[-limit:]]
        return [_order_json(o) for o in orders[:limit]]

    def _my_trades(self, key: SimKey, params: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/myTrades``: an order's trades; else from ``fromId`` on, or within
        ``startTime``..``endTime`` (24 hours at most; not with ``fromId``: -1128), oldest
        first, at most ``limit`` (500 by default, 1000 at most); with neither, the most
        recent ``limit``."""
        symbol = self._symbol(_required(params, "symbol"))
        order_id = params.get("orderId")
        if order_id is not None:
            _order_id(order_id)
        from_id = params.get("fromId")
        if from_id is not None:
            _order_id(from_id)
            if "startTime" in params or "endTime" in params:
                raise _ApiError(400, -1128, "Combination of optional parameters invalid.")
        limit = _limit(params, default=500, most=1000)
        begin, end = _day_range(params)
        trades = [
            t
            for t in self.market.trades(
                key.account, symbol, None if order_id is None else int(order_id)
            )
            if (from_id is None or t.trade_id >= int(from_id))
            and (begin is None or t.at_ms >= begin)
            and (end is None or t.at_ms <= end)
        ]
        if order_id is None and from_id is None and begin is None:
            trades = trades[-limit:]  # neither: the most recent
        return [_trade_json(t) for t in trades[:limit]]

    def _guard(self, action: Callable[[], SimOrder]) -> SimOrder:
        try:
            return action()
        except SimRejection as rej:
            code, status = {
                "bad_symbol": (-1121, 400),
                "duplicate": (-2010, 400),
                "insufficient": (-2010, 400),
                "would_take": (-2010, 400),
                "would_trigger": (-2010, 400),
                "filter": (-1013, 400),
                "unknown": (-2013, 400),
                "unknown_cancel": (-2011, 400),
            }[rej.reason]
            raise _ApiError(status, code, rej.detail) from None

    def _exchange_info(self, symbols: list[str]) -> dict[str, Any]:
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
                {
                    "rateLimitType": "ORDERS",
                    "interval": "DAY",
                    "intervalNum": 1,
                    "limit": limits.orders_day,
                },
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": i.symbol,
                    "status": "TRADING",
                    "baseAsset": i.base,
                    "baseAssetPrecision": _PRECISION,
                    "quoteAsset": i.quote,
                    "quotePrecision": _PRECISION,
                    "quoteAssetPrecision": _PRECISION,
                    "baseCommissionPrecision": _PRECISION,
                    "quoteCommissionPrecision": _PRECISION,
                    "orderTypes": list(_ORDER_TYPES),
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _text(i.tick_size),
                            "maxPrice": _text(i.max_price),
                            "tickSize": _text(i.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _text(i.min_quantity),
                            "maxQty": _text(i.max_quantity),
                            "stepSize": _text(i.step_size),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _text(i.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "NONE",
                    "allowedSelfTradePreventionModes": ["NONE"],
                }
                for i in (self.market.instruments[s] for s in symbols)
            ],
        }

    # --- wire helpers ----------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str, headers: dict[str, str]) -> SimResponse:
        return json_response(status, {"code": code, "msg": message}, headers)


_UNKNOWN_ERROR = "An unknown error occurred while processing the request."


def _parameters(query: str, body: str) -> dict[str, str]:
    """The request's parameters: -1101 for a name given twice in one part; a name in both
    the query string and the body takes the query's value ("General API information":
    "the query string parameter will be used")."""
    merged: dict[str, str] = {}
    for part in (body, query):  # the query last: its values win
        if not part:
            continue
        try:
            pairs = parse_qsl(part, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise _ApiError(400, -1100, "Illegal characters found in a parameter.") from None
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise _ApiError(400, -1101, "Duplicate values for a parameter detected.")
        merged.update(pairs)
    return merged


def _illegal(name: str, legal: str) -> _ApiError:
    return _ApiError(
        400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def _not_required(name: str) -> None:
    raise _ApiError(400, -1106, f"Parameter '{name}' sent when not required.")


def _order_id(text: str) -> int:
    if not _ORDER_ID.fullmatch(text):
        raise _illegal("orderId", "^[0-9]{1,20}$")
    return int(text)


def _strip_signature(text: str) -> str:
    """The signed payload: the part as sent, less its ``signature`` parameter."""
    if "signature=" not in text:
        return text
    kept = [p for p in text.split("&") if not unquote(p).startswith("signature=")]
    return "&".join(kept)


def _lookup(params: Mapping[str, str]) -> dict[str, Any]:
    order_id = params.get("orderId")
    client_id = params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise _ApiError(
            400,
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        )
    return {
        "order_id": None if order_id is None else _order_id(order_id),
        "client_order_id": client_id,
    }


def _limit(params: Mapping[str, str], *, default: int, most: int) -> int:
    """``limit``: a whole number 1 to ``most`` (-1100 outside the number grammar, -1130
    outside the range), ``default`` when absent."""
    text = params.get("limit")
    if text is None:
        return default
    if not text.isdigit():
        raise _illegal("limit", "^[0-9]{1,20}$")
    if not 1 <= int(text) <= most:
        raise _ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return int(text)


def _time(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise _illegal(name, "^[0-9]{1,20}$")
    return int(text)


def _trade_json(trade: SimTrade) -> dict[str, Any]:
    order = trade.order
    fee = order.fees.get(trade.trade_id)
    return {
        "symbol": order.symbol,
        "id": trade.trade_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "price": _text(trade.price),
        "qty": _text(trade.quantity),
        "quoteQty": _text(trade.price * trade.quantity),
        "commission": _text(fee[0]) if fee else "0",
        "commissionAsset": fee[1] if fee else "BNB",
        "time": trade.at_ms or order.updated_ms,
        "isBuyer": order.side == "BUY",
        "isMaker": not fee[2] if fee else order.type == "LIMIT",
        "isBestMatch": True,
    }


_DAY_MS = 24 * 3600 * 1000
_NINETY_DAYS_MS = 90 * _DAY_MS


def _day_range(params: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``startTime``/``endTime`` of myTrades and allOrders: 24 hours apart at most
    (-1127); one alone opens a 24-hour window from (or to) it, as Binance does."""
    begin, end = _time(params, "startTime"), _time(params, "endTime")
    if begin is not None and end is not None:
        if end - begin > _DAY_MS or end < begin:
            raise _ApiError(400, -1127, "More than 24 hours between startTime and endTime.")
        return begin, end
    if begin is not None:
        return begin, begin + _DAY_MS
    if end is not None:
        return end - _DAY_MS, end
    return None, None


def _transfer_range(market: Market, params: Mapping[str, str]) -> tuple[int, int]:
    """The deposit and withdrawal histories' range: the last 90 days unless told, and
    never more than 90 days (-1127)."""
    now = market._now_ms()
    begin, end = _time(params, "startTime"), _time(params, "endTime")
    end = end if end is not None else (now if begin is None else begin + _NINETY_DAYS_MS)
    begin = begin if begin is not None else end - _NINETY_DAYS_MS
    if end - begin > _NINETY_DAYS_MS or end < begin:
        raise _ApiError(400, -1127, "Time interval must be within 0-90 days.")
    return begin, end


def _paged_transfers(
    market: Market, key: SimKey, params: Mapping[str, str], kind: str
) -> list[Any]:
    begin, end = _transfer_range(market, params)
    offset_text = params.get("offset", "0")
    if not offset_text.isdigit():
        raise _illegal("offset", "^[0-9]{1,9}$")
    limit = _limit(params, default=1000, most=1000)
    coin = params.get("coin")
    rows = [
        t
        for t in transfers_of(market, key.account, kind)
        if begin <= t.at_ms <= end and (coin is None or t.asset == coin)
    ]
    offset = int(offset_text)
    return rows[offset : offset + limit]


def _deposits(market: Market, key: SimKey, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """``GET /sapi/v1/capital/deposit/hisrec``, newest first."""
    return [
        {
            "id": str(t.transfer_id),
            "amount": _text(t.amount),
            "coin": t.asset,
            "network": t.network,
            "status": 1,
            "address": t.address,
            "addressTag": "",
            "txId": t.tx_id,
            "insertTime": t.at_ms,
            "transferType": 0,
            "confirmTimes": "12/12",
            "unlockConfirm": 0,
            "walletType": 0,
        }
        for t in _paged_transfers(market, key, params, "deposit")
    ]


def _withdrawals(market: Market, key: SimKey, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """``GET /sapi/v1/capital/withdraw/history``, newest first; ``applyTime`` is UTC text."""
    return [
        {
            "id": f"{t.transfer_id:032x}",
            "amount": _text(t.amount),
            "transactionFee": _text(t.fee),
            "coin": t.asset,
            "status": 6,
            "address": t.address,
            "txId": t.tx_id,
            "applyTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.at_ms // 1000)),
            "network": t.network,
            "transferType": 0,
            "confirmNo": 12,
            "walletType": 0,
        }
        for t in _paged_transfers(market, key, params, "withdrawal")
    ]
