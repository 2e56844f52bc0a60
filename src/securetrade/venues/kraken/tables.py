"""Kraken spot REST as data: endpoints, error strings, rate limits, client-order-id grammar,
asset names.

Sources: docs.kraken.com (Spot REST, "Spot Client Order Identifiers") and Kraken's support
articles on API error messages and rate limits. See docs/venues.md for what is not
verified against the live venue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..._checks import shown
from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    RateLimited,
    RetryableError,
    TimestampRejected,
    VenueRejected,
)
from ...keys import Scope
from ...ratelimit import LimitScope, RateLimit
from ..base import Endpoint, ErrorRule, Op, Verdict

__all__ = [
    "API",
    "CLIENT_ORDER_ID",
    "ENDPOINTS",
    "ERRORS",
    "ORDERS",
    "PUBLIC",
    "RATE_PAUSES",
    "TIERS",
    "asset_name",
    "rate_limits",
]

API = "API_COUNTER"  # private calls other than placing and cancelling
ORDERS = "ORDER_COUNTER"  # the matching engine's add/cancel counter
PUBLIC = "PUBLIC"  # unauthenticated market data, per IP

# Cancelling an order younger than 5 s costs up to 8 on the add/cancel counter (less as the
# order ages). We cannot know the age of every order cancelled, so we charge the most.
_CANCEL_COST = 8

ENDPOINTS: Mapping[Op, Endpoint] = {
    e.op: e
    for e in (
        Endpoint(Op.SERVER_TIME, "GET", "/0/public/Time", False, None, {PUBLIC: 1}),
        Endpoint(Op.INSTRUMENTS, "GET", "/0/public/AssetPairs", False, None, {PUBLIC: 1}),
        Endpoint(Op.TICKER_PRICE, "GET", "/0/public/Ticker", False, None, {PUBLIC: 1}),
        Endpoint(Op.TICKER, "GET", "/0/public/Ticker", False, None, {PUBLIC: 1}),
        Endpoint(Op.ORDER_BOOK, "GET", "/0/public/Depth", False, None, {PUBLIC: 1}),
        Endpoint(Op.CANDLES, "GET", "/0/public/OHLC", False, None, {PUBLIC: 1}),
        Endpoint(Op.PUBLIC_TRADES, "GET", "/0/public/Trades", False, None, {PUBLIC: 1}),
        Endpoint(Op.PLACE_ORDER, "POST", "/0/private/AddOrder", True, Scope.TRADE, {ORDERS: 1}),
        Endpoint(
            Op.CANCEL_ORDER,
            "POST",
            "/0/private/CancelOrder",
            True,
            Scope.CANCEL,
            {ORDERS: _CANCEL_COST},
        ),
        Endpoint(Op.GET_ORDER, "POST", "/0/private/QueryOrders", True, Scope.READ, {API: 1}),
        Endpoint(Op.OPEN_ORDERS, "POST", "/0/private/OpenOrders", True, Scope.READ, {API: 1}),
        # An order's trades: QueryOrders (its trade ids), then QueryTrades (20 at a time),
        # a trade history call at 2 on the call counter.
        Endpoint(Op.TRADES, "POST", "/0/private/QueryOrders", True, Scope.READ, {API: 2}),
        Endpoint(Op.WS_TOKEN, "POST", "/0/private/GetWebSocketsToken", True, Scope.READ, {API: 1}),
        Endpoint(Op.BALANCES, "POST", "/0/private/BalanceEx", True, Scope.READ, {API: 1}),
        Endpoint(Op.WITHDRAW, "POST", "/0/private/Withdraw", True, Scope.WITHDRAW, {API: 1}),
        # Trade history calls add 2 to the call counter ("Spot REST API rate limits").
        Endpoint(Op.TRADE_HISTORY, "POST", "/0/private/TradesHistory", True, Scope.READ, {API: 2}),
        Endpoint(Op.ORDER_HISTORY, "POST", "/0/private/ClosedOrders", True, Scope.READ, {API: 1}),
        Endpoint(
            Op.DEPOSIT_HISTORY, "POST", "/0/private/DepositStatus", True, Scope.READ, {API: 1}
        ),
        Endpoint(
            Op.WITHDRAWAL_HISTORY, "POST", "/0/private/WithdrawStatus", True, Scope.READ, {API: 1}
        ),
    )
}

# Error text (matched by its longest listed prefix; Kraken appends details after a colon)
# -> what it means for the money. Texts not listed fall back on their category: EService,
# EDatabase and EGeneral:Internal are ambiguous, everything else a rejection.
ERRORS: Mapping[str, ErrorRule] = {
    "EAPI:Invalid key": (Verdict.REJECTED, AuthenticationRejected),
    "EAPI:Invalid signature": (Verdict.REJECTED, AuthenticationRejected),
    # Refused before any processing; a fresh, larger nonce may pass.
    "EAPI:Invalid nonce": (Verdict.RETRYABLE, TimestampRejected),
    "EAPI:Rate limit exceeded": (Verdict.RETRYABLE, RateLimited),
    "EAPI:Feature disabled": (Verdict.REJECTED, VenueRejected),
    "EAPI:Bad request": (Verdict.REJECTED, VenueRejected),
    "EGeneral:Invalid arguments": (Verdict.REJECTED, VenueRejected),
    "EGeneral:Permission denied": (Verdict.REJECTED, AuthenticationRejected),
    "EGeneral:Unknown method": (Verdict.REJECTED, VenueRejected),
    "EGeneral:Temporary lockout": (Verdict.RETRYABLE, RateLimited),
    "EGeneral:Too many requests": (Verdict.RETRYABLE, RateLimited),
    "EGeneral:Internal error": (Verdict.AMBIGUOUS, AmbiguousOutcome),
    "EDatabase:Internal error": (Verdict.AMBIGUOUS, AmbiguousOutcome),
    "EQuery:Unknown asset pair": (Verdict.REJECTED, VenueRejected),
    "EQuery:Invalid asset pair": (Verdict.REJECTED, VenueRejected),
    "EQuery:Unknown asset": (Verdict.REJECTED, VenueRejected),
    "EOrder:Insufficient funds": (Verdict.REJECTED, InsufficientFunds),
    "EOrder:Insufficient margin": (Verdict.REJECTED, InsufficientFunds),
    "EOrder:Margin allowance exceeded": (Verdict.REJECTED, InsufficientFunds),
    "EOrder:Unknown order": (Verdict.REJECTED, OrderNotFound),
    "EOrder:Invalid order": (Verdict.REJECTED, OrderNotFound),
    "EOrder:Order minimum not met": (Verdict.REJECTED, VenueRejected),
    "EOrder:Cost minimum not met": (Verdict.REJECTED, VenueRejected),
    "EOrder:Tick size check failed": (Verdict.REJECTED, VenueRejected),
    "EOrder:Invalid price": (Verdict.REJECTED, VenueRejected),
    "EOrder:Invalid reference id": (Verdict.REJECTED, VenueRejected),
    "EOrder:Orders limit exceeded": (Verdict.REJECTED, VenueRejected),
    "EOrder:Positions limit exceeded": (Verdict.REJECTED, VenueRejected),
    "EOrder:Rate limit exceeded": (Verdict.RETRYABLE, RateLimited),
    # A client order id already held by an open order (text not confirmed on the live venue).
    "EOrder:Duplicate order": (Verdict.REJECTED, DuplicateOrder),
    "EService:Unavailable": (Verdict.RETRYABLE, RetryableError),  # engine offline: not taken
    "EService:Busy": (Verdict.RETRYABLE, RetryableError),
    "EService:Deadline elapsed": (Verdict.RETRYABLE, RetryableError),  # refused at deadline
    "EService:Market in cancel_only mode": (Verdict.REJECTED, VenueRejected),
    "EService:Market in post_only mode": (Verdict.REJECTED, VenueRejected),
    "EService:Market in limit_only mode": (Verdict.REJECTED, VenueRejected),
    "ETrade:User Locked": (Verdict.REJECTED, AuthenticationRejected),
}

# Kraken answers these with HTTP 200 and no Retry-After: how long to pause before resending.
RATE_PAUSES: Mapping[str, float] = {
    "EAPI:Rate limit exceeded": 3.0,  # one unit of the API counter decays (starter tier)
    "EOrder:Rate limit exceeded": 8.0,  # one cancel's worth of the add/cancel counter
    "EGeneral:Too many requests": 1.0,
    "EGeneral:Temporary lockout": 900.0,  # "approximately 15 minutes"
}

# Counters with decay, per verification tier: (maximum, decay per second).
TIERS: Mapping[str, tuple[tuple[int, float], tuple[int, float]]] = {
    #              API counter     add/cancel counter
    "starter": ((15, 1 / 3), (60, 1.0)),
    "intermediate": ((20, 0.5), (125, 2.34)),
    "pro": ((20, 1.0), (180, 3.75)),
}


def rate_limits(tier: str) -> tuple[RateLimit, ...]:
    """Kraken's decaying counters as sliding windows.

    A counter with maximum ``m`` that decays by ``d`` per second never exceeds ``m`` when no
    window of ``m / d`` seconds holds more than ``m`` units: over any span ``k`` windows
    long, at most ``k * m`` arrive while ``(k - 1) * m`` decay. The long-run rate is the
    same ``d``; what the window gives up is reuse of the counter's early decay after a
    burst. The call counter is per API key, the add/cancel counter per key and pair, and
    public market data per IP at about one call per second.
    """
    try:
        (api_max, api_decay), (orders_max, orders_decay) = TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown Kraken tier {shown(tier)} (known: {', '.join(TIERS)})") from None
    return (
        RateLimit(API, api_max / api_decay, api_max, scope=LimitScope.API_KEY),
        RateLimit(ORDERS, orders_max / orders_decay, orders_max, scope=LimitScope.PAIR),
        RateLimit(PUBLIC, 10.0, 10),  # per IP
    )


# cl_ord_id: a long UUID (8-4-4-4-12 hex), a short UUID (32 hex), or up to 18 characters of
# free text. Our derived ids are short UUIDs.
CLIENT_ORDER_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}"
    r"|[\x21-\x7e]{1,18}"
)


# Kraken's legacy asset codes (an X before crypto, a Z before fiat) and its own short names
# (XBT for bitcoin, XDG for dogecoin) -> the names everyone else uses. Codes not listed
# (USDT, DOT, SOL, and every asset listed since) are already those names.
_ASSET_NAMES = {
    "XXBT": "BTC",
    "XBT": "BTC",
    "XBT.M": "BTC.M",
    "XXDG": "DOGE",
    "XDG": "DOGE",
    "XETH": "ETH",
    "XETC": "ETC",
    "XLTC": "LTC",
    "XMLN": "MLN",
    "XREP": "REP",
    "XXLM": "XLM",
    "XXMR": "XMR",
    "XXRP": "XRP",
    "XZEC": "ZEC",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}


def asset_name(code: str) -> str:
    """The common name of a Kraken asset code: ``XXBT`` -> ``BTC``, ``ZUSD`` -> ``USD``."""
    return _ASSET_NAMES.get(code, code)
