"""The inbound gateway: may this request from a bot, a leader or a platform be served?

One pure ASGI middleware (:class:`GatewayMiddleware`) that any ASGI app adds in one line::

    app.add_middleware(GatewayMiddleware, keys=registry, routes=[...], state=shared)

It checks size, headers, key, time window, signature (the scheme of
:mod:`securetrade.verify`), nonce (atomically, in a store the processes share), scope, rate
limits and the body's model, in that order, and fails closed. See docs/gateway.md.
Senders sign with :class:`GatewayAuth`. Not imported by ``import securetrade``.
"""

from typing import TYPE_CHECKING

from .client import GatewayAuth
from .events import GatewayMonitor, SecurityEvent
from .keys import GatewayKey, GatewayPrincipal, KeyRegistry
from .middleware import GatewayMiddleware, Limit, Route
from .net import Lockout, TrustedProxies
from .stores import SharedState, StoreRolledBack, StoreUnavailable

if TYPE_CHECKING:
    from .frameworks import principal_of, require_scopes, requires_scopes, validated_body
    from .models import FollowerOrder, LeaderSignal, OrderType, Side, TimeInForce, Webhook
else:  # pydantic models and the framework helpers load on first use
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            **dict.fromkeys(
                ("principal_of", "require_scopes", "requires_scopes", "validated_body"),
                ".frameworks",
            ),
            **dict.fromkeys(
                ("FollowerOrder", "LeaderSignal", "OrderType", "Side", "TimeInForce", "Webhook"),
                ".models",
            ),
        },
    )

__all__ = [
    "FollowerOrder",
    "GatewayAuth",
    "GatewayKey",
    "GatewayMiddleware",
    "GatewayMonitor",
    "GatewayPrincipal",
    "KeyRegistry",
    "LeaderSignal",
    "Limit",
    "Lockout",
    "OrderType",
    "Route",
    "SecurityEvent",
    "SharedState",
    "Side",
    "StoreRolledBack",
    "StoreUnavailable",
    "TimeInForce",
    "TrustedProxies",
    "Webhook",
    "principal_of",
    "require_scopes",
    "requires_scopes",
    "validated_body",
]
