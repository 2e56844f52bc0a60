"""ccxt as a codec: it builds, signs and reads requests; it never opens a connection.

A ccxt unified method (``create_order``, ``fetch_order``...) does three things in one call:
it turns unified arguments into an exchange request and signs it (``sign()``), sends it
(``fetch()``), and turns the answer into a unified structure or a ccxt exception. We keep
the first and the last and take the middle away, so that our layers sit in between:

* **capture**: the unified method runs with ``fetch`` replaced by a function that records
  the signed request and stops the call. Nothing is sent. The request goes back to the
  core, which sends it through its rate limiter and the pinned transport.
* **replay**: the same unified method runs again with ``fetch`` replaced by a function
  that hands ccxt the answer we received, through ccxt's own error handling
  (``handle_errors``, ``handle_http_status_code``) and parsing.

The exchange object's clock reads the venue time the core gives, its throttler and
retries are off, its verbose log goes through our redaction, and it holds the API secret
only for the duration of one call.

A key with a second factor (Kraken's 2FA) has its one-time password added to the
parameters of every private call the codec builds, before ccxt signs them, so the ``otp``
travels inside the signed body as the venue requires; ccxt itself knows of no such field.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..._checks import shown
from ...errors import InvalidRequest
from ...keys import ApiKey
from ...keys.otp import OtpSource
from ...signing import Signer, signer_for
from ...transport.base import HttpRequest, HttpResponse
from ...transport.redaction import redact_headers, redact_query

__all__ = ["Codec", "CcxtKey", "CcxtRequest", "CcxtResponse", "UnifiedCall"]

log = logging.getLogger("securetrade.ccxt")


@dataclass(frozen=True, slots=True)
class UnifiedCall:
    """One ccxt unified method call: ``method(*args, params)``."""

    method: str
    args: tuple[Any, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


class CcxtKey:
    """An API key as ccxt reads it: lent to the exchange object for one call at a time.

    It is the venue's signer for the key: ccxt's ``sign()`` makes the signature, from the
    credentials :meth:`Codec.build` lends it. :meth:`sign` is our own signer for the key's
    kind, which checks (in the tests) that ccxt signed exactly the bytes it sends.
    """

    __slots__ = ("_key", "_own")

    def __init__(self, key: ApiKey) -> None:
        self._key = key
        self._own: Signer | None = None

    @property
    def key_id(self) -> str:
        return self._key.key_id

    @property
    def otp(self) -> OtpSource | None:
        """The key's second factor, if it has one (its codes are made per request)."""
        return self._key.otp

    def lend_to(self, exchange: Any) -> None:
        """Set the key's credentials on ccxt's exchange object, as the text ccxt reads.

        Only :meth:`Codec._lent` calls this. The text goes straight onto the exchange
        object: it is never a local of a frame that may be in a traceback (the codec's
        frames hold this object, whose ``repr`` is masked).
        """
        key = self._key
        exchange.apiKey = key.key_id
        exchange.secret = key.secret.expose().decode("utf-8")
        exchange.password = "" if key.passphrase is None else key.passphrase.expose().decode()

    def sign(self, payload: bytes) -> str:
        if self._own is None:
            self._own = signer_for(self._key)
        return self._own.sign(payload)

    def __repr__(self) -> str:
        return "CcxtKey(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a signer cannot be pickled")


class _DryRun:
    """What the codec lends ccxt when it only asks what a request would cost: ccxt checks
    that credentials are there and signs with them, and the request is thrown away."""

    __slots__ = ()

    def lend_to(self, exchange: Any) -> None:
        exchange.apiKey, exchange.secret, exchange.password = "dry-run", "ZHJ5LXJ1bg==", ""


_DRY_RUN = _DryRun()


@dataclass(frozen=True, slots=True, repr=False)
class CcxtRequest(HttpRequest):
    """A request ccxt built and signed. ``target`` is the absolute URL; ``call`` is the
    unified call it came from, which reads the answer back (with ``signer``'s key)."""

    call: UnifiedCall = field(default_factory=lambda: UnifiedCall(""))
    cost: float = 1.0  # in ccxt's cost units (multiples of the exchange's ``rateLimit``)
    signer: CcxtKey | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class CcxtResponse(HttpResponse):
    """An answer together with the request it answers (the codec needs both)."""

    request: CcxtRequest | None = None


class _Captured(Exception):
    """Stops a unified call at its first request: that request is what we send."""


class _Script:
    """What ``fetch`` does during one unified call: record the request, or answer it."""

    __slots__ = ("answer", "captured", "cost", "fetches", "nonce", "now_ms", "otp")

    def __init__(
        self,
        *,
        now_ms: int | None = None,
        nonce: int | None = None,
        answer: CcxtResponse | None = None,
        otp: OtpSource | None = None,
    ) -> None:
        self.now_ms = now_ms
        self.nonce = nonce
        self.answer = answer
        self.otp = otp  # only while building: an answer read back needs no code
        self.captured: tuple[str, str, dict[str, str], str | None] | None = None
        self.cost = 0.0
        self.fetches = 0


