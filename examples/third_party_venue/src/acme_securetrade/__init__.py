"""securetrade adapter for Acme Exchange, a (made-up) venue that copies Binance's spot API.

The wire format (signing, encoding, error codes, payloads) is Binance's, so the adapter
reuses securetrade's Binance adapter for it and states only what is Acme's own: name,
hosts, endpoint costs, published limits, and the client-order-id rule.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from securetrade.errors import InvalidRequest
from securetrade.keys import Environment, Scope
from securetrade.ratelimit import RateLimit
from securetrade.venues.base import Endpoint, Op
from securetrade.venues.binance import BinanceSpot

__all__ = ["ACME", "AcmeSpot"]

_WEIGHT = "REQUEST_WEIGHT"
_ORDERS = "ORDERS"

# Acme bills every signed call 2 units and allows 1200 per minute, 20 orders per 10 s.
_ENDPOINTS = {
    e.op: e
    for e in (
        Endpoint(Op.SERVER_TIME, "GET", "/api/v3/time", False, None, {_WEIGHT: 1}),
        Endpoint(Op.INSTRUMENTS, "GET", "/api/v3/exchangeInfo", False, None, {_WEIGHT: 10}),
        Endpoint(Op.TICKER_PRICE, "GET", "/api/v3/ticker/price", False, None, {_WEIGHT: 1}),
        Endpoint(
            Op.PLACE_ORDER, "POST", "/api/v3/order", True, Scope.TRADE, {_WEIGHT: 2, _ORDERS: 1}
        ),
        Endpoint(Op.CANCEL_ORDER, "DELETE", "/api/v3/order", True, Scope.CANCEL, {_WEIGHT: 2}),
        Endpoint(Op.GET_ORDER, "GET", "/api/v3/order", True, Scope.READ, {_WEIGHT: 2}),
        Endpoint(Op.OPEN_ORDERS, "GET", "/api/v3/openOrders", True, Scope.READ, {_WEIGHT: 2}),
        Endpoint(Op.BALANCES, "GET", "/api/v3/account", True, Scope.READ, {_WEIGHT: 2}),
    )
}

# Acme accepts client order ids of 1-32 letters and digits only.
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9]{1,32}")


class AcmeSpot(BinanceSpot):
    """Acme spot: Binance's wire format, Acme's tables. No withdrawals over the API."""

    name = "acme"
    endpoints: Mapping[Op, Endpoint] = _ENDPOINTS
    rate_limits: Sequence[RateLimit] = (
        RateLimit(_WEIGHT, 60.0, 1200, header="x-mbx-used-weight-1m"),
        RateLimit(_ORDERS, 10.0, 20),
    )
    base_urls: Mapping[Environment, str] = {Environment.LIVE: "https://api.acme.example"}

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        """``ac`` and 30 hex digits, from venue, account and idempotency key."""
        digest = hashlib.sha256(f"acme\x00{account}\x00{idempotency_key}".encode()).hexdigest()
        cid = "ac" + digest[:30]
        if not _CLIENT_ORDER_ID.fullmatch(cid):
            raise InvalidRequest(f"{cid!r} does not fit Acme's client-order-id rule")
        return cid

    def owns_client_order_id(self, client_order_id: str) -> bool:
        """The ids :meth:`client_order_id` gives: ``ac`` and 30 hex digits."""
        return re.fullmatch("ac[0-9a-f]{30}", client_order_id) is not None


ACME = AcmeSpot()
