"""OANDA v20 REST as data: endpoints, error codes, rate limits, hosts.

Sources: developer.oanda.com (v20 REST: Order, Transaction, Pricing, Instrument and
Account endpoints; "Best Practices" for the limits) as summarised in the wave-2 research
note (section 2.3), and the OpenAPI rendering of the v20 spec (``OrderSpecifier``: an
order id, or a client id prefixed with ``@``). Paths hold the account id, which is the
key id of an OANDA :class:`~securetrade.keys.ApiKey` (the token names the user, the id
the account); ``{account}`` is filled in by the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import (
    AuthenticationRejected,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    VenueRejected,
)
from ...keys import Environment, Scope
from ...ratelimit import LimitScope, RateLimit
from ..base import Endpoint, ErrorRule, Op, Verdict

__all__ = ["ACCOUNT", "BASE_URLS", "DUPLICATE", "ENDPOINTS", "ERRORS", "RATE_LIMITS", "REST"]

REST = "OANDA_REST"

# Practice is where a key works unless live is asked for by name (``environment="live"``).
BASE_URLS: Mapping[Environment, str] = {
    Environment.PAPER: "https://api-fxpractice.oanda.com",
    Environment.LIVE: "https://api-fxtrade.oanda.com",
}

_ONE = {REST: 1}
_ACCOUNT = "/v3/accounts/{account}"

ENDPOINTS: Mapping[Op, Endpoint] = {
    e.op: e
    for e in (
        # OANDA publishes no clock: the time of a price is venue time.
        Endpoint(Op.SERVER_TIME, "GET", _ACCOUNT + "/pricing", True, None, _ONE),
        Endpoint(Op.INSTRUMENTS, "GET", _ACCOUNT + "/instruments", True, None, _ONE),
        Endpoint(Op.TICKER_PRICE, "GET", _ACCOUNT + "/pricing", True, None, _ONE),
        Endpoint(Op.TICKER, "GET", _ACCOUNT + "/pricing", True, None, _ONE),
        Endpoint(Op.ORDER_BOOK, "GET", _ACCOUNT + "/pricing", True, None, _ONE),
        Endpoint(Op.CANDLES, "GET", "/v3/instruments/{instrument}/candles", True, None, _ONE),
        Endpoint(Op.PLACE_ORDER, "POST", _ACCOUNT + "/orders", True, Scope.TRADE, _ONE),
        Endpoint(Op.CANCEL_ORDER, "PUT", _ACCOUNT + "/orders", True, Scope.CANCEL, _ONE),
        Endpoint(Op.GET_ORDER, "GET", _ACCOUNT + "/orders", True, Scope.READ, _ONE),
        Endpoint(Op.OPEN_ORDERS, "GET", _ACCOUNT + "/pendingOrders", True, Scope.READ, _ONE),
        Endpoint(Op.BALANCES, "GET", _ACCOUNT + "/summary", True, Scope.READ, _ONE),
    )
}

#: The whole account (``hedgingEnabled`` and the open positions), read before each order to
#: apply the account's rules locally: a read that is part of placing an order.
ACCOUNT = Endpoint(Op.BALANCES, "GET", _ACCOUNT, True, Scope.READ, _ONE)

#: The reject reason (and error code) of a create whose client id a PENDING order holds.
DUPLICATE = "CLIENT_ORDER_ID_ALREADY_EXISTS"

# errorCode / rejectReason -> meaning. Others are sorted by HTTP status.
ERRORS: Mapping[str, ErrorRule] = {
    DUPLICATE: (Verdict.REJECTED, DuplicateOrder),
    "ORDER_DOESNT_EXIST": (Verdict.REJECTED, OrderNotFound),
    "NO_SUCH_ORDER": (Verdict.REJECTED, OrderNotFound),
    "INSUFFICIENT_MARGIN": (Verdict.REJECTED, InsufficientFunds),
    "INSUFFICIENT_LIQUIDITY": (Verdict.REJECTED, VenueRejected),
    "MARKET_HALTED": (Verdict.REJECTED, VenueRejected),
    "INSTRUMENT_NOT_TRADEABLE": (Verdict.REJECTED, VenueRejected),
    "UNITS_PRECISION_EXCEEDED": (Verdict.REJECTED, VenueRejected),
    "PRICE_PRECISION_EXCEEDED": (Verdict.REJECTED, VenueRejected),
    "INVALID_AUTHORIZATION": (Verdict.REJECTED, AuthenticationRejected),
}

#: 120 REST requests a second; OANDA also asks for at most 2 new connections a second,
#: which one persistent connection per client (the transport's) stays under.
RATE_LIMITS = (RateLimit(REST, 1.0, 120, scope=LimitScope.ACCOUNT),)