class Codec:
    """One synchronous ccxt exchange object, used to build, sign and read requests.

    Calls are serialised by a lock: the exchange object's clock, credentials and script
    are per call. ccxt's work per call is CPU only (tens of microseconds to a millisecond),
    so threads and tasks do not wait on each other's network round trips.
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        options: Mapping[str, Any],
        urls: Mapping[str, str] | None,
        otp_field: str | None = None,
    ) -> None:
        import ccxt

        if exchange_id not in ccxt.exchanges:
            raise InvalidRequest(f"ccxt has no exchange {shown(exchange_id)}")
        exchange = getattr(ccxt, exchange_id)(
            {
                "enableRateLimit": False,  # our limiter paces every request
                "verbose": False,
                "options": {"maxRetriesOnFailure": 0, **options},
            }
        )
        exchange.number = str  # unified numbers as text: Decimal end to end, never float
        if urls:
            _point_at(exchange, urls)
        self.exchange = exchange
        self.id = exchange_id
        self.rate_limit_ms = float(exchange.rateLimit or 1000)
        self._otp_field = otp_field  # the private calls' field for a 2FA key's code
        self._lock = threading.RLock()
        self._script: _Script | None = None
        # Instance attributes shadow the class's methods: ccxt calls ours.
        exchange.fetch = self._fetch
        exchange.request = self._request
        exchange.milliseconds = self._milliseconds
        exchange.seconds = lambda: self._milliseconds() // 1000
        exchange.microseconds = lambda: self._milliseconds() * 1000
        exchange.nonce = self._nonce
        # Kraken's sign() asks for a nonce above ccxt's own last one: it gets ours, as drawn
        # from the core's source, never a bumped copy the source does not know about.
        exchange.incrementing_nonce = self._nonce
        exchange.log = _redacted_log
        exchange.session.trust_env = False  # no proxy or CA bundle from the environment

    # --- the two halves of a unified call ------------------------------------------------

    def build(
        self, call: UnifiedCall, *, signer: CcxtKey | None, now_ms: int, nonce: int | None
    ) -> CcxtRequest:
        """The signed request ``call`` makes, without sending it."""
        return self._build(call, signer, signer, now_ms, nonce)

    def _build(
        self,
        call: UnifiedCall,
        signer: CcxtKey | None,
        credentials: CcxtKey | _DryRun | None,
        now_ms: int,
        nonce: int | None,
    ) -> CcxtRequest:
        otp = credentials.otp if isinstance(credentials, CcxtKey) else None
        script = _Script(now_ms=now_ms, nonce=nonce, otp=otp)
        with self._lock, self._lent(credentials):
            self._script = script
            try:
                self._invoke(call)
            except _Captured:
                pass
            finally:
                self._script = None
        if script.captured is None:
            raise InvalidRequest(f"ccxt {self.id}.{call.method} made no request")
        url, method, headers, body = script.captured
        return CcxtRequest(
            method,
            url,
            tuple((str(k), str(v)) for k, v in headers.items()),
            (body or "").encode("utf-8"),
            call=call,
            cost=script.cost or 1.0,
            signer=signer,
        )

    def read(self, response: CcxtResponse) -> Any:
        """ccxt's reading of ``response``: the unified result, or the ccxt exception."""
        request = response.request
        if request is None:
            raise InvalidRequest("a ccxt venue needs its own transport (the answer lost its call)")
        script = _Script(answer=response)
        with self._lock, self._lent(request.signer):
            self._script = script
            try:
                return self._invoke(request.call)
            finally:
                self._script = None
                self.exchange.last_http_response = None
                self.exchange.last_response_headers = None

    def cost_of(self, call: UnifiedCall, *, signed: bool) -> float:
        """The rate-limit cost ccxt assigns to the request ``call`` makes (nothing is sent,
        and no real credentials are lent)."""
        lent = _DRY_RUN if signed else None
        return self._build(call, None, lent, self._milliseconds(), None).cost

    def run_pure(self, function: Callable[[Any], Any]) -> Any:
        """Run ``function(exchange)`` under the lock, for calls that need no request."""
        with self._lock:
            return function(self.exchange)

    # --- what ccxt calls --------------------------------------------------------------------

    def _invoke(self, call: UnifiedCall) -> Any:
        method = getattr(self.exchange, call.method)
        return method(*call.args, params=dict(call.params))

    def _request(
        self,
        path: Any,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
        *rest: Any,
    ) -> Any:
        """ccxt's implicit endpoints call this: note the cost, add a 2FA key's one-time
        password to a private call's parameters, then sign as ccxt does."""
        exchange = self.exchange
        params = {} if params is None else params
        config = {} if config is None else config
        script = self._script
        if script is not None:
            script.cost += float(
                exchange.calculate_rate_limiter_cost(api, method, path, params, config)
            )
            field = self._otp_field
            if script.otp is not None and field is not None and _section(api) == "private":
                # The code of venue time, as the native adapter makes it (keys/otp.py).
                params = {**params, field: script.otp.code(self._milliseconds() / 1000)}
        return type(exchange).fetch2(exchange, path, api, method, params, config)

    def _fetch(
        self,
        url: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
    ) -> Any:
        script = self._script
        if script is None:
            # Only the codec calls ccxt, always inside a script: ccxt never does I/O itself.
            raise InvalidRequest("ccxt tried to send a request outside securetrade's layers")
        script.fetches += 1
        if script.fetches > 1:
            raise InvalidRequest(
                f"ccxt {self.id} needs several requests for this operation; the ccxt "
                "transport sends one request per operation (see docs/ccxt.md)"
            )
        request_headers = self.exchange.prepare_request_headers(dict(headers or {}))
        if script.answer is None:
            script.captured = (url, method, dict(request_headers), body)
            raise _Captured
        return self._answer(script.answer, url, method, request_headers, body)

    def _answer(
        self,
        response: CcxtResponse,
        url: str,
        method: str,
        request_headers: Mapping[str, str],
        request_body: str | None,
    ) -> Any:
        """What ccxt's own ``fetch`` does once the bytes are in, on the bytes we received."""
        from requests.structures import CaseInsensitiveDict

        exchange = self.exchange
        assert response.request is not None
        url, method = response.request.target, response.request.method  # what was sent
        headers = CaseInsensitiveDict(dict(response.headers))
        status = response.status
        reason = _REASONS.get(status, "")
        text = exchange.on_rest_response(
            status,
            reason,
            url,
            method,
            headers,
            response.body.decode("utf-8", "replace"),
            request_headers,
            request_body,
        )
        parsed = exchange.parse_json(text)
        # What ccxt's fetch keeps for the unified method (Kraken's cancel_order reads it
        # to tell an unknown order from other refusals); cleared when the read ends.
        exchange.last_http_response = text
        exchange.last_response_headers = headers
        handled = exchange.handle_errors(
            status, reason, url, method, headers, text, parsed, request_headers, request_body
        )
        if status >= 400:
            if not handled:
                exchange.handle_http_status_code(status, reason, url, method, text)
            import ccxt

            raise ccxt.ExchangeError(f"{exchange.id} {method} {status} {text[:200]}")
        if parsed is not None:
            return parsed
        return text

    def _milliseconds(self) -> int:
        script = self._script
        if script is not None and script.now_ms is not None:
            return script.now_ms
        import time

        return time.time_ns() // 1_000_000

    def _nonce(self) -> Any:
        script = self._script
        if script is not None and script.nonce is not None:
            return script.nonce
        return type(self.exchange).nonce(self.exchange)

    @contextmanager
    def _lent(self, credentials: CcxtKey | _DryRun | None) -> Iterator[None]:
        """The key's credentials on the exchange object for one call, then gone."""
        exchange = self.exchange
        if credentials is not None:
            credentials.lend_to(exchange)
        try:
            yield
        finally:
            exchange.apiKey = ""
            exchange.secret = ""  # clears the credential, sets none  # nosec B105
            exchange.password = ""  # clears it too  # nosec B105


