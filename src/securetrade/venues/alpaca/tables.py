"""Alpaca Trading API v2 as data: endpoints, error codes, rate limits, hosts.

Sources: docs.alpaca.markets (Trading API reference, "Working with /orders", "Orders at
Alpaca"), alpaca-py (``alpaca/trading/enums.py``, ``alpaca/common/rest.py``) and the wave-2
research note (``/work/shared/research/wave2.md`` section 2). Error codes are seven or
eight digits whose first three are the HTTP status; the ones listed are those Alpaca
documents or alpaca-py's issues show (40010001 on a reused ``client_order_id``, alpaca-py
#260). Everything else is sorted by its status.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    RateLimited,
    VenueRejected,
)
from ...keys import Environment, Scope
from ...ratelimit import LimitScope, RateLimit
from ..base import Endpoint, ErrorRule, Op, Verdict

__all__ = ["API", "BASE_URLS", "DUPLICATE", "ENDPOINTS", "ERRORS", "RATE_LIMITS"]

API = "ALPACA_API"  # one counter: every Trading API call, per account

# Paper is where a key works unless live is asked for by name (as alpaca-py's paper=True):
# Alpaca issues separate credentials for each, and ApiKey(environment=...) says which.
BASE_URLS: Mapping[Environment, str] = {
    Environment.PAPER: "https://paper-api.alpaca.markets",
    Environment.LIVE: "https://api.alpaca.markets",
}

_ONE = {API: 1}

ENDPOINTS: Mapping[Op, Endpoint] = {
    e.op: e
    for e in (
        # The market clock: venue time, and whether the regular session is open.
        Endpoint(Op.SERVER_TIME, "GET", "/v2/clock", True, None, _ONE),
        Endpoint(Op.INSTRUMENTS, "GET", "/v2/assets", True, None, _ONE),
        Endpoint(Op.PLACE_ORDER, "POST", "/v2/orders", True, Scope.TRADE, _ONE),
        Endpoint(Op.CANCEL_ORDER, "DELETE", "/v2/orders", True, Scope.CANCEL, _ONE),
        Endpoint(Op.GET_ORDER, "GET", "/v2/orders", True, Scope.READ, _ONE),
        Endpoint(Op.OPEN_ORDERS, "GET", "/v2/orders", True, Scope.READ, _ONE),
        Endpoint(Op.BALANCES, "GET", "/v2/account", True, Scope.READ, _ONE),
        # Every execution of the account (account activities of type FILL), paged.
        Endpoint(Op.TRADE_HISTORY, "GET", "/v2/account/activities/FILL", True, Scope.READ, _ONE),
    )
}

#: A ``client_order_id`` the account has used before, even by an order since closed.
DUPLICATE = 40010001

ERRORS: Mapping[int, ErrorRule] = {
    DUPLICATE: (Verdict.REJECTED, DuplicateOrder),
    40110000: (Verdict.REJECTED, AuthenticationRejected),  # request is not authorized
    40310000: (Verdict.REJECTED, InsufficientFunds),  # e.g. insufficient buying power
    40410000: (Verdict.REJECTED, OrderNotFound),  # order (or resource) not found
    42210000: (Verdict.REJECTED, VenueRejected),  # invalid parameters
    42910000: (Verdict.RETRYABLE, RateLimited),  # too many requests
    50010000: (Verdict.AMBIGUOUS, AmbiguousOutcome),  # internal error
}

#: 200 requests per minute per account on the Trading API (research note, section 2.1).
RATE_LIMITS = (RateLimit(API, 60.0, 200, scope=LimitScope.ACCOUNT),)
