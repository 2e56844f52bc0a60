"""The simulator's Kraken spot dialect: the same engine, Kraken's wire format and checks.

It checks what Kraken checks, the way Kraken documents it: the ``API-Key`` header
(``EAPI:Invalid key``), ``API-Sign`` = base64(HMAC-SHA512(base64decode(secret), path +
SHA256(nonce + body))) over the exact body (``EAPI:Invalid signature``), a nonce larger
than the last one the key used (``EAPI:Invalid nonce``; a nonce window can be set per
dialect), ``AddOrder``'s ``deadline`` (``EService:Deadline elapsed``), the ``otp`` of
keys enrolled with 2FA (:meth:`KrakenDialect.enroll_otp`; ``EAPI:Invalid signature`` as
at Kraken), pair rules from ``AssetPairs``, balances, duplicate ``cl_ord_id`` among open
orders, and optionally the decaying API and add/cancel counters. Faults come from the
same schedule as Binance's and are applied by the same handler
(:class:`~securetrade.sim.dialect.Dialect`); a 5xx fault answers with a gateway's HTML
page, as Kraken's edge does.

As the venue does by default, the call counters run at the Starter tier (``KRAKEN_STARTER``;
``limits=None`` turns them off), fills pay the fees ``AssetPairs`` advertises, ``validate``
checks an order without placing it, a post-only order that would take is cancelled, and
``userref`` is kept. ``TradesHistory``, ``QueryTrades``, ``SystemStatus`` and the whole
``Ticker`` answer are served, and ``GetWebSocketsToken`` issues the tokens its WebSocket
API (:mod:`securetrade.sim.kraken_ws`) accepts.

Orders are found as Kraken documents it: ``QueryOrders`` by ``txid`` (``cl_ord_id`` narrows
the result; without a ``txid`` it is refused unless ``query_needs_txid`` is turned off),
``OpenOrders`` and ``ClosedOrders`` filtered by ``cl_ord_id``, ``CancelOrder`` by ``txid`` or
``cl_ord_id``. ``ClosedOrders`` pages like Kraken's: the 50 most recently
closed first, ``ofs`` to page on, ``count`` for all that match.

Engine symbols and assets are venue-neutral (``BTCUSDT``, ``BTC``); here they wear
Kraken's names (pair ``XBTUSDT``, asset ``XXBT``).
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InvalidRequest
from .dialect import Dialect, DialectStats, Refusal, SimKey, SimRequest, SimResponse, json_response
from .engine import FeeSchedule, Market, SimInstrument, SimOrder, SimRejection
from .faults import Fault, Faults
from .ledger import SimTransfer, record_withdrawal, transfers_of

__all__ = [
    "KRAKEN_FEES",
    "KRAKEN_INTERMEDIATE",
    "KRAKEN_PRO",
    "KRAKEN_STARTER",
    "KrakenDialect",
    "KrakenLimits",
    "kraken_secret",
]

# Engine asset -> (Kraken asset code, the short name used in pair altnames).
_ASSETS = {
    "BTC": ("XXBT", "XBT"),
    "ETH": ("XETH", "ETH"),
    "USD": ("ZUSD", "USD"),
    "EUR": ("ZEUR", "EUR"),
}
_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
}
_TXID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CLOSED_PAGE = 50  # ClosedOrders answers at most this many per request
_TRANSFER_PAGE = 25  # DepositStatus and WithdrawStatus, a cursor page
_AUTO_ID = "~auto-"  # engine client ids for orders placed without cl_ord_id
_UUID_HEX = frozenset("0123456789abcdefABCDEF")
_OHLC_MINUTES = frozenset({"1", "5", "15", "30", "60", "240", "1440", "10080", "21600"})
_OHLC_FRAMES = 720  # OHLC answers at most this many, the most recent
_WS_TOKEN_TTL = 900  # a WebSocket token must open a subscription within 15 minutes


def kraken_secret(raw: bytes) -> str:
    """A Kraken API secret as Kraken shows it: base64 text."""
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class KrakenLimits:
    """The decaying counters, per key: (maximum, decay per second) each."""

    api_max: int = 20
    api_decay: float = 1.0
    orders_max: int = 180
    orders_decay: float = 3.75


# The tiers of Kraken's "Spot REST API rate limits" page (docs.kraken.com/api/docs/guides/
# spot-rest-ratelimits): the call counter's maximum and decay per second, and the
# add/cancel counter's. The simulator counts Starter's by default, as a new account has.
KRAKEN_STARTER = KrakenLimits(api_max=15, api_decay=0.33, orders_max=60, orders_decay=1.0)
KRAKEN_INTERMEDIATE = KrakenLimits(api_max=20, api_decay=0.5, orders_max=125, orders_decay=2.34)
KRAKEN_PRO = KrakenLimits(api_max=20, api_decay=1.0, orders_max=180, orders_decay=3.75)
#: The fees AssetPairs advertises (``fees``, ``fees_maker``: 0.26% taker, 0.16% maker at the
#: lowest volume tier), in the currency the ``oflags`` defaults name.
KRAKEN_FEES = FeeSchedule(Decimal("0.0016"), Decimal("0.0026"), "kraken")
# Ledger and trade history calls add 2 to the call counter, every other call 1 (same page).
_HEAVY = frozenset({"TradesHistory", "QueryTrades", "Ledgers", "QueryLedgers"})
_OFLAGS = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})


@dataclass(slots=True)
class _Counter:
    level: float = 0.0
    stamp: float = 0.0

    def add(self, now: float, amount: float, decay: float) -> float:
        self.level = max(0.0, self.level - (now - self.stamp) * decay) + amount
        self.stamp = now
        return self.level


@dataclass(slots=True)
class _Stats(DialectStats):
    # The parameters of the last authenticated request per private method (``AddOrder``
    # -> ``{"nonce": ..., "cl_ord_id": ...}``): what a client actually asked for.
    last_params: dict[str, dict[str, str]] = field(default_factory=dict)


class _Error(Refusal):
    """Kraken's error: ``{"error": [text]}``, usually with status 200, counted by its text."""

    def __init__(self, text: str, status: int = 200) -> None:
        super().__init__(status, {"error": [text]}, text)


