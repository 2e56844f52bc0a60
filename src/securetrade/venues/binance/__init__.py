"""Binance spot REST: endpoint, error and rate-limit tables, the signed encoding, parsers.

Signing follows Binance's rule since 2026-01-15: the payload is the percent-encoded query
string followed by the percent-encoded body, and the signature (HMAC-SHA256 hex, or
Ed25519 base64) covers exactly those bytes. ``signature`` is appended last.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..._checks import instance, shown, text
from ..._drafts import draft_of
from ...core.store import derive_client_order_id, is_ours
from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    DuplicateOrder,
    InsufficientFunds,
    InvalidRequest,
    IpBanned,
    OrderNotFound,
    RateLimited,
    TimestampRejected,
    VenueRejected,
)
from ...keys import ApiKey, Environment, KeyKind, KeyPermissions, Scope
from ...models import (
    CRYPTO_TIME_IN_FORCE,
    INTERVALS,
    Balance,
    BookLevel,
    Candle,
    Fill,
    Instrument,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    Ticker,
)
from ...ratelimit import CostRule, LimitScope, RateLimit
from ...signing import Signer, encode_query, signer_for
from ...signing.encoding import escape
from ...transport.base import HttpRequest, HttpResponse
from ..base import (
    Endpoint,
    ErrorRule,
    Freshness,
    Op,
    Outcome,
    Params,
    Verdict,
    check_amount,
    check_answer,
    check_candles,
    check_cursor,
    check_order,
    check_prepare,
    check_window,
    read_json,
    reads_answer,
    refusal_not_known,
    unreadable,
    wire_decimal,
    within,
)
from . import history
from .lists import OCO_PATH, limit_leg, oco_params

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["BINANCE", "BinanceSpot", "ERRORS", "RATE_LIMITS"]

_W = "REQUEST_WEIGHT"
_O = "ORDERS"

# Read once, at import, as in models.common (a member read off its class is slow in 3.11).
_PLACE_ORDER, _OCO, _OK = Op.PLACE_ORDER, OrderType.OCO, Verdict.OK
# A signed POST (every order) is built unfrozen, then made an HttpRequest (see draft_of):
# the frozen class's own __init__ costs 7K instructions, a fifth of preparing an order.
_RequestDraft = draft_of(HttpRequest)

# Published spot limits: 6000 weight per minute per IP, 100 orders per 10 s and 200 000
# per day per account. Replaced by what exchangeInfo publishes once it has been read.
_SCOPES = {_W: LimitScope.IP, _O: LimitScope.ACCOUNT}
RATE_LIMITS = (
    RateLimit(_W, 60.0, 6000, header="x-mbx-used-weight-1m", scope=LimitScope.IP),
    RateLimit(_O, 10.0, 100, header="x-mbx-order-count-10s", scope=LimitScope.ACCOUNT),
    RateLimit(_O, 86400.0, 200_000, header="x-mbx-order-count-1d", scope=LimitScope.ACCOUNT),
)
# Weights that depend on the parameters: leaving out the symbol asks about every symbol.
_ALL_SYMBOLS_TICKER = (CostRule("symbol", {_W: 4}, absent=True),)
_ALL_SYMBOLS_OPEN_ORDERS = (CostRule("symbol", {_W: 80}, absent=True),)
# GET /api/v3/depth weighs by ``limit`` (default 100): up to 100: 5, 500: 25, 1000: 50,
# 5000: 250 (developers.binance.com .../rest-api/market-data-endpoints, "Order book").
_DEPTH_WEIGHTS = (
    CostRule("limit", {_W: 5}, absent=True),
    CostRule("limit", {_W: 5}, up_to=100),
    CostRule("limit", {_W: 25}, up_to=500),
    CostRule("limit", {_W: 50}, up_to=1000),
)
# An OCO (sent to orderList/oco when listClientOrderId is present) is two orders.
_ORDER_LISTS = (CostRule("listClientOrderId", {_W: 1, _O: 2}),)
_DEPTH_MAX = 5000
_PAGE_MAX = 1000  # klines and trades answer at most this many
# Our candle intervals as Binance names them (the same, less "2w").
_KLINE_INTERVALS = {name: name for name in INTERVALS if name != "2w"}
_INTERVALS = {"SECOND": (1, "s"), "MINUTE": (60, "m"), "HOUR": (3600, "h"), "DAY": (86400, "d")}

ENDPOINTS = {
    e.op: e
    for e in (
        Endpoint(Op.SERVER_TIME, "GET", "/api/v3/time", False, None, {_W: 1}),
        Endpoint(Op.INSTRUMENTS, "GET", "/api/v3/exchangeInfo", False, None, {_W: 20}),
        Endpoint(
            Op.TICKER_PRICE,
            "GET",
            "/api/v3/ticker/price",
            False,
            None,
            {_W: 2},
            _ALL_SYMBOLS_TICKER,
        ),
        Endpoint(Op.TICKER, "GET", "/api/v3/ticker/24hr", False, None, {_W: 2}),
        Endpoint(Op.ORDER_BOOK, "GET", "/api/v3/depth", False, None, {_W: 250}, _DEPTH_WEIGHTS),
        Endpoint(Op.CANDLES, "GET", "/api/v3/klines", False, None, {_W: 2}),
        Endpoint(Op.PUBLIC_TRADES, "GET", "/api/v3/trades", False, None, {_W: 25}),
        Endpoint(
            Op.PLACE_ORDER,
            "POST",
            "/api/v3/order",
            True,
            Scope.TRADE,
            {_W: 1, _O: 1},
            _ORDER_LISTS,
        ),
        Endpoint(Op.CANCEL_ORDER, "DELETE", "/api/v3/order", True, Scope.CANCEL, {_W: 1}),
        Endpoint(Op.GET_ORDER, "GET", "/api/v3/order", True, Scope.READ, {_W: 4}),
        Endpoint(
            Op.OPEN_ORDERS,
            "GET",
            "/api/v3/openOrders",
            True,
            Scope.READ,
            {_W: 6},
            _ALL_SYMBOLS_OPEN_ORDERS,
        ),
        Endpoint(Op.BALANCES, "GET", "/api/v3/account", True, Scope.READ, {_W: 20}),
        Endpoint(Op.TRADES, "GET", "/api/v3/myTrades", True, Scope.READ, {_W: 20}),
        Endpoint(
            Op.WITHDRAW, "POST", "/sapi/v1/capital/withdraw/apply", True, Scope.WITHDRAW, {_W: 1}
        ),
        Endpoint(
            Op.KEY_PERMISSIONS, "GET", "/sapi/v1/account/apiRestrictions", True, Scope.READ, {_W: 1}
        ),
        Endpoint(Op.TRADE_HISTORY, "GET", "/api/v3/myTrades", True, Scope.READ, {_W: 20}),
        Endpoint(Op.ORDER_HISTORY, "GET", "/api/v3/allOrders", True, Scope.READ, {_W: 20}),
        Endpoint(
            Op.DEPOSIT_HISTORY, "GET", "/sapi/v1/capital/deposit/hisrec", True, Scope.READ, {_W: 1}
        ),
        Endpoint(
            Op.WITHDRAWAL_HISTORY,
            "GET",
            "/sapi/v1/capital/withdraw/history",
            True,
            Scope.READ,
            {_W: 1},
        ),
    )
}

# Venue error code -> (verdict, exception type). Codes not listed fall back on the HTTP
# status: 5xx is ambiguous, 4xx a refusal of a read or cancel but ambiguous for a create
# (venues.base.refusal_not_known).
ERRORS: Mapping[int, ErrorRule] = {
    -1000: (Verdict.AMBIGUOUS, AmbiguousOutcome),  # UNKNOWN
    -1003: (Verdict.RETRYABLE, RateLimited),  # TOO_MANY_REQUESTS
    -1006: (Verdict.AMBIGUOUS, AmbiguousOutcome),  # UNEXPECTED_RESP
    -1007: (Verdict.AMBIGUOUS, AmbiguousOutcome),  # TIMEOUT: execution status unknown
    -1008: (Verdict.RETRYABLE, RateLimited),  # SERVER_BUSY
    -1013: (Verdict.REJECTED, VenueRejected),  # filter failure
    -1015: (Verdict.RETRYABLE, RateLimited),  # TOO_MANY_ORDERS
    -1021: (Verdict.RETRYABLE, TimestampRejected),  # INVALID_TIMESTAMP
    -1022: (Verdict.REJECTED, AuthenticationRejected),  # INVALID_SIGNATURE
    -1100: (Verdict.REJECTED, VenueRejected),  # ILLEGAL_CHARS
    -1102: (Verdict.REJECTED, VenueRejected),  # MANDATORY_PARAM_EMPTY_OR_MALFORMED
    -1111: (Verdict.REJECTED, VenueRejected),  # BAD_PRECISION
    -1121: (Verdict.REJECTED, VenueRejected),  # BAD_SYMBOL
    -2010: (Verdict.REJECTED, VenueRejected),  # NEW_ORDER_REJECTED (refined below)
    -2011: (Verdict.REJECTED, OrderNotFound),  # CANCEL_REJECTED
    -2013: (Verdict.REJECTED, OrderNotFound),  # NO_SUCH_ORDER
    # order/cancelReplace with STOP_ON_FAILURE: the cancel failed, nothing was placed
    # (-2022), or the cancel succeeded and the new order was refused (-2021): either way
    # the new order is certainly not live.
    -2021: (Verdict.REJECTED, VenueRejected),
    -2022: (Verdict.REJECTED, VenueRejected),
    -2014: (Verdict.REJECTED, AuthenticationRejected),  # BAD_API_KEY_FMT
    -2015: (Verdict.REJECTED, AuthenticationRejected),  # REJECTED_MBX_KEY
}

# Binance's "11xx - Request issues" (documented as a category): the request was refused
# as malformed or invalid before anything was done, whichever code of the range it is.
_REQUEST_ISSUES = (-1199, -1100)

# apiRestrictions switch -> the scopes it grants (one switch can grant several).
_PERMISSION_SWITCHES: Mapping[str, frozenset[Scope]] = {
    "enableReading": frozenset({Scope.READ}),
    "enableSpotAndMarginTrading": frozenset({Scope.TRADE, Scope.CANCEL}),
    "enableWithdrawals": frozenset({Scope.WITHDRAW}),
    "enableInternalTransfer": frozenset({Scope.TRANSFER}),
    "permitsUniversalTransfer": frozenset({Scope.TRANSFER}),
    "enableMargin": frozenset({Scope.MARGIN}),
    "enableFutures": frozenset({Scope.FUTURES}),
    "enableVanillaOptions": frozenset({Scope.OPTIONS}),
    "enablePortfolioMarginTrading": frozenset({Scope.MARGIN, Scope.FUTURES}),
    "enableFixApiTrade": frozenset({Scope.TRADE, Scope.CANCEL}),
    "enableFixReadOnly": frozenset({Scope.READ}),
}

_SYMBOL = re.compile(r"[A-Z0-9_.-]{1,20}")
# newClientOrderId: ^[a-zA-Z0-9-_]{1,36}$, as Binance's -1100 answer states it
# (binance-spot-api-docs pull request 34); our derived ids are 32 of [0-9a-z].
CLIENT_ORDER_ID = re.compile(r"[a-zA-Z0-9_-]{1,36}")
# What a successful answer must look like before it is read: an order answer that is not
# an order (a proxy's "{}", a page of another API) is unreadable, so ambiguous, and the
# core asks the venue about the order (or reads again) instead of failing in the parser.
# A cancel's answer is left to parse_order, which makes an unreadable one ambiguous too:
# sending a cancel again would only be answered "unknown order".
_SHAPES: Mapping[Op, Callable[[Any], bool]] = {
    Op.PLACE_ORDER: lambda p: isinstance(p, dict) and "orderId" in p,
    Op.GET_ORDER: lambda p: isinstance(p, dict) and "orderId" in p,
    Op.OPEN_ORDERS: lambda p: isinstance(p, list),
    Op.TRADE_HISTORY: lambda p: isinstance(p, list),
    Op.ORDER_HISTORY: lambda p: isinstance(p, list),
    Op.DEPOSIT_HISTORY: lambda p: isinstance(p, list),
    Op.WITHDRAWAL_HISTORY: lambda p: isinstance(p, list),
}

_CANCEL_REPLACE = "/api/v3/order/cancelReplace"  # weight 1, one order on the order count
_TYPES = {"LIMIT_MAKER": "LIMIT"}  # a post-only limit order, read back as a limit order
_TYPE_OF = {**{t.value: t for t in OrderType}, **{k: OrderType(v) for k, v in _TYPES.items()}}
_STATUS = {s.value: s for s in OrderStatus}
_STATUS["PENDING_CANCEL"] = OrderStatus.CANCELED
_STATUS["EXPIRED_IN_MATCH"] = OrderStatus.EXPIRED


class BinanceSpot:
    """The Binance spot venue adapter."""

    name = "binance"
    endpoints: Mapping[Op, Endpoint] = ENDPOINTS
    errors: Mapping[int, ErrorRule] = ERRORS
    rate_limits: Sequence[RateLimit] = RATE_LIMITS
    base_urls: Mapping[Environment, str] = {
        Environment.LIVE: "https://api.binance.com",
        Environment.TESTNET: "https://testnet.binance.vision",
    }
    freshness = Freshness.TIMESTAMP
    recv_window_ms = 5000
    order_acks: frozenset[Op] = frozenset()  # order endpoints answer with the order itself
    atomic_replace = True  # amend sends order/cancelReplace: the cancel and the new order
    order_types = frozenset(OrderType)  # every one: stops, take-profits, OCO (order lists)
    post_only = True  # LIMIT_MAKER
    quote_quantity = frozenset(Side)  # MARKET orders with quoteOrderQty, either side
    time_in_force = CRYPTO_TIME_IN_FORCE  # GTC, IOC, FOK: no sessions

    def check_symbol(self, symbol: str) -> None:
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequest(
                f"symbol {shown(symbol)} is not a Binance spot symbol (A-Z 0-9 _ . -)"
            )

    def signer(self, key: ApiKey) -> Signer:
        """HMAC-SHA256 (hex), Ed25519 or RSA PKCS#1 v1.5 (base64), as the key's kind says."""
        instance("key", key, ApiKey, optional=False)
        if key.kind not in (KeyKind.HMAC, KeyKind.ED25519, KeyKind.RSA):
            raise InvalidRequest(f"Binance keys are HMAC, Ed25519 or RSA, not {key.kind.value}")
        return signer_for(key)

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        return derive_client_order_id(self.name, account, idempotency_key)

    def owns_client_order_id(self, client_order_id: str) -> bool:
        return is_ours(client_order_id)

    # --- requests -----------------------------------------------------------------------

    def prepare(
        self,
        endpoint: Endpoint,
        params: Params,
        *,
        key_id: str,
        signer: Signer | None,
        timestamp_ms: int,
        nonce: int | None = None,
    ) -> HttpRequest:
        check_prepare(endpoint, params, key_id, signer, timestamp_ms, nonce)
        headers: tuple[tuple[str, str], ...] = ()
        if endpoint.signed:
            if signer is None:
                raise InvalidRequest(f"{endpoint.op.value} needs a signing key")
            params = [
                *params,
                ("recvWindow", str(self.recv_window_ms)),
                ("timestamp", str(timestamp_ms)),
            ]
            headers = (("X-MBX-APIKEY", key_id),)
        path = endpoint.path
        if endpoint.op is _PLACE_ORDER:
            # One look at the names (dict() builds in C: this runs on every order).
            names = dict(params)
            if "cancelReplaceMode" in names:
                path = _CANCEL_REPLACE  # the same new order, with the cancel of the one it replaces
            elif "listClientOrderId" in names:
                path = OCO_PATH  # an order list: the OCO's two legs
        encoded = encode_query(params)
        if endpoint.signed:
            assert signer is not None
            signature = escape(signer.sign(encoded.encode("ascii")))
            encoded = f"{encoded}&signature={signature}" if encoded else f"signature={signature}"
        if endpoint.method == "POST":
            request = _RequestDraft(
                "POST",
                path,
                (*headers, ("Content-Type", "application/x-www-form-urlencoded")),
                encoded.encode("ascii"),
            )
            request.__class__ = HttpRequest
            return request  # type: ignore[no-any-return]
        target = endpoint.path + ("?" + encoded if encoded else "")
        return HttpRequest(endpoint.method, target, headers)

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        check_order(order, client_order_id)
        # The fields from __dict__: a model's attribute read goes through pydantic's
        # __getattr__ hook, slowly, and this runs for every order sent.
        fields = order.__dict__
        kind = fields["type"]
        if kind is _OCO:
            return oco_params(order, client_order_id)
        post_only, tif, quote = (
            fields["post_only"],
            fields["time_in_force"],
            fields["quote_quantity"],
        )
        # A post-only limit order is Binance's LIMIT_MAKER, which takes no time in force.
        params: Params = [
            ("symbol", fields["symbol"]),
            ("side", fields["side"]._value_),
            ("type", "LIMIT_MAKER" if post_only else kind._value_),
        ]
        if tif is not None and not post_only:
            params.append(("timeInForce", tif._value_))
        if quote is not None:  # a MARKET order: spend or receive this much
            params.append(("quoteOrderQty", wire_decimal(quote)))
        else:
            params.append(("quantity", wire_decimal(order.base_quantity)))
        price, stop = fields["price"], fields["stop_price"]
        if price is not None:
            params.append(("price", wire_decimal(price)))
        if stop is not None:
            params.append(("stopPrice", wire_decimal(stop)))
        params.append(("newClientOrderId", client_order_id))
        params.append(("newOrderRespType", "FULL"))
        if order.replaces is not None:  # amend: cancel it and place this, atomically
            params += [("cancelReplaceMode", "STOP_ON_FAILURE"), ("cancelOrderId", order.replaces)]
        return params

    def open_orders_params(self, symbol: str | None) -> Params:
        return [] if symbol is None else [("symbol", symbol)]

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        if order_id is not None:
            text("order_id", order_id)
        if client_order_id is not None:
            text("client_order_id", client_order_id)
        params: Params = [("symbol", symbol)]
        if order_id is not None:
            params.append(("orderId", order_id))
        elif client_order_id is not None:
            params.append(("origClientOrderId", client_order_id))
        else:
            raise InvalidRequest("give order_id or client_order_id")
        return params

    def trades_params(self, symbol: str, order_id: str) -> Params:
        """``GET /api/v3/myTrades`` for one order (Binance filters trades by order id)."""
        return [("symbol", symbol), ("orderId", order_id)]

    # --- account history (venues/binance/history.py) ---------------------------------------

    def history_params(self, made: Window, cursor: str | None) -> Params:
        """One page of trades, orders, deposits or withdrawals: see :mod:`.history`."""
        check_window(made)
        cursor = check_cursor(cursor)
        return history.history_params(made, cursor)

    @reads_answer
    def parse_history(
        self, made: Window, cursor: str | None, payload: Any
    ) -> tuple[list[Any], str | None]:
        """One page of ``myTrades``, ``allOrders`` or a transfer history as our models,
        within the call's range, and the cursor of the next page (``None``: the last)."""
        return history.parse_history(made, cursor, payload, self.parse_order)

    # --- market data ----------------------------------------------------------------------

    intervals: Mapping[str, str] = _KLINE_INTERVALS

    def ticker_params(self, symbol: str) -> Params:
        """``GET /api/v3/ticker/24hr`` for one symbol (weight 2)."""
        return [("symbol", symbol)]

    def order_book_params(self, symbol: str, depth: int) -> Params:
        """``GET /api/v3/depth``: ``limit`` 1 to 5000 levels a side."""
        within("depth", depth, _DEPTH_MAX)
        return [("symbol", symbol), ("limit", str(depth))]

    def candles_params(
        self, symbol: str, interval: str, since_ms: int | None, limit: int | None
    ) -> Params:
        """``GET /api/v3/klines``: from ``startTime`` on, else the most recent; at most 1000."""
        check_candles(interval, since_ms)
        wire = self.intervals.get(interval)
        if wire is None:
            raise InvalidRequest(
                f"Binance offers the intervals {', '.join(self.intervals)}; not {shown(interval)}"
            )
        params: Params = [("symbol", symbol), ("interval", wire)]
        if since_ms is not None:
            params.append(("startTime", str(since_ms)))
        if limit is not None:
            within("limit", limit, _PAGE_MAX)
            params.append(("limit", str(limit)))
        return params

    def public_trades_params(self, symbol: str, limit: int | None) -> Params:
        """``GET /api/v3/trades``: the most recent trades, at most 1000."""
        params: Params = [("symbol", symbol)]
        if limit is not None:
            within("limit", limit, _PAGE_MAX)
            params.append(("limit", str(limit)))
        return params

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        check_amount(amount)
        if network is not None:  # its truth is asked next: no caller's __bool__
            network = text("network", network, empty=True)
        params: Params = [("coin", asset), ("address", address), ("amount", wire_decimal(amount))]
        if network:
            params.append(("network", network))
        return params

    # --- responses ----------------------------------------------------------------------

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        check_answer(endpoint, response)
        payload = read_json(response.body)
        status = response.status
        if 200 <= status < 300 and not (
            isinstance(payload, dict)
            and "code" in payload
            and isinstance(payload.get("code"), int)
            and payload["code"] < 0
        ):
            if endpoint.op is _PLACE_ORDER and isinstance(payload, dict):
                # order/cancelReplace: both parts succeeded; the new order is the answer
                payload = payload.get("newOrderResponse", payload)
                payload = limit_leg(payload)  # an OCO's answer: its limit leg is the order
            shape = _SHAPES.get(endpoint.op)
            if payload is None:
                return unreadable(endpoint, status, self.name, "not JSON")
            if shape is not None and not shape(payload):
                return unreadable(endpoint, status, self.name, "not the expected shape")
            return Outcome(_OK, payload)
        code = payload.get("code") if isinstance(payload, dict) else None
        message = payload.get("msg") if isinstance(payload, dict) else None
        text = str(message or f"HTTP {status}")[:300]
        retry_after = _seconds(response.headers.get("retry-after"))
        if status == 418:
            return Outcome(
                Verdict.RETRYABLE,
                payload,
                IpBanned(text, venue=self.name, code=code, retry_after=retry_after),
                retry_after=retry_after,
            )
        if status == 429:
            return Outcome(
                Verdict.RETRYABLE,
                payload,
                RateLimited(text, venue=self.name, code=code, retry_after=retry_after),
                retry_after=retry_after,
            )
        if isinstance(code, int) and code in ERRORS:
            verdict, kind = ERRORS[code]
            duplicate = False
            if code == -2010:
                lowered = text.lower()
                if "duplicate" in lowered:
                    kind, duplicate = DuplicateOrder, True
                elif "insufficient balance" in lowered:
                    kind = InsufficientFunds
            if status >= 500 and verdict is Verdict.REJECTED:
                verdict, kind = Verdict.AMBIGUOUS, AmbiguousOutcome
            return Outcome(
                verdict,
                payload,
                kind(text, venue=self.name, code=code),
                clock_skew=code == -1021,
                duplicate=duplicate,
                retry_after=retry_after,
            )
        if status >= 500:
            return Outcome(
                Verdict.AMBIGUOUS, payload, AmbiguousOutcome(text, venue=self.name, code=code)
            )
        error = VenueRejected(text, venue=self.name, code=code)
        if isinstance(code, int) and _REQUEST_ISSUES[0] <= code <= _REQUEST_ISSUES[1]:
            return Outcome(Verdict.REJECTED, payload, error)  # refused as it was read
        # No code this table knows: a 4xx page from something in front of the venue, or a
        # new code. Neither proves that an order was not placed.
        return refusal_not_known(endpoint, status, self.name, error, payload)

    @reads_answer
    def parse_order(self, payload: Any) -> Order:
        # from_fields: the dicts built here go to the validators as they are (one answer
        # per order; a constructor call would turn each into keywords and back).
        fills = tuple(
            Fill.from_fields(
                {
                    "price": f["price"],
                    "quantity": f["qty"],
                    "commission": f.get("commission", "0"),
                    "commission_asset": f.get("commissionAsset"),
                    "trade_id": None if f.get("tradeId") is None else str(f["tradeId"]),
                }
            )
            for f in payload.get("fills", ())
        )
        price = payload.get("price")
        stamp = payload.get("time", payload.get("transactTime"))
        tif = payload.get("timeInForce")
        kind = payload["type"]
        # A dict of the usual names, not OrderType(...): the enum's call is Python-level.
        order_type = _TYPE_OF.get(kind) if type(kind) is str else None
        if order_type is None:  # anything else as OrderType reads it (or its ValueError)
            order_type = OrderType(_TYPES.get(kind, kind))
        if kind == "LIMIT_MAKER" and payload.get("orderListId", -1) != -1:
            order_type = _OCO  # the limit leg of an OCO: the order we placed
        stop = payload.get("stopPrice")
        # Binance answers "0.00000000" for an order sized in the base asset.
        asked = payload.get("origQuoteOrderQty")
        asked = asked if asked is not None and Decimal(str(asked)) > 0 else None
        return Order.from_fields(
            {
                "venue": self.name,
                "symbol": payload["symbol"],
                "order_id": str(payload["orderId"]),
                # A cancel answers the order's id in origClientOrderId; clientOrderId is the
                # cancel's own (Binance "Cancel order").
                "client_order_id": payload.get("origClientOrderId") or payload["clientOrderId"],
                "side": payload["side"],
                "type": order_type,
                "status": _STATUS[payload["status"]],
                "quantity": payload["origQty"],
                "price": price if order_type.takes_price and price is not None else None,
                "stop_price": stop if order_type.is_conditional and stop is not None else None,
                "filled_quantity": payload.get("executedQty", "0"),
                "quote_quantity": payload.get("cummulativeQuoteQty", "0"),
                "time_in_force": tif if order_type.takes_price and tif else None,
                "created_at": None
                if stamp is None
                else datetime.fromtimestamp(stamp / 1000, tz=timezone.utc),
                "fills": fills,
                "quote_order_quantity": asked,
            }
        )

    @reads_answer
    def parse_trades(self, payload: Any) -> list[Fill]:
        """``myTrades`` items as fills, identified by the venue's trade id."""
        return [
            Fill(
                price=t["price"],
                quantity=t["qty"],
                commission=t.get("commission", "0"),
                commission_asset=t.get("commissionAsset"),
                trade_id=str(t["id"]),
            )
            for t in payload
        ]

    @reads_answer
    def parse_orders(self, payload: Any) -> list[Order]:
        return [self.parse_order(item) for item in payload]

    @reads_answer
    def parse_balances(self, payload: Any) -> list[Balance]:
        return [
            Balance(asset=b["asset"], free=b["free"], locked=b["locked"])
            for b in payload.get("balances", ())
        ]

    @reads_answer
    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        result = {}
        for sym in payload.get("symbols", ()):
            filters = {f["filterType"]: f for f in sym.get("filters", ())}
            price_filter = filters.get("PRICE_FILTER", {})
            lot = filters.get("LOT_SIZE", {})
            notional = filters.get("NOTIONAL", filters.get("MIN_NOTIONAL", {}))
            result[sym["symbol"]] = Instrument(
                symbol=sym["symbol"],
                base_asset=sym["baseAsset"],
                quote_asset=sym["quoteAsset"],
                tick_size=price_filter.get("tickSize", "0"),
                step_size=lot.get("stepSize", "0"),
                min_quantity=lot.get("minQty", "0"),
                min_notional=notional.get("minNotional", "0"),
                trading=sym.get("status", "TRADING") == "TRADING",
                quote_step=_places_step(sym.get("quoteAssetPrecision")),
            )
        return result

    @reads_answer
    def parse_server_time(self, payload: Any) -> int:
        return int(payload["serverTime"])

    @reads_answer
    def parse_price(self, payload: Any) -> Decimal:
        return Decimal(str(payload["price"]))

    @reads_answer
    def parse_withdrawal(self, payload: Any) -> str:
        return str(payload["id"])

    @reads_answer
    def parse_ticker(self, payload: Any, symbol: str) -> Ticker:
        """``ticker/24hr`` of one symbol: the rolling 24 h window ending at ``closeTime``."""
        return Ticker(
            symbol=symbol,
            last=payload["lastPrice"],
            bid=_some(payload.get("bidPrice")),
            ask=_some(payload.get("askPrice")),
            bid_quantity=payload.get("bidQty"),
            ask_quantity=payload.get("askQty"),
            open=payload.get("openPrice"),
            high=payload.get("highPrice"),
            low=payload.get("lowPrice"),
            volume=payload.get("volume"),
            quote_volume=payload.get("quoteVolume"),
            at=_moment(payload.get("closeTime")),
        )

    @reads_answer
    def parse_order_book(self, payload: Any, symbol: str) -> OrderBook:
        """``depth``: ``[price, quantity]`` text pairs, best first on each side."""
        return OrderBook(
            symbol=symbol,
            bids=tuple(BookLevel(price=p, quantity=q) for p, q in payload["bids"]),
            asks=tuple(BookLevel(price=p, quantity=q) for p, q in payload["asks"]),
            sequence=int(payload["lastUpdateId"]),
        )

    @reads_answer
    def parse_candles(self, payload: Any, symbol: str, interval: str) -> list[Candle]:
        """``klines`` rows: open time, O, H, L, C, volume, close time, quote volume, trades."""
        if not isinstance(payload, list):
            raise TypeError("klines answer a list")
        return [
            Candle(
                symbol=symbol,
                interval=interval,
                opened_at=_moment(row[0]),
                open=row[1],
                high=row[2],
                low=row[3],
                close=row[4],
                volume=row[5],
                quote_volume=row[7],
                trades=int(row[8]),
            )
            for row in payload
        ]

    @reads_answer
    def parse_public_trades(self, payload: Any, symbol: str) -> list[PublicTrade]:
        """``trades``, oldest first; the taker sold when the buyer was the maker."""
        if not isinstance(payload, list):
            raise TypeError("trades answer a list")
        return [
            PublicTrade(
                symbol=symbol,
                trade_id=str(t["id"]),
                price=t["price"],
                quantity=t["qty"],
                at=_moment(t["time"]),
                side=Side.SELL if t["isBuyerMaker"] else Side.BUY,
            )
            for t in payload
        ]

    @reads_answer
    def parse_key_permissions(self, payload: Any) -> KeyPermissions:
        """``GET /sapi/v1/account/apiRestrictions`` as the scopes each enabled switch grants."""
        switches = {
            name: scopes
            for name, scopes in _PERMISSION_SWITCHES.items()
            if payload.get(name) is True
        }
        unknown = tuple(
            sorted(
                name
                for name, value in payload.items()
                if value is True and name not in _PERMISSION_SWITCHES and name != "ipRestrict"
            )
        )
        restricted = payload.get("ipRestrict")
        return KeyPermissions(
            switches, restricted if isinstance(restricted, bool) else None, unknown
        )

    @reads_answer
    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        """``exchangeInfo.rateLimits`` as limits, with the header that reports each one."""
        result = []
        for item in payload.get("rateLimits", ()):
            kind, interval = item.get("rateLimitType"), item.get("interval")
            if kind not in (_W, _O) or interval not in _INTERVALS:
                continue
            unit, letter = _INTERVALS[interval]
            number = int(item.get("intervalNum", 1))
            prefix = "x-mbx-used-weight-" if kind == _W else "x-mbx-order-count-"
            result.append(
                RateLimit(
                    kind,
                    float(unit * number),
                    int(item["limit"]),
                    header=f"{prefix}{number}{letter}",
                    scope=_SCOPES[kind],
                )
            )
        return result


BINANCE = BinanceSpot()


def _moment(ms: Any) -> Any:
    """Milliseconds since the epoch as an aware datetime (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def _some(price: Any) -> Any:
    """A price that may be ``"0.00000000"`` for "none" (an empty side): ``None`` then."""
    if price is None or Decimal(str(price)) == 0:
        return None
    return price


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    # "nan", "inf" and negative values parse as floats but are no pause anyone can honour.
    return seconds if 0 <= seconds < float("inf") else None


def _places_step(places: Any) -> Decimal:
    """``quoteAssetPrecision`` (decimal places) as an increment; 0 (unchecked) if absent."""
    if places is None:
        return Decimal(0)
    return Decimal(1).scaleb(-int(places))
