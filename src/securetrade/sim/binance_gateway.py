"""The simulator's Binance dialect itself: routing, authentication and request weight.

It routes each request to the market data or trading layer, checks the API key and the
signature over the exact query string plus body and the timestamp against
``recvWindow``, counts request weight per IP (429, then 418), and answers the fault
schedule the way Binance answers. The top of the Binance layers; ``binance`` re-exports it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature

from .binance_market import _BinanceMarket
from .binance_rules import (
    _PUBLIC,
    _WEIGHTS,
    BINANCE_FEES,
    SimLimits,
    _Counter,
    _interval,
    _parameters,
    _Stats,
    _strip_signature,
    _weight,
)
from .binance_trading import _BinanceTrading, _deposits, _withdrawals
from .binance_wire import _ApiError, _order_json, _required
from .dialect import SimKey, SimRequest, SimResponse, json_response
from .engine import FeeSchedule, Market
from .faults import Fault, Faults
from .ledger import record_withdrawal
from .lists import oco

__all__ = ["BinanceDialect"]


class BinanceDialect(_BinanceTrading, _BinanceMarket):
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

    def _unknown_order(self, request: SimRequest) -> _ApiError:
        return _ApiError(400, -2011, "Unknown order sent.")

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

    # --- wire helpers ----------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str, headers: dict[str, str]) -> SimResponse:
        return json_response(status, {"code": code, "msg": message}, headers)


_UNKNOWN_ERROR = "An unknown error occurred while processing the request."