class KrakenDialect(Dialect[_Stats]):
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

    # --- public market data ----------------------------------------------------------------

    def _public(self, name: str, query: str) -> Any:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if name == "Time":
            now = self.now_ms() // 1000
            return {"unixtime": now, "rfc1123": formatdate(now, usegmt=True)}
        if name == "AssetPairs":
            wanted = [p for p in params.get("pair", "").split(",") if p]
            for pair in wanted:
                self._pair(pair)
            return {
                alt: self._pair_info(alt, inst)
                for alt, inst in self._pairs.items()
                if not wanted or alt in wanted
            }
        if name == "Assets":
            assets = {a for i in self._pairs.values() for a in (i.base, i.quote)}
            return {
                _code(a): {
                    "aclass": "currency",
                    "altname": _short(a),
                    "decimals": 10,
                    "display_decimals": 5,
                    "status": "enabled",
                }
                for a in sorted(assets)
            }
        if name == "Ticker":
            wanted = [p for p in params.get("pair", "").split(",") if p]
            pairs = wanted or list(self._pairs)
            return {alt: self._ticker(alt, self._pair(alt)) for alt in pairs}
        if name == "Depth":
            return self._depth(params)
        if name == "OHLC":
            return self._ohlc(params)
        if name == "Trades":
            return self._trades(params)
        if name == "SystemStatus":
            now = self.now_ms() // 1000
            moment = datetime.fromtimestamp(now, tz=timezone.utc)
            return {"status": "online", "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
        raise _Error("EGeneral:Unknown method", 404)

    def _depth(self, params: Mapping[str, str]) -> Any:
        """``Depth``: ``count`` 1 to 500 (default 100) levels a side, best first, each
        ``[price, volume, timestamp]``."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        count = _count(params, "count", default=100, most=500)
        bids, asks = self.market.book(inst.symbol, count)
        now = self.now_ms() // 1000
        return {
            alt: {
                "asks": [[_price(p, inst), f"{q:.8f}", now] for p, q in asks],
                "bids": [[_price(p, inst), f"{q:.8f}", now] for p, q in bids],
            }
        }

    def _ohlc(self, params: Mapping[str, str]) -> Any:
        """``OHLC``: the 720 most recent frames of ``interval`` minutes, those later than
        ``since`` (seconds), the one now forming last; ``last`` is the newest committed
        frame's time, to poll with."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        minutes = params.get("interval", "1")
        if minutes not in _OHLC_MINUTES:
            raise _Error("EGeneral:Invalid arguments:interval")
        since_text = params.get("since")
        if since_text is not None and not since_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:since")
        step = int(minutes) * 60_000
        current = self.now_ms() // step * step
        first = current - (_OHLC_FRAMES - 1) * step
        bars = self.market.bars(inst.symbol, step, first, current)
        since_ms = None if since_text is None else int(since_text) * 1000
        rows = [
            [
                bar.open_ms // 1000,
                _price(bar.open, inst),
                _price(bar.high, inst),
                _price(bar.low, inst),
                _price(bar.close, inst),
                _price(bar.quote_volume / bar.volume if bar.volume else bar.close, inst),
                f"{bar.volume:.8f}",
                bar.count,
            ]
            for bar in bars
            if since_ms is None or bar.open_ms > since_ms or bar.open_ms == current
        ]
        return {alt: rows, "last": (current - step) // 1000}

    def _trades(self, params: Mapping[str, str]) -> Any:
        """``Trades``: ``count`` (1 to 1000, default 1000) trades, oldest first: the latest,
        or the first later than ``since`` (seconds, or the nanosecond ``last`` cursor of an
        earlier answer). Each ``[price, volume, time, b/s, m/l, misc, trade id]``."""
        alt = _need(params, "pair")
        inst = self._pair(alt)
        count = _count(params, "count", default=1000, most=1000)
        since_text = params.get("since")
        if since_text is not None and not since_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:since")
        with self.market.lock:
            tape = list(self.market.tape[inst.symbol])
        if since_text is None:
            page = tape[-count:]
        else:
            since = int(since_text)
            since_ns = since * 1_000_000_000 if since < 10**12 else since
            page = [t for t in tape if t.at_ms * 1_000_000 > since_ns][:count]
        last = page[-1].at_ms * 1_000_000 if page else (int(since_text or 0) or 0)
        return {
            alt: [
                [
                    _price(t.price, inst),
                    f"{t.quantity:.8f}",
                    t.at_ms / 1000,
                    "b" if t.taker_side == "BUY" else "s",
                    "l",
                    "",
                    t.trade_id,
                ]
                for t in page
            ],
            "last": str(last),
        }

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

    def _count(self, counters: dict[str, _Counter], key: SimKey, cost: float, text: str) -> None:
        if self.limits is None:
            return
        if counters is self._api:
            ceiling, decay = self.limits.api_max, self.limits.api_decay
        else:
            ceiling, decay = self.limits.orders_max, self.limits.orders_decay
        with self._lock:
            counter = counters.setdefault(key.key_id, _Counter(stamp=self._clock()))
            if counter.add(self._clock(), cost, decay) > ceiling:
                counter.level -= cost  # refused calls are not counted against the next
                raise _Error(text)

    # --- orders ----------------------------------------------------------------------------

    def _add_order(self, key: SimKey, params: Mapping[str, str]) -> Any:
        if not key.can_trade:
            raise _Error("EGeneral:Permission denied")
        alt = _need(params, "pair")
        inst = self._pair(alt)
        side = _need(params, "type")
        kind = _need(params, "ordertype")
        if side not in ("buy", "sell"):
            raise _Error("EGeneral:Invalid arguments:type")
        if kind not in ("limit", "market", *_CONDITIONAL):
            raise _Error("EGeneral:Invalid arguments:ordertype")
        volume = _number(params, "volume")
        becomes, stop_kind = _CONDITIONAL.get(kind, (kind, None))
        stop_price = None
        if stop_kind is not None:  # price is the trigger; price2 the limit, if any
            stop_price = _number(params, "price")
            price = _number(params, "price2") if becomes == "limit" else None
        else:
            price = _number(params, "price") if kind == "limit" else None
        tif = params.get("timeinforce", "GTC")
        if tif not in ("GTC", "IOC", "GTD"):
            raise _Error("EGeneral:Invalid arguments:timeinforce")
        cl_ord_id = params.get("cl_ord_id")
        if cl_ord_id is not None and not _valid_cl_ord_id(cl_ord_id):
            raise _Error("EGeneral:Invalid arguments:cl_ord_id")
        userref = _userref(params)
        if userref is not None and cl_ord_id is not None:
            raise _Error("EGeneral:Invalid arguments:cl_ord_id and userref")
        flags = {f for f in params.get("oflags", "").split(",") if f}
        if not flags <= _OFLAGS or {"fcib", "fciq"} <= flags:
            raise _Error("EGeneral:Invalid arguments:oflags")
        if "post" in flags and kind != "limit":  # (Kraken: limit orders only)
            raise _Error("EGeneral:Invalid arguments:oflags")
        # viqc: the volume is in the quote currency; Kraken takes it on market buys alone
        # (a sell answers "Invalid arguments:viqc", as ccxt found).
        quote = volume if "viqc" in flags else None
        if quote is not None and (kind != "market" or side != "buy"):
            raise _Error("EGeneral:Invalid arguments:viqc")
        if "deadline" in params:
            self._check_deadline(params["deadline"])
        if quote is None:
            self._check_rules(inst, alt, volume, price)
        elif quote < inst.min_notional:
            raise _Error("EOrder:Cost minimum not met")
        validate = params.get("validate") in ("true", "1")
        if not validate:
            self._count(self._orders, key, 1.0, "EOrder:Rate limit exceeded")
        client_id = cl_ord_id or f"{_AUTO_ID}{next(self._auto)}"
        fees = self.fees
        if fees is not None and flags & {"fcib", "fciq"}:
            fees = FeeSchedule(fees.maker, fees.taker, "base" if "fcib" in flags else "quote")
        try:
            order = self.market.place(
                key.account,
                symbol=inst.symbol,
                side=side.upper(),
                type=becomes.upper(),
                quantity=volume,
                price=price,
                time_in_force=None if becomes == "market" else ("IOC" if tif == "IOC" else "GTC"),
                client_order_id=client_id,
                fees=fees,
                post_only="cancel" if "post" in flags else None,
                userref=userref,
                validate_only=validate,
                stop_price=stop_price,
                stop_kind=stop_kind,
                quote_quantity=quote,
            )
        except SimRejection as rej:
            raise _Error(_REJECTIONS.get(rej.reason, "EGeneral:Invalid arguments")) from None
        text = _described(
            f"{side} {volume:.8f} {alt}",
            kind,
            None if price is None else _price(price, inst),
            None if stop_price is None else _price(stop_price, inst),
        )
        if validate:  # AddOrder's validate: checked, not placed, no txid
            return {"descr": {"order": text}}
        if stop_kind is not None:
            order.display_type = kind
        self._oflags[order.order_id] = ",".join(sorted(flags)) or (
            "fciq" if side == "buy" else "fcib"
        )
        return {"descr": {"order": text}, "txid": [_txid(order.order_id)]}

    def _check_deadline(self, text: str) -> None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _Error("EGeneral:Invalid arguments:deadline") from None
        if moment.tzinfo is None:
            raise _Error("EGeneral:Invalid arguments:deadline")
        deadline_ms = int(moment.timestamp() * 1000)
        now = self.now_ms()
        if deadline_ms > now + 60_000:
            raise _Error("EGeneral:Invalid arguments:deadline")
        if now > deadline_ms:
            raise _Error("EService:Deadline elapsed")

    def _check_rules(
        self, inst: SimInstrument, alt: str, volume: Decimal, price: Decimal | None
    ) -> None:
        if volume % inst.step_size != 0:
            raise _Error("EGeneral:Invalid arguments:volume")
        if volume < inst.min_quantity:
            raise _Error("EOrder:Order minimum not met")
        if price is not None:
            if price % inst.tick_size != 0:
                decimals = _decimals(inst.tick_size)
                raise _Error(
                    f"EOrder:Invalid price:{alt} price can only be specified up to "
                    f"{decimals} decimals."
                )
            if volume * price < inst.min_notional:
                raise _Error("EOrder:Cost minimum not met")

    def _find(self, key: SimKey, params: Mapping[str, str]) -> list[SimOrder]:
        txids = [t.strip() for t in params.get("txid", "").split(",") if t.strip()]
        cl_ord_id = params.get("cl_ord_id")
        if not txids and cl_ord_id is None:
            raise _Error("EGeneral:Invalid arguments:txid")
        found: list[SimOrder] = []
        for txid in txids:
            number = _order_number(txid)
            if number is None:
                raise _Error("EOrder:Invalid order")
            try:
                found.append(
                    self.market.find(key.account, None, order_id=number, client_order_id=None)
                )
            except SimRejection:
                raise _Error("EOrder:Invalid order") from None
        if cl_ord_id is not None:
            try:
                order = self.market.find(
                    key.account, None, order_id=None, client_order_id=cl_ord_id
                )
            except SimRejection:
                return [o for o in found if o.client_order_id == cl_ord_id]
            found = [o for o in found if o.order_id == order.order_id] if txids else [order]
        return found

    def _query(self, key: SimKey, params: Mapping[str, str]) -> Any:
        trades = params.get("trades") in ("true", "1")
        userref = _userref(params)
        return {
            _txid(o.order_id): self._order_json(o, trades=trades)
            for o in self._find(key, params)
            if userref is None or o.userref == userref
        }

    def _query_trades(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """``QueryTrades``: up to 20 of the account's trades by txid, comma separated."""
        wanted = [t for t in _need(params, "txid").split(",") if t]
        if len(wanted) > 20:
            raise _Error("EGeneral:Invalid arguments:txid")
        numbers = {_order_number("O" + t[1:]) for t in wanted if t.startswith("T")}
        with self.market.lock:
            rows = [
                (o, p, q, t)
                for o in self.market.orders.values()
                if o.account == key.account
                for p, q, t in o.fills
                if t in numbers
            ]
        return {_trade_txid(t): self._trade_json(o, p, q, t) for o, p, q, t in rows}

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

    def _trades_history(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """``TradesHistory``: the account's trades after ``start`` (exclusive) up to ``end``
        (inclusive), in seconds, newest first, 50 a page from ``ofs``."""
        offset_text = params.get("ofs", "0")
        if not offset_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:ofs")
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        with self.market.lock:
            orders = [o for o in self.market.orders.values() if o.account == key.account]
            rows = [
                (o, p, q, t)
                for o in orders
                for p, q, t in o.fills
                if _between(o.fill_times.get(t, o.updated_ms), after, upto)
            ]
        rows.sort(key=lambda row: (row[0].fill_times.get(row[3], 0), row[3]), reverse=True)
        offset = int(offset_text)
        page = rows[offset : offset + _CLOSED_PAGE]
        return {
            "trades": {_trade_txid(t): self._trade_json(o, p, q, t) for o, p, q, t in page},
            "count": len(rows),
        }

    def _trade_json(self, order: SimOrder, price: Decimal, volume: Decimal, trade: int) -> Any:
        inst = self.market.instruments[order.symbol]
        fee, taker = self._fee_in_quote(order, trade, price)
        return {
            "ordertxid": _txid(order.order_id),
            "postxid": _trade_txid(trade).replace("T", "P", 1),
            "pair": self._alt_of[order.symbol],
            "time": order.fill_times.get(trade, order.updated_ms) / 1000,
            "type": order.side.lower(),
            "ordertype": order.type.lower(),
            "price": _price(price, inst),
            "cost": _price(price * volume, inst),
            "fee": _price(fee, inst),
            "vol": f"{volume:.8f}",
            "margin": "0.00000",
            "leverage": "0",
            "misc": "",
            "trade_id": trade,
            "maker": not taker,
        }

    def _fee_in_quote(self, order: SimOrder, trade: int, price: Decimal) -> tuple[Decimal, bool]:
        """A fill's fee in the quote currency (how Kraken reports every fee), and whether
        the fill took liquidity."""
        entry = order.fees.get(trade)
        if entry is None:
            return Decimal(0), order.type == "MARKET"
        amount, asset, taker = entry
        in_base = asset == self.market.instruments[order.symbol].base
        return (amount * price if in_base else amount), taker

    def _transfers(self, key: SimKey, params: Mapping[str, str], deposits: bool) -> Any:
        """``DepositStatus`` / ``WithdrawStatus``: newest first; without ``cursor`` the
        most recent as a plain list, with it ``_TRANSFER_PAGE`` a page and the
        ``next_cursor`` (an offset, as text) of the next, ``None`` after the last."""
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        asset = params.get("asset")
        rows = [
            t
            for t in transfers_of(self.market, key.account, "deposit" if deposits else "withdrawal")
            if _between(t.at_ms, after, upto) and (asset is None or _engine_asset(asset) == t.asset)
        ]
        cursor = params.get("cursor")
        if cursor is None or cursor == "false":
            return [self._transfer_json(t, deposits) for t in rows[:_TRANSFER_PAGE]]
        offset = 0 if cursor == "true" else int(cursor) if cursor.isdigit() else -1
        if offset < 0:
            raise _Error("EGeneral:Invalid arguments:cursor")
        page = rows[offset : offset + _TRANSFER_PAGE]
        following = offset + len(page)
        return {
            "deposit" if deposits else "withdrawals": [
                self._transfer_json(t, deposits) for t in page
            ],
            "next_cursor": str(following) if following < len(rows) else None,
        }

    @staticmethod
    def _transfer_json(transfer: SimTransfer, deposit: bool) -> dict[str, Any]:
        return {
            "method": transfer.network,
            "aclass": "currency",
            "asset": _code(transfer.asset),
            "refid": f"{'D' if deposit else 'W'}{transfer.transfer_id:017d}",
            "txid": transfer.tx_id,
            "info": transfer.address,
            "amount": f"{transfer.amount:.8f}",
            "fee": f"{transfer.fee:.8f}",
            "time": transfer.at_ms // 1000,
            "status": "Success",
            "network": transfer.network,
        }

    def _cancel(self, key: SimKey, params: Mapping[str, str]) -> Any:
        if "txid" not in params and "cl_ord_id" not in params:
            raise _Error("EGeneral:Invalid arguments:txid")
        self._count(self._orders, key, 1.0, "EOrder:Rate limit exceeded")
        try:
            (order,) = self._find(key, params)
        except (_Error, ValueError):
            raise _Error("EOrder:Unknown order") from None
        try:
            self.market.cancel(key.account, None, order_id=order.order_id, client_order_id=None)
        except SimRejection:
            raise _Error("EOrder:Unknown order") from None
        return {"count": 1, "pending": False}

    def _open_orders(self, key: SimKey, params: Mapping[str, str]) -> dict[str, Any]:
        cl_ord_id = params.get("cl_ord_id")
        userref = _userref(params)
        trades = params.get("trades") in ("true", "1")
        return {
            _txid(o.order_id): self._order_json(o, trades=trades)
            for o in self.market.open_orders(key.account, None)
            if (cl_ord_id is None or o.client_order_id == cl_ord_id)
            and (userref is None or o.userref == userref)
        }

    def _closed_orders(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """A page of closed orders, the most recently closed first."""
        offset_text = params.get("ofs", "0")
        if not offset_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:ofs")
        offset = int(offset_text)
        cl_ord_id = params.get("cl_ord_id")
        userref = _userref(params)
        trades = params.get("trades") in ("true", "1")
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        closetime = params.get("closetime", "both")
        if closetime not in ("open", "close", "both"):
            raise _Error("EGeneral:Invalid arguments:closetime")

        def within(order: SimOrder) -> bool:  # by when it opened, closed, or either
            opened = _between(order.created_ms, after, upto)
            closed = _between(order.updated_ms, after, upto)
            return {"open": opened, "close": closed, "both": opened or closed}[closetime]

        with self.market.lock:
            closed = [
                o
                for o in self.market.orders.values()
                if o.account == key.account
                and not o.is_open
                and (cl_ord_id is None or o.client_order_id == cl_ord_id)
                and (userref is None or o.userref == userref)
                and within(o)
            ]
        closed.sort(key=lambda o: (o.updated_ms, o.order_id), reverse=True)
        page = closed[offset : offset + _CLOSED_PAGE]
        return {
            "closed": {_txid(o.order_id): self._order_json(o, trades=trades) for o in page},
            "count": len(closed),
        }

    def _order_json(self, order: SimOrder, *, trades: bool = False) -> dict[str, Any]:
        inst = self.market.instruments[order.symbol]
        alt = self._alt_of[order.symbol]
        kind = order.display_type or order.type.lower()
        price = _price(order.price, inst) if order.price is not None else "0"
        price2 = "0"
        if order.stop_price is not None:  # Kraken: price the trigger, price2 the limit
            price, price2 = _price(order.stop_price, inst), price
        average = order.quote_filled / order.filled if order.filled else Decimal(0)
        text = _described(
            f"{order.side.lower()} {order.quantity:.8f} {alt}",
            kind,
            None if order.price is None else _price(order.price, inst),
            None if order.stop_price is None else _price(order.stop_price, inst),
        )
        closed = not order.is_open
        fee = sum((self._fee_in_quote(order, t, p)[0] for p, _, t in order.fills), Decimal(0))
        result: dict[str, Any] = {
            "refid": None,
            "userref": order.userref if order.userref is not None else 0,
            "cl_ord_id": None
            if order.client_order_id.startswith(_AUTO_ID)
            else order.client_order_id,
            "status": _STATUS[order.status],
            "opentm": order.created_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": alt,
                "type": order.side.lower(),
                "ordertype": kind,
                "price": price,
                "price2": price2,
                "leverage": "none",
                "order": text,
                "close": "",
            },
            # A viqc order's volume is the quote amount it was given; what executed is base.
            "vol": f"{order.quote_order_qty or order.quantity:.8f}",
            "vol_exec": f"{order.filled:.8f}",
            "cost": _price(order.quote_filled, inst),
            "fee": _price(fee, inst),
            "price": _price(average, inst),
            "stopprice": price if order.stop_price is not None else "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": self._oflags.get(order.order_id, "fciq"),
        }
        if trades and order.fills:
            result["trades"] = [_trade_txid(t) for _, _, t in order.fills]
        if closed:
            result["closetm"] = order.updated_ms / 1000
            result["reason"] = order.reason
        return result

    def _ticker(self, alt: str, inst: SimInstrument) -> dict[str, Any]:
        """Every field of Kraken's Ticker answer: ask, bid, last trade, volume, VWAP,
        trade count, low, high and today's opening price."""
        with self.market.lock:
            last = self.market.price(inst.symbol)
            fills = [
                (p, q)
                for o in self.market.orders.values()
                if o.symbol == inst.symbol
                for p, q, _ in o.fills
            ]
        volume = sum((q for _, q in fills), Decimal(0))
        vwap = sum((p * q for p, q in fills), Decimal(0)) / volume if volume else last
        prices = [p for p, _ in fills] + [last, inst.start_price]
        (bid,), (ask,) = self.market.book(inst.symbol, 1)
        text, vol, vw = _price(last, inst), f"{volume:.8f}", _price(vwap, inst)
        low, high = _price(min(prices), inst), _price(max(prices), inst)
        last_qty = f"{fills[-1][1]:.8f}" if fills else "0.00000000"
        return {
            "a": [_price(ask[0], inst), f"{int(ask[1])}", f"{ask[1]:.3f}"],
            "b": [_price(bid[0], inst), f"{int(bid[1])}", f"{bid[1]:.3f}"],
            "c": [text, last_qty],
            "v": [vol, vol],
            "p": [vw, vw],
            "t": [len(fills), len(fills)],
            "l": [low, low],
            "h": [high, high],
            "o": _price(inst.start_price, inst),
        }

    def _balances(self, key: SimKey, *, extended: bool) -> Any:
        account = self.market.accounts[key.account]
        with self.market.lock:
            rows = {a: (v[0], v[1]) for a, v in account.balances.items()}
        if not extended:
            return {_code(a): f"{free + held:.10f}" for a, (free, held) in sorted(rows.items())}
        return {
            _code(a): {"balance": f"{free + held:.10f}", "hold_trade": f"{held:.10f}"}
            for a, (free, held) in sorted(rows.items())
        }

    # --- names -------------------------------------------------------------------------------

    @staticmethod
    def _altname(inst: SimInstrument) -> str:
        return _short(inst.base) + _short(inst.quote)

    def altname(self, symbol: str) -> str:
        """The Kraken pair name of an engine symbol (``BTCUSDT`` -> ``XBTUSDT``)."""
        return self._alt_of[symbol]

    def _pair(self, alt: str) -> SimInstrument:
        inst = self._pairs.get(alt)
        if inst is None:
            raise _Error("EQuery:Unknown asset pair")
        return inst

    def _pair_info(self, alt: str, inst: SimInstrument) -> dict[str, Any]:
        return {
            "altname": alt,
            "wsname": f"{_short(inst.base)}/{_short(inst.quote)}",
            "aclass_base": "currency",
            "base": _code(inst.base),
            "aclass_quote": "currency",
            "quote": _code(inst.quote),
            "lot": "unit",
            "cost_decimals": _decimals(inst.tick_size) + _decimals(inst.step_size),
            "pair_decimals": _decimals(inst.tick_size),
            "lot_decimals": _decimals(inst.step_size),
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": [[0, 0.26]],
            "fees_maker": [[0, 0.16]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": format(inst.min_quantity, "f"),
            "costmin": format(inst.min_notional, "f"),
            "tick_size": format(inst.tick_size, "f"),
            "status": "online",
        }


_CONDITIONAL = {  # Kraken's conditional order types -> (what they become, loss or profit)
    "stop-loss": ("market", "loss"),
    "stop-loss-limit": ("limit", "loss"),
    "take-profit": ("market", "profit"),
    "take-profit-limit": ("limit", "profit"),
}
_REJECTIONS = {
    "would_trigger": "EOrder:Invalid price:trigger price would trigger immediately",
    "bad_symbol": "EQuery:Unknown asset pair",
    "duplicate": "EOrder:Duplicate order",
    "insufficient": "EOrder:Insufficient funds",
    "filter": "EGeneral:Invalid arguments",
}


def _seconds(params: Mapping[str, str], name: str) -> float | None:
    """``start`` or ``end``: a unix time in seconds (a txid there is not modelled)."""
    text = params.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise _Error(f"EGeneral:Invalid arguments:{name}") from None


def _between(at_ms: int, after: float | None, upto: float | None) -> bool:
    """After ``start`` (exclusive) and up to ``end`` (inclusive), as Kraken's ranges are."""
    seconds = at_ms / 1000
    return (after is None or seconds > after) and (upto is None or seconds <= upto)


def _engine_asset(code: str) -> str:
    """A Kraken asset code (``XXBT``, ``ZUSD``, ``USDT``) as the engine names it."""
    for asset, (long, short) in _ASSETS.items():
        if code in (long, short):
            return asset
    return code


def _code(asset: str) -> str:
    return _ASSETS.get(asset, (asset, asset))[0]


def _short(asset: str) -> str:
    return _ASSETS.get(asset, (asset, asset))[1]


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _price(value: Decimal, inst: SimInstrument) -> str:
    return f"{value:.{_decimals(inst.tick_size)}f}"


def _txid(number: int) -> str:
    """Kraken-shaped order id (``OABCDE-FGHIJ-KLMNOP``) that encodes the engine's number."""
    digits = []
    for _ in range(16):
        number, rest = divmod(number, 32)
        digits.append(_TXID_ALPHABET[rest])
    text = "".join(reversed(digits))
    return f"O{text[:5]}-{text[5:10]}-{text[10:]}"


def _order_number(txid: str) -> int | None:
    parts = txid.split("-")
    if len(parts) != 3 or [len(p) for p in parts] != [6, 5, 6] or not txid.startswith("O"):
        return None
    number = 0
    for char in "".join(parts)[1:]:
        index = _TXID_ALPHABET.find(char)
        if index < 0:
            return None
        number = number * 32 + index
    return number


def _trade_txid(number: int) -> str:
    """Kraken-shaped trade id (``TABCDE-FGHIJ-KLMNOP``) for the engine's trade number."""
    return "T" + _txid(number)[1:]


def _userref(params: Mapping[str, str]) -> int | None:
    """``userref``: a signed 32-bit integer (AddOrder's reference), or absent."""
    text = params.get("userref")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _Error("EGeneral:Invalid arguments:userref") from None
    if not -(2**31) <= value < 2**31:
        raise _Error("EGeneral:Invalid arguments:userref")
    return value


def _described(head: str, kind: str, limit: str | None, trigger: str | None) -> str:
    """An order's ``descr.order`` text as Kraken writes it: ``sell 0.01000000 XBTUSD @
    limit 60000.0``, or for a trigger order ``... @ stop loss 58000.0 -> limit 57500.0``."""
    if trigger is None:
        return f"{head} @ {kind}" + ("" if limit is None else f" {limit}")
    named = kind.removesuffix("-limit").replace("-", " ")
    return f"{head} @ {named} {trigger}" + ("" if limit is None else f" -> limit {limit}")


def _valid_cl_ord_id(text: str) -> bool:
    if len(text) == 36:
        groups = text.split("-")
        return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(
            set(g) <= _UUID_HEX for g in groups
        )
    if len(text) == 32:
        return set(text) <= _UUID_HEX
    return 1 <= len(text) <= 18 and text.isascii() and text.isprintable() and " " not in text


def _need(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return value


def _count(params: Mapping[str, str], name: str, *, default: int, most: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return int(text)


def _number(params: Mapping[str, str], name: str) -> Decimal:
    text = _need(params, name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Error(f"EGeneral:Invalid arguments:{name}") from None
    if not value.is_finite() or value <= 0:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return value


def _gateway(status: int) -> SimResponse:
    """What a gateway in front of the engine answers: a page, not a Kraken answer."""
    page = f"<html><body>{status} Service Unavailable</body></html>".encode()
    return SimResponse(status, {"content-type": "text/html"}, page)
