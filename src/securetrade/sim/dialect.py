"""What every simulated venue does the same way, whatever its wire format.

A request meets the fault schedule, is counted as it arrives (late, for a
``slow_arrival``), passes the venue's gateway checks, is processed, and is answered in
JSON; the fault schedule decides when it arrives, whether it is processed at all and
whether its answer reaches the client. :class:`Dialect` holds that
sequence once. A dialect (``binance.py``, ``kraken.py``) supplies only what is its own:
paths, checks, error codes and payload shapes.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .engine import Market
from .faults import Fault, Faults

__all__ = [
    "Dialect",
    "DialectStats",
    "Refusal",
    "SimKey",
    "SimRequest",
    "SimResponse",
    "json_response",
]


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False  # the fault schedule says: close the connection instead of answering
    reset: bool = False  # the fault schedule says: send half the response, then reset
    early_hints: bool = False  # the fault schedule says: send a 103 before the answer


@dataclass(frozen=True, slots=True)
class SimKey:
    """An API key the simulated exchange knows."""

    key_id: str
    account: str
    hmac_secret: bytes | None = None
    ed25519_public: Ed25519PublicKey | None = None
    can_trade: bool = True
    can_withdraw: bool = False
    ip_restricted: bool = True


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request as the server read it; ``target`` is the path with its query string."""

    method: str
    target: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    client: str  # the peer's address, which IP-based limits count by


@dataclass(slots=True)
class DialectStats:
    """What the tests read back about the requests a venue received."""

    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)  # "POST /api/v3/order" -> count
    #: Refusals by the venue's error code (Binance) or error text (Kraken).
    rejections: dict[int | str, int] = field(default_factory=dict)


