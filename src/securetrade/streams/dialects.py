"""What differs per venue: URLs, the authentication frame, and how frames become events.

A dialect is a small object with no I/O; the supervisor does the I/O. Adding a venue is one
module with one class like :class:`BinanceStreams` registered in :data:`DIALECTS`.

Optional members, read when present: ``transport = "http"`` with ``headers(key, signer)``,
``ids(frame)`` and ``replay_url(rest_base)`` for a numbered line stream over HTTPS
(OANDA); ``redact(frame)`` for the frame log; ``fills_in_history = True`` for a venue
whose executions are read back from the account's trade history, having no per-order
list (Alpaca); ``refusal_floor`` (HTTP status -> seconds to
wait before dialling again); ``market_data = False`` where ``watch_ticker`` is not
offered.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from .._checks import instance, is_text, text, whole
from ..errors import AuthenticationRejected, InvalidRequest
from ..keys import ApiKey, Environment
from ..models import to_decimal
from ..signing import Signer
from .events import BookUpdate, TickerUpdate
from .options import Marker

__all__ = [
    "DIALECTS",
    "BinanceStreams",
    "ExecutionReport",
    "Parsed",
    "StreamDialect",
    "dialect_for",
]


@dataclass(slots=True)
class ExecutionReport:
    """One order event as the venue reported it, before deduplication. Not frozen: one is
    built per frame on the path to the consumer, and a frozen dataclass sets each of its 14
    fields through ``object.__setattr__`` (2.6 against 0.8 µs); nothing changes one."""

    symbol: str
    order_id: str
    client_order_id: str
    side: str
    status: str
    execution: str  # NEW, TRADE, CANCELED, EXPIRED, REJECTED, ...
    quantity: Decimal
    cumulative: Decimal  # filled so far, this execution included
    last_quantity: Decimal
    last_price: Decimal
    trade_id: str | None
    commission: Decimal
    commission_asset: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Funds that left the account, as the venue reported them (a negative balance update)."""

    asset: str
    amount: Decimal
    at_ms: int


#: what a dialect reads from frames; a :class:`Marker` reports a gap the frames show
#: (a sequence number skipped, a checksum that did not match)
Parsed = ExecutionReport | Withdrawal | TickerUpdate | BookUpdate | Marker


class StreamDialect(Protocol):
    """The per-venue part of streaming."""

    name: str
    #: the least time between two connection attempts the venue tolerates
    min_reconnect_delay: float
    #: how long a connection may live before the venue closes it
    max_connection_age: float

    def user_url(self, environment: Environment) -> str:
        """The URL of the account's user data stream in ``environment``."""

    def market_url(self, environment: Environment, channel: str, symbol: str) -> str:
        """The URL of ``symbol``'s ``channel`` (``ticker`` or ``book``) in ``environment``."""

    def auth_frames(self, key: ApiKey, signer: Signer, now_ms: int) -> Sequence[str | bytes]:
        """The frames that authenticate and subscribe, signed with ``key`` at venue time ``now_ms``;
        sent on every (re)connect."""

    def check_auth_answer(self, frame: Any) -> bool:
        """True once ``frame`` confirms the subscription; raises when the venue refused it."""

    def probe(self) -> str | None:
        """A frame the venue answers, sent when the socket goes quiet to tell a stale connection
        from a quiet account; None if there is none."""

    def parse(self, frame: Any) -> list[Parsed]:
        """The events in one decoded frame (none for frames of no interest, such as answers)."""


def _money(value: Any, name: str) -> Decimal:
    return to_decimal(str(value), field=name)


