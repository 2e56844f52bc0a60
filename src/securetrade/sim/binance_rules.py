"""What Binance publishes, and the checks made against it before the engine is asked.

The spot REST reference's tables (each endpoint's parameters and weight, the published
limits, the grammars its -1100 answers state, the order types and precision exchangeInfo
lists) and the checks on a request's parameters: names read, symbols, numbers, ids, limits
and time ranges. The lowest layer of the Binance dialect (``binance``): market data,
trading and the gateway build on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote

from ..models import INTERVALS
from .binance_wire import _ApiError, _required
from .dialect import Dialect, DialectStats
from .engine import FeeSchedule, SimOrder, SimRejection

__all__ = ["BINANCE_FEES", "SimLimits"]


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


# Kline intervals (market-data-endpoints, "Kline/Candlestick data") in milliseconds: ours
# (models.INTERVALS) but "2w", which Binance does not offer, and its "1s"; "1M" (a
# calendar month) is not served here.
_KLINE_MS = {
    "1s": 1000,
    **{name: seconds * 1000 for name, seconds in INTERVALS.items() if name != "2w"},
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


class _BinanceRules(Dialect[_Stats]):
    """The checks every Binance endpoint shares; the dialect (``binance_gateway``) sets
    the attributes declared here."""

    limits: SimLimits
    strict: bool
    fees: FeeSchedule | None

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