class Refusal(Exception):
    """The venue refuses the request: ``payload`` is its error body in the venue's shape,
    ``reason`` the code or text :attr:`DialectStats.rejections` counts it under."""

    def __init__(
        self,
        status: int,
        payload: Any,
        reason: int | str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.payload, self.reason = status, payload, reason
        self.headers = headers or {}


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> SimResponse:
    """An answer with a compact JSON body, as the venues send them; none for a 204."""
    if status == 204:  # No Content (Alpaca's accepted cancel): no body may follow
        return SimResponse(status, dict(headers or {}), b"")
    body = json.dumps(payload, separators=(",", ":")).encode()
    return SimResponse(status, {"content-type": "application/json", **(headers or {})}, body)


def _unreadable(response: SimResponse, *, html: bool, status: int = 200) -> SimResponse:
    """A complete answer (``status``, 200 unless given) whose body no client can read: the
    JSON cut in half, or the HTML page a proxy or CDN sends in place of the venue's."""
    if html:
        body = (
            f"<html><head><title>{status}</title></head><body>Please wait...</body></html>"
        ).encode()
        return replace(
            response,
            status=status,
            headers={**response.headers, "content-type": "text/html"},
            body=body,
        )
    return replace(response, status=200, body=response.body[: max(1, len(response.body) // 2)])


StatsT = TypeVar("StatsT", bound=DialectStats)


class Dialect(ABC, Generic[StatsT]):
    """One venue's REST API over a :class:`Market`, with the shared fault schedule.

    :meth:`handle` is the sequence every venue follows; a subclass answers the parts that
    differ: :meth:`_process` (the venue's endpoints), :meth:`_fault_answer` (its 5xx and
    throttling answers), and optionally :meth:`_gate` (limits checked before processing)
    and :meth:`_usage` (headers on every processed answer).
    """

    def __init__(
        self,
        market: Market,
        stats: StatsT,
        *,
        faults: Faults | None,
        clock_offset_ms: int,
        clock: Callable[[], float],
    ) -> None:
        self.market = market
        self.faults = faults or Faults()
        self.clock_offset_ms = clock_offset_ms
        self._clock = clock
        self.keys: dict[str, SimKey] = {}
        self.stats = stats
        self._lock = threading.Lock()

    def add_key(self, key: SimKey) -> None:
        """Register a key the venue will accept."""
        self.keys[key.key_id] = key

    def now_ms(self) -> int:
        """The exchange's clock, which may be set apart from ours on purpose."""
        return int(self._clock() * 1000) + self.clock_offset_ms

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, client: str
    ) -> SimResponse:
        """Answer one request, with whatever the fault schedule has in store for it."""
        path, _, query = target.partition("?")
        request = SimRequest(method, target, path, query, headers, body, client)
        fault = self.faults.take(method, path, client)
        kind = None if fault is None else fault.kind
        if fault is not None and kind == "slow_arrival":
            time.sleep(fault.seconds)  # still on its way: the venue counts it when it gets here
        with self._lock:
            self._arrived(request)
        if kind == "drop_request":  # lost before the venue: nothing is processed
            return SimResponse(0, {}, b"", drop=True)
        if fault is not None and kind in ("status", "rate_limit", "ban"):  # not processed
            refused = self._fault_answer(fault)
            if refused is not None:
                return refused
        limited = self._gate(request)
        if limited is not None:
            return limited
        delay = fault.seconds if fault is not None and kind == "delay" else 0.0
        try:
            if kind == "cancel_not_found":  # past the gateway, but not processed
                raise self._unknown_order(request)
            status, payload = self._process(request, delay)
        except Refusal as err:
            with self._lock:
                rejections = self.stats.rejections
                rejections[err.reason] = rejections.get(err.reason, 0) + 1
            return json_response(err.status, err.payload, {**self._usage(request), **err.headers})
        if fault is not None and kind in ("status_after", "rate_limit_after"):  # processed
            replaced = self._fault_answer(fault)
            if replaced is not None:
                return replaced
        if fault is not None and kind == "strip_after" and isinstance(payload, dict):
            payload = {name: value for name, value in payload.items() if name != fault.field}
        response = json_response(status, payload, self._usage(request))
        if kind in ("garbled_after", "html_after"):  # processed, the answer unreadable
            return _unreadable(response, html=kind == "html_after")
        if fault is not None and kind == "blocked_after":  # processed, a 4xx page instead
            return _unreadable(response, html=True, status=fault.status)
        if fault is not None and kind == "empty_after":  # processed, a bare status instead
            return replace(response, status=fault.status, body=b"")
        if kind == "early_hints":  # processed, answered after an interim 103
            return replace(response, early_hints=True)
        if kind in ("drop_response", "reset"):  # processed, the answer lost on the way
            return replace(response, drop=kind == "drop_response", reset=kind == "reset")
        return response

    # --- what a venue supplies -------------------------------------------------------------

    def _arrived(self, request: SimRequest) -> None:
        """Count a request as it arrives (called under the lock)."""
        self.stats.requests += 1
        name = f"{request.method} {request.path}"
        self.stats.by_path[name] = self.stats.by_path.get(name, 0) + 1

    def _gate(self, request: SimRequest) -> SimResponse | None:
        """A refusal before processing (the venue's own rate limits), or None to go on."""
        return None

    def _usage(self, request: SimRequest) -> dict[str, str]:
        """Headers the venue adds to every answer it processed or refused."""
        return {}

    @abstractmethod
    def _process(self, request: SimRequest, delay: float) -> tuple[int, Any]:
        """The venue's answer as (status, JSON payload), or :class:`Refusal`. ``delay``
        is how long to hold the request where this venue queues it (a ``delay`` fault)."""

    @abstractmethod
    def _unknown_order(self, request: SimRequest) -> Refusal:
        """This venue's refusal of a cancel of an order it does not know (for the
        ``cancel_not_found`` fault, whatever the request)."""

    @abstractmethod
    def _fault_answer(self, fault: Fault) -> SimResponse | None:
        """What this venue sends for a fault that replaces the answer (``status``,
        ``status_after``, ``rate_limit``, ``rate_limit_after``, ``ban``); None where the
        venue has no such answer, and the fault leaves the request alone."""
