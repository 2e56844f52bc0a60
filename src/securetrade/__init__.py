"""securetrade: a secure, embeddable client SDK for exchange and broker APIs.

Every call passes through scoped keys, pre-trade policy, an idempotency journal, a rate
limiter, venue-time freshness, signing over the exact bytes sent, and pinned TLS::

    from securetrade import ApiKey, Client, LimitOrder

    with Client(key, pins=pins) as client:
        order = client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY",
                                              quantity="0.01", price="60000"),
                                   idempotency_key="rebalance-2026-11-21-1")
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .client import AsyncClient, Client
from .core import IntentState, Journal, RecoveryReport, RetryPolicy, Settings
from .errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    ConnectFailed,
    DuplicateOrder,
    IdempotencyKeyExpired,
    IdempotencyKeyMismatch,
    InboundRejected,
    InheritedAcrossFork,
    InsufficientFunds,
    IntentChanged,
    InvalidRequest,
    IpBanned,
    JournalError,
    KeyNotFound,
    KeystoreError,
    KeystorePermissions,
    KeystoreTampered,
    LocalRefusal,
    OrderNotFound,
    OrderStillOpen,
    OverPermissionedKey,
    PinMismatch,
    PolicyViolation,
    RateLimited,
    RetryableError,
    ScopeError,
    SecureTradeError,
    TimestampRejected,
    UnresolvedOrder,
    UntrustedServer,
    VenueRejected,
    WrongPassphrase,
)
from .keys import ApiKey, Environment, KeyCheck, KeyKind, KeyRing, Scope, Secret
from .models import (
    AccountTrade,
    Balance,
    BookLevel,
    Candle,
    Fill,
    Instrument,
    LimitOrder,
    MarketOrder,
    OcoOrder,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    StopLimitOrder,
    StopLossOrder,
    TakeProfitLimitOrder,
    TakeProfitOrder,
    Ticker,
    TimeInForce,
    Transfer,
)
from .policy import Decision, KillSwitch, Policy
from .ratelimit import LimitScope, Priority, RateLimit, RateLimiter
from .record import AuditLog
from .tables import Results, to_pandas
from .transport import PinSet

if TYPE_CHECKING:
    from .keys import KeyStore
    from .policy import AnomalyMonitor
    from .record import AuditKey, AuditTrail

# Loaded on first use (see securetrade._lazy): a bot placing orders needs none of these.
_LAZY = {
    "AnomalyMonitor": ".policy",
    "AuditKey": ".record",
    "AuditTrail": ".record",
    "KeyStore": ".keys",
}

__version__ = "0.1.0"

__all__ = [
    "AmbiguousOutcome",
    "AnomalyMonitor",
    "ApiKey",
    "AsyncClient",
    "AuditKey",
    "AuditLog",
    "AuditTrail",
    "AuthenticationRejected",
    "Balance",
    "BookLevel",
    "Candle",
    "Client",
    "ConnectFailed",
    "Decision",
    "DuplicateOrder",
    "Environment",
    "Fill",
    "IdempotencyKeyExpired",
    "IdempotencyKeyMismatch",
    "InboundRejected",
    "InheritedAcrossFork",
    "InsufficientFunds",
    "IntentChanged",
    "Instrument",
    "IntentState",
    "InvalidRequest",
    "IpBanned",
    "KeyNotFound",
    "KeystoreError",
    "KeystorePermissions",
    "KeystoreTampered",
    "Journal",
    "JournalError",
    "KeyCheck",
    "KeyKind",
    "KeyRing",
    "KeyStore",
    "KillSwitch",
    "LimitOrder",
    "LimitScope",
    "LocalRefusal",
    "MarketOrder",
    "OcoOrder",
    "StopLimitOrder",
    "StopLossOrder",
    "TakeProfitLimitOrder",
    "TakeProfitOrder",
    "AccountTrade",
    "Transfer",
    "Order",
    "OrderNotFound",
    "OrderStillOpen",
    "OverPermissionedKey",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PinMismatch",
    "PinSet",
    "PublicTrade",
    "Policy",
    "PolicyViolation",
    "Priority",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RetryableError",
    "Scope",
    "ScopeError",
    "Secret",
    "SecureTradeError",
    "TimestampRejected",
    "RecoveryReport",
    "RetryPolicy",
    "Settings",
    "Side",
    "Ticker",
    "TimeInForce",
    "UnresolvedOrder",
    "UntrustedServer",
    "VenueRejected",
    "WrongPassphrase",
    "Results",
    "to_pandas",
]


def _public(obj: Any) -> None:
    """Show ``obj`` where users import it from: ``securetrade.Client``, not its module."""
    if getattr(obj, "__module__", "").startswith("securetrade."):
        with contextlib.suppress(AttributeError, TypeError):
            obj.__module__ = "securetrade"


for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name

if not TYPE_CHECKING:
    from ._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, on_load=_public)