class BinanceStreams:
    """Binance Spot: user data over the WebSocket API's signed subscription
    (``userDataStream.subscribe.signature``; the REST listenKey stream was retired for
    Spot), market data over the raw ``/ws/<stream>`` endpoint."""

    name = "binance"
    min_reconnect_delay = 1.0  # 300 connection attempts per 5 minutes per IP
    max_connection_age = 24 * 3600.0

    _USER: ClassVar[dict[Environment, str]] = {
        Environment.LIVE: "wss://ws-api.binance.com:443/ws-api/v3",
        Environment.TESTNET: "wss://ws-api.testnet.binance.vision/ws-api/v3",
    }
    _MARKET: ClassVar[dict[Environment, str]] = {
        Environment.LIVE: "wss://stream.binance.com:9443",
        Environment.TESTNET: "wss://stream.testnet.binance.vision",
    }

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def user_url(self, environment: Environment) -> str:
        """The WebSocket API URL of ``environment``; :class:`InvalidRequest` (pass ``stream_url=``)
        where Binance has none."""
        environment = Environment(environment)  # a member, or its value; else InvalidRequest
        try:
            return self._USER[environment]
        except KeyError:
            raise InvalidRequest(
                f"binance has no {environment.value} stream URL; pass stream_url="
            ) from None

    def market_url(self, environment: Environment, channel: str, symbol: str) -> str:
        """The raw stream URL of ``symbol``'s ``channel`` (``ticker`` or ``book``) in
        ``environment``."""
        environment = Environment(environment)
        base = self._MARKET.get(environment)
        if base is None:
            raise InvalidRequest(f"binance has no {environment.value} stream URL; pass stream_url=")
        return market_path(base, channel, symbol)

    def auth_frames(self, key: ApiKey, signer: Signer, now_ms: int) -> list[str]:
        """One signed ``userDataStream.subscribe.signature`` request (the key id, the timestamp and
        their signature; never the secret)."""
        check_signing(key, signer, now_ms)
        params = {"apiKey": key.key_id, "timestamp": str(now_ms)}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = signer.sign(payload.encode("ascii"))
        request = {
            "id": f"sub-{next(self._ids)}",
            "method": "userDataStream.subscribe.signature",
            "params": params,
        }
        return [json.dumps(request)]

    def check_auth_answer(self, frame: Any) -> bool:
        """True once the subscription is confirmed; raises when it was refused."""
        if not isinstance(frame, dict) or "status" not in frame:
            return False
        if str(frame.get("id", "")).startswith("sub-"):
            if frame["status"] == 200:
                return True
            error = frame.get("error") or {}
            raise AuthenticationRejected(
                f"binance refused the user data subscription ({error.get('code')}: "
                f"{error.get('msg')}); check the key is valid, has READ, and the clock is synced"
            )
        return False

    def probe(self) -> str | None:
        """A WebSocket API ``ping`` request: any answer proves the path still flows."""
        return json.dumps({"id": f"probe-{next(self._ids)}", "method": "ping", "params": {}})

    def parse(self, frame: Any) -> list[Parsed]:
        """Execution reports, withdrawals (negative balance updates), tickers and book snapshots in
        ``frame``; anything else is ignored."""
        if not isinstance(frame, dict):
            return []
        if "subscriptionId" in frame and isinstance(frame.get("event"), dict):
            return self._user_event(frame["event"])
        if "b" in frame and "a" in frame and "s" in frame:  # bookTicker
            return [
                TickerUpdate(
                    self.name,
                    str(frame["s"]),
                    _money(frame["b"], "b"),
                    _money(frame["B"], "B"),
                    _money(frame["a"], "a"),
                    _money(frame["A"], "A"),
                    int(frame.get("E", 0)),
                )
            ]
        if "lastUpdateId" in frame and "bids" in frame:
            return [
                BookUpdate(
                    self.name,
                    str(frame.get("s", "")),
                    tuple((_money(p, "bid"), _money(q, "bid")) for p, q in frame["bids"]),
                    tuple((_money(p, "ask"), _money(q, "ask")) for p, q in frame["asks"]),
                    int(frame["lastUpdateId"]),
                )
            ]
        return []

    def _user_event(self, event: dict[str, Any]) -> list[Parsed]:
        kind = event.get("e")
        if kind == "executionReport":
            execution = str(event["x"])
            # a cancel carries the cancel request's id in c and the order's own in C
            cid = str(event.get("C") or event["c"]) if execution == "CANCELED" else str(event["c"])
            trade = event.get("t", -1)
            # positional, in the fields' order (keywords cost 0.5 µs per frame here)
            return [
                ExecutionReport(
                    str(event["s"]),  # symbol
                    str(event["i"]),  # order_id
                    cid,  # client_order_id
                    str(event["S"]),  # side
                    str(event["X"]),  # status
                    execution,
                    to_decimal(event["q"], field="q"),  # quantity; to_decimal takes JSON's
                    to_decimal(event["z"], field="z"),  # cumulative; types itself
                    to_decimal(event["l"], field="l"),  # last_quantity
                    to_decimal(event["L"], field="L"),  # last_price
                    None if trade in (-1, None) else str(trade),  # trade_id
                    to_decimal(event.get("n") or "0", field="n"),  # commission
                    event.get("N"),  # commission_asset
                    int(event.get("E", 0)),  # at_ms
                )
            ]
        if kind == "balanceUpdate":
            delta = _money(event["d"], "d")
            if delta < 0:
                return [Withdrawal(str(event["a"]), -delta, int(event.get("E", 0)))]
        return []


_CHANNELS = {"ticker": "bookTicker", "book": "depth5@100ms"}


def check_signing(key: Any, signer: Any, now_ms: Any) -> None:
    """``auth_frames``' arguments, refused before anything is signed: a wrong one would be
    an AttributeError, or its text signed and sent (``str(None)`` as the timestamp)."""
    instance("key", key, ApiKey, optional=False)
    if not callable(getattr(signer, "sign", None)):
        raise InvalidRequest("signer must be the key's Signer: securetrade.signing.signer_for(key)")
    whole("now_ms", now_ms, 0)


def market_path(base: str, channel: str, symbol: str) -> str:
    """``wss://host/ws/<symbol>@<channel>`` (Binance's raw stream path)."""
    stream = _CHANNELS.get(channel) if is_text(channel) else None  # no caller's ==
    if stream is None:
        raise InvalidRequest("channel must be 'ticker' or 'book'")
    text("symbol", symbol)
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}/ws/{symbol.lower()}@{stream}"


DIALECTS: dict[str, Callable[[], StreamDialect]] = {"binance": BinanceStreams}


def dialect_for(venue: str) -> StreamDialect:
    """The stream dialect of a venue, or :class:`InvalidRequest` naming the ones there are."""
    factory = DIALECTS.get(text("venue", venue))
    if factory is None:
        raise InvalidRequest(
            f"{venue} has no live streams yet (streams exist for: {', '.join(sorted(DIALECTS))})"
        )
    return factory()