def _section(api: Any) -> str:
    """The API section of an implicit endpoint (``['private']`` -> ``private``)."""
    if isinstance(api, (list, tuple)) and api:
        return str(api[0])
    return str(api)


def _point_at(exchange: Any, urls: Mapping[str, str]) -> None:
    """Replace the origin of each of ccxt's API roots, keeping its path.

    ``urls`` maps an origin ccxt knows (``https://api.binance.com``) to ours, or ``"*"``
    to one origin for every root (a simulator serving every API family).
    """
    from urllib.parse import urlsplit, urlunsplit

    everything = urls.get("*")
    api = exchange.urls["api"]
    roots = api if isinstance(api, dict) else {"": api}
    changed: dict[str, Any] = {}
    for name, url in roots.items():
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        target = everything or urls.get(origin)
        if target is None:
            continue
        new = urlsplit(target)
        changed[name] = urlunsplit((new.scheme, new.netloc, parts.path, parts.query, ""))
    if isinstance(api, dict):
        api.update(changed)
    elif changed:
        exchange.urls["api"] = changed[""]


def _redacted_log(*args: Any) -> None:
    """ccxt's ``verbose`` output, through the one redaction policy, to our logger."""
    parts = []
    for arg in args:
        if isinstance(arg, Mapping):
            parts.append(str(redact_headers({str(k): str(v) for k, v in arg.items()})))
        else:
            parts.append(redact_query(str(arg)))
    log.debug("ccxt: %s", " ".join(parts))


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def milli_cost(cost: float) -> int:
    """ccxt's fractional costs as whole thousandths (our limiter counts integers)."""
    return max(1, math.ceil(cost * 1000))
