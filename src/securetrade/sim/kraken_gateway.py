"""The simulator's Kraken dialect itself: routing, authentication, nonces, 2FA and
WebSocket tokens.

It routes public calls to the market data layer and private ones, once their ``API-Key``,
``API-Sign``, nonce and ``otp`` pass and the call counter allows them, to the trading
layer; it answers the fault schedule the way Kraken's edge does. The top of the Kraken
layers; ``kraken`` re-exports it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InvalidRequest
from .dialect import SimRequest, SimResponse, json_response
from .engine import FeeSchedule, Market
from .faults import Fault, Faults
from .kraken_market import _KrakenMarket
from .kraken_rules import (
    _HEAVY,
    _WS_TOKEN_TTL,
    KrakenLimits,
    _Counter,
    _engine_asset,
    _Error,
    _need,
    _number,
    _Stats,
)
from .kraken_trading import _KrakenTrading
from .ledger import record_withdrawal

__all__ = ["KrakenDialect"]


class KrakenDialect(_KrakenTrading, _KrakenMarket):
    """Answers Kraken spot REST requests from a :class:`Market`.

    Its keys' ``hmac_secret`` holds the raw (base64-decoded) secret.
    """

    def __init__(
        self,
        market: Market,
        *,
        faults: Faults | None = None,
        limits: KrakenLimits | None = None,
        nonce_window: int = 0,
        clock_offset_ms: int = 0,
        clock: Callable[[], float] = time.time,
        query_needs_txid: bool = True,
        fees: FeeSchedule | None = None,
    ) -> None:
        """``query_needs_txid`` (the default) refuses ``QueryOrders`` without ``txid``, as
        Kraken's API reference states; ``False`` also answers it by ``cl_ord_id`` alone, a
        leniency the live venue is not documented to have."""
        super().__init__(
            market, _Stats(), faults=faults, clock_offset_ms=clock_offset_ms, clock=clock
        )
        self.limits = limits
        self.fees = fees
        self.nonce_window = nonce_window
        self.query_needs_txid = query_needs_txid
        self._nonces: dict[str, int] = {}  # key id -> highest nonce accepted
        self._otp: dict[str, tuple[str, bytes]] = {}  # key id -> ("static"|"totp", value)
        self._recent: dict[str, set[int]] = {}  # nonces accepted inside the window
        self._api: dict[str, _Counter] = {}
        self._orders: dict[str, _Counter] = {}
        self._auto = itertools.count(1)
        self._oflags: dict[int, str] = {}  # order number -> the oflags it was placed with
        self._pairs = {self._altname(i): i for i in market.instruments.values()}
        self._alt_of = {i.symbol: name for name, i in self._pairs.items()}
        self.ws_tokens: dict[str, tuple[str, float]] = {}  # token -> (account, issued)
        #: seconds a WebSocket token stays good for a subscription (0: refused at once)
        self.ws_token_ttl: float = _WS_TOKEN_TTL

    def enroll_otp(
        self, key_id: str, *, static: bytes | None = None, totp_seed: str | None = None
    ) -> None:
        """Turn 2FA on for a key: every private call then needs ``otp`` in its signed body,
        the static password or the current TOTP code (one 30 s step either side allowed);
        a missing or wrong one is ``EAPI:Invalid signature``, as at Kraken."""
        if (static is None) == (totp_seed is None):
            raise InvalidRequest("enroll either a static password or a TOTP seed")
        with self._lock:
            if static is not None:
                self._otp[key_id] = ("static", static)
            else:
                assert totp_seed is not None
                self._otp[key_id] = ("totp", totp_seed.encode("ascii"))

    def _otp_accepted(self, key_id: str, given: str) -> bool:
        with self._lock:
            rule = self._otp.get(key_id)
        if rule is None:
            return True
        kind, value = rule
        if kind == "static":
            return hmac.compare_digest(given.encode(), value)
        import pyotp

        return bool(
            given
            and pyotp.TOTP(value.decode("ascii")).verify(
                given, for_time=self.now_ms() // 1000, valid_window=1
            )
        )

    def last_nonce(self, key_id: str) -> int:
        """The highest nonce this key has used (0 if none)."""
        with self._lock:
            return self._nonces.get(key_id, 0)

    # --- what differs from the shared handler (see Dialect.handle) ----------------------

    def _unknown_order(self, request: SimRequest) -> _Error:
        return _Error("EOrder:Unknown order")

    def _fault_answer(self, fault: Fault) -> SimResponse | None:
        if fault.kind in ("status", "status_after"):
            return _gateway(fault.status)  # whether it was processed, the client cannot tell
        if fault.kind == "rate_limit":
            retry = {"retry-after": str(max(1, round(fault.seconds)))}
            return json_response(429, {"error": ["EAPI:Rate limit exceeded"]}, retry)
        if fault.kind == "ban":
            return json_response(200, {"error": ["EGeneral:Temporary lockout"]})
        return None  # rate_limit_after: this dialect lets Kraken's own answer through

    def _process(self, request: SimRequest, delay: float) -> tuple[int, Any]:
        if delay:
            time.sleep(delay)  # held after the gateway, then processed
        path = request.path
        if path.startswith("/0/public/"):
            result = self._public(path.removeprefix("/0/public/"), request.query)
        elif path.startswith("/0/private/") and request.method == "POST":
            name = path.removeprefix("/0/private/")
            result = self._private(name, request.target, request.headers, request.body)
        else:
            raise _Error("EGeneral:Unknown method", 404)
        return 200, {"error": [], "result": result}

    # --- private: authentication as Kraken documents it -----------------------------------

    def _private(self, name: str, target: str, headers: Mapping[str, str], body: bytes) -> Any:
        key = self.keys.get(headers.get("api-key", ""))
        if key is None or key.hmac_secret is None:
            raise _Error("EAPI:Invalid key")
        params = self._body(headers, body)
        nonce_text = params.get("nonce", "")
        if not nonce_text.isdigit():
            raise _Error("EAPI:Invalid nonce")
        inner = hashlib.sha256(nonce_text.encode() + body).digest()
        expected = hmac.new(key.hmac_secret, target.encode() + inner, hashlib.sha512).digest()
        try:
            given = base64.b64decode(headers.get("api-sign", ""), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(expected, given):
            raise _Error("EAPI:Invalid signature")
        if not self._otp_accepted(key.key_id, params.get("otp", "")):
            raise _Error("EAPI:Invalid signature")  # Kraken's answer to a bad OTP too
        self._accept_nonce(key.key_id, int(nonce_text))
        with self._lock:
            self.stats.last_params[name] = dict(params)
        if name not in ("AddOrder", "CancelOrder"):
            cost = 2.0 if name in _HEAVY else 1.0
            self._count(self._api, key, cost, "EAPI:Rate limit exceeded")
        if name == "AddOrder":
            return self._add_order(key, params)
        if name == "CancelOrder":
            return self._cancel(key, params)
        if name == "QueryOrders":
            if self.query_needs_txid and not params.get("txid"):
                raise _Error("EGeneral:Invalid arguments:txid")
            return self._query(key, params)
        if name == "OpenOrders":
            return {"open": self._open_orders(key, params)}
        if name == "ClosedOrders":
            return self._closed_orders(key, params)
        if name == "TradesHistory":
            return self._trades_history(key, params)
        if name in ("Balance", "BalanceEx"):
            return self._balances(key, extended=name == "BalanceEx")
        if name == "Withdraw":
            if not key.can_withdraw:
                raise _Error("EGeneral:Permission denied")
            record_withdrawal(
                self.market,
                key.account,
                _engine_asset(_need(params, "asset")),
                _number(params, "amount"),
                _need(params, "key"),
            )
            return {"refid": hashlib.sha256(body).hexdigest()[:18].upper()}
        if name in ("DepositStatus", "WithdrawStatus"):
            return self._transfers(key, params, name == "DepositStatus")
        if name == "QueryTrades":
            return self._query_trades(key, params)
        if name == "GetWebSocketsToken":
            return {"token": self.issue_ws_token(key.account), "expires": _WS_TOKEN_TTL}
        raise _Error("EGeneral:Unknown method")

    def _body(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        text = body.decode("utf-8", "replace")
        if headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(text or "{}")
            except ValueError:
                raise _Error("EGeneral:Invalid arguments") from None
            if not isinstance(data, dict):
                raise _Error("EGeneral:Invalid arguments")
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except ValueError:
            raise _Error("EGeneral:Invalid arguments") from None
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise _Error("EGeneral:Invalid arguments")
        return dict(pairs)

    def _accept_nonce(self, key_id: str, nonce: int) -> None:
        with self._lock:
            last = self._nonces.get(key_id, 0)
            recent = self._recent.setdefault(key_id, set())
            if nonce <= last and (nonce <= last - self.nonce_window or nonce in recent):
                raise _Error("EAPI:Invalid nonce")
            self._nonces[key_id] = max(last, nonce)
            if self.nonce_window:
                recent.add(nonce)
                floor = self._nonces[key_id] - self.nonce_window
                recent.difference_update({n for n in recent if n <= floor})

    def issue_ws_token(self, account: str) -> str:
        """A new WebSocket token of ``account``: the WebSocket side accepts it for a
        subscription within :attr:`ws_token_ttl` seconds of issue."""
        token = base64.b64encode(secrets.token_bytes(30)).decode("ascii")
        with self._lock:
            self.ws_tokens[token] = (account, time.monotonic())
        return token

    def ws_account(self, token: str) -> str | None:
        """The account of a WebSocket token still valid to subscribe with, else None."""
        with self._lock:
            found = self.ws_tokens.get(token)
        if found is None or time.monotonic() - found[1] >= self.ws_token_ttl:
            return None
        return found[0]

    def altname(self, symbol: str) -> str:
        """The Kraken pair name of an engine symbol (``BTCUSDT`` -> ``XBTUSDT``)."""
        return self._alt_of[symbol]


def _gateway(status: int) -> SimResponse:
    """What a gateway in front of the engine answers: a page, not a Kraken answer."""
    page = f"<html><body>{status} Service Unavailable</body></html>".encode()
    return SimResponse(status, {"content-type": "text/html"}, page)
