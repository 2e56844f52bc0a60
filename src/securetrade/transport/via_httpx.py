"""Transports through httpx, for the callers who need what httpx gives.

The default transports (:mod:`.http`, :mod:`.aio`) are faster and parse with llhttp in its
strict mode. These exist for a bot that wants HTTP/2, httpx's event hooks or its own
connection pool settings, with the same guarantees where they matter most:

* **Pinned before the first byte.** httpx is given our pinned context; its TLS (sync
  sockets and anyio's memory BIOs alike) runs the pin check inside the handshake, so a
  wrong key fails the connection before any request byte is written.
* **The same outcome classes.** A pin or certificate failure is
  :class:`~securetrade.errors.PinMismatch` or ``UntrustedServer``; every other failure a
  :class:`~securetrade.transport.base.TransportFailure`, ``sent=False`` unless httpcore's
  trace shows the request itself began to go out (a proxy's CONNECT is not it).
* **The same answers refused.** Interim replies are skipped by h11; ``101``, versions
  other than HTTP/1.x and 2, a body framed by both Content-Length and chunked, repeated
  Content-Length values, and any coding but ``chunked`` are refused here after h11.
* **The same limits.** The body is read as it arrives and refused past
  :class:`~securetrade.transport.wire.Limits` ``max_body``; the reply's whole-response
  phase is checked at every read.

What differs, because h11 (httpx's HTTP/1.1 parser) decides it: h11 reads four framings
the default transports refuse, and reads them as the bytes spell out (obs-fold in a
header, whitespace after a chunk size, bare LF line ends, a Content-Length repeated with
the same value); its own head limit (100 KiB) applies before ``max_head``; the name
lookup has no phase of its own; and on the sync transport the head is bounded per read,
not as a whole (a venue answering 1xx forever holds the call). Bytes after a reply are
caught through httpcore's internals (see :func:`_spoken_after`). The conformance corpus
(``tests/test_http_conformance.py``) and the man-in-the-middle cases (``tests/test_tls.py``)
run against both httpx transports, with those differences asserted as they are.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib.util
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import InvalidRequest
from .base import HttpRequest, HttpResponse, Timeout, TransportFailure
from .http import USER_AGENT, check_base_url, check_request, security_refusal
from .proxy import Proxy, parse_proxy
from .tls import check_context, verified_ssl_context
from .wire import DEFAULT_LIMITS, Limits, authority, check_limits

__all__ = ["AsyncHttpxTransport", "HttpxTransport"]

# Options that would undo a guarantee: our context pins, and the environment never
# chooses a proxy or a CA bundle.
_OURS = frozenset({"verify", "cert", "trust_env", "timeout", "proxy", "transport", "mounts"})


def _httpx_timeout(timeout: Timeout) -> httpx.Timeout:
    """httpx bounds connect and TLS with one value, and every read with another."""
    return httpx.Timeout(
        connect=max(timeout.connect, timeout.tls),
        read=timeout.first_byte,
        write=timeout.write,
        pool=timeout.pool,
    )


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    taken = sorted(_OURS.intersection(options))
    if taken:
        raise InvalidRequest(
            f"HttpxTransport sets {', '.join(taken)} itself (pinning, no environment "
            "proxies or CAs); pass timeout= and proxy= as its own arguments"
        )
    return dict(options)


def _httpx_proxy(proxy: str | Proxy | None, venue_host: str) -> httpx.Proxy | None:
    """The proxy as httpx takes it. An IPv6 venue literal is refused behind a proxy:
    httpcore writes it unbracketed in its CONNECT (``CONNECT 2001:db8::1:8443``), so
    the proxy cannot tell the port from the address and may tunnel somewhere else."""
    if proxy is None:
        return None
    parsed = parse_proxy(proxy)
    if ":" in venue_host:
        raise InvalidRequest(
            "HttpxTransport cannot reach an IPv6 venue address through a proxy (httpx "
            "writes it unbracketed in the CONNECT request); use the default transport "
            "(HttpTransport or AsyncHttpTransport) or the venue's host name"
        )
    headers = parsed.connect_headers()
    return httpx.Proxy(f"http://{authority(parsed.host, parsed.port)}", headers=headers)


class _Progress:
    """Whether the request itself began to go out, told by httpcore's trace events: a
    failure before that (the pool, the connection, TLS, a proxy's CONNECT) sent nothing."""

    __slots__ = ("sending", "since")

    def __init__(self) -> None:
        self.sending = False
        self.since = 0.0  # when it began to go out (monotonic)

    def note(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            request = info.get("request")
            if getattr(request, "method", b"") != b"CONNECT":  # the proxy's is not ours
                self.sending = True
                self.since = time.monotonic()

    async def anote(self, event: str, info: dict[str, Any]) -> None:
        self.note(event, info)


def _failure(exc: Exception, *, sent: bool) -> Exception:
    """``exc`` in our terms: a pin or certificate refusal as such (nothing was sent),
    else a TransportFailure, ambiguous once the request began to go out."""
    if not sent:
        refusal = security_refusal(exc)
        if refusal is not None:
            return refusal
    reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    tail = "outcome unknown" if sent else "connection not made"
    return TransportFailure(f"{reason[:200]}: {tail}", sent=sent)


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _check_head(response: httpx.Response, limits: Limits) -> None:
    """What the default transports refuse and h11 lets through: refused here, before the
    body is read (the request is out: every refusal is ambiguous)."""
    if response.status_code == 101:
        raise TransportFailure("101 Switching Protocols: no upgrade was asked for", sent=True)
    if not 200 <= response.status_code <= 599:  # h11 reads any three digits
        raise TransportFailure(f"status {response.status_code} is no HTTP status", sent=True)
    if response.http_version not in ("HTTP/1.1", "HTTP/1.0", "HTTP/2"):
        raise TransportFailure(f"reply in {response.http_version[:20]}", sent=True)
    raw = response.headers.raw
    if sum(len(name) + len(value) + 4 for name, value in raw) > limits.max_head:
        raise TransportFailure(f"reply head over {limits.max_head} bytes", sent=True)
    lengths = [value for name, value in raw if name.lower() == b"content-length"]
    codings = [value for name, value in raw if name.lower() == b"transfer-encoding"]
    if len(lengths) > 1 or any(b"," in value for value in lengths):
        raise TransportFailure("more than one Content-Length", sent=True)
    if codings and lengths:
        raise TransportFailure("Content-Length next to Transfer-Encoding", sent=True)
    if codings and [value.strip().lower() for value in codings] != [b"chunked"]:
        raise TransportFailure("Transfer-Encoding other than chunked", sent=True)
    if (
        not lengths
        and not codings
        and response.http_version != "HTTP/2"  # frames tell where an HTTP/2 body ends
        and response.status_code not in (204, 304)
    ):
        raise TransportFailure("reply without Content-Length or chunked framing", sent=True)
    if lengths and int(lengths[0]) > limits.max_body:
        raise TransportFailure(f"Content-Length over the {limits.max_body}-byte limit", sent=True)


def _spoken_after(response: httpx.Response) -> Any:
    """The connection to close when the venue sent bytes after its reply, else None.

    h11 would read those bytes as the answer to the next request on that connection; the
    default transports never reuse such a connection, and closed, it makes the pool open
    a new one. httpx has no public way to see them: the path below is httpcore's own
    (the conformance corpus checks it on every run)."""
    if response.http_version != "HTTP/1.1":
        return None
    layer: Any = response.stream  # httpx's bound stream, its transport's, the pool's...
    for _ in range(6):
        connection = getattr(layer, "_connection", None)
        if connection is not None:
            break
        layer = getattr(layer, "_stream", None) or getattr(layer, "_httpcore_stream", None)
    state = getattr(connection, "_h11_state", None)
    if state is None:
        return None
    leftover, _ = state.trailing_data
    return connection if leftover else None


class _Reading:
    """The body as it arrives, within the size limit and the whole-response deadline."""

    __slots__ = ("_chunks", "_deadline", "_limits", "_size", "_timeout")

    def __init__(self, limits: Limits, timeout: Timeout, started: float) -> None:
        self._limits = limits
        self._timeout = timeout
        self._deadline = started + timeout.response
        self._chunks: list[bytes] = []
        self._size = 0

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise TransportFailure(
                f"response timed out after {self._timeout.response:g} s: outcome unknown",
                sent=True,
            )

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limits.max_body:
            raise TransportFailure(
                f"reply body over the {self._limits.max_body}-byte limit: outcome unknown",
                sent=True,
            )
        self._chunks.append(chunk)
        self.check_time()

    def response(self, response: httpx.Response) -> HttpResponse:
        return HttpResponse(
            response.status_code,
            _headers(response.headers.multi_items()),
            b"".join(self._chunks),
        )


class _Common(abc.ABC):
    """What both transports share: the checked base URL, the httpx request, the phases."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        timeout: Timeout | float = 10.0,
        proxy: str | Proxy | None = None,
        limits: Limits = DEFAULT_LIMITS,
        http2: bool = False,
        unsafe_allow_plain_http: bool = False,
        **options: Any,
    ) -> None:
        self.base_url = check_base_url(base_url, unsafe_allow_plain_http=unsafe_allow_plain_http)
        if ssl_context is None and self.base_url.startswith("https"):
            ssl_context = verified_ssl_context()  # the platform's CAs, never SSL_CERT_*
        tls = self.base_url.startswith("https")
        if tls:
            check_context(ssl_context)
        self._context = ssl_context if tls else None
        check_limits(limits)
        if http2 and importlib.util.find_spec("h2") is None:  # the codec httpx needs for it
            raise InvalidRequest("http2=True needs the h2 package: pip install 'httpx[http2]'")
        self._timeout = Timeout.coerce(timeout)
        self._limits = limits
        # Not kept: httpx.Proxy's repr shows its Proxy-Authorization in clear.
        settings: dict[str, Any] = {
            **_options(options),
            "verify": ssl_context if ssl_context is not None else False,
            "trust_env": False,
            "http2": http2,
            "proxy": _httpx_proxy(proxy, urlsplit(self.base_url).hostname or ""),
            "timeout": _httpx_timeout(self._timeout),
            "follow_redirects": False,
        }
        self._client = self._open(settings)

    @abc.abstractmethod
    def _open(self, settings: dict[str, Any]) -> Any:
        """The httpx client of this kind (blocking or asyncio), made with ``settings``."""

    def _request(
        self, client: httpx.Client | httpx.AsyncClient, request: HttpRequest
    ) -> httpx.Request:
        check_request(request)
        if self._context is not None:
            check_context(self._context)  # as it is now: httpx may open a connection
        headers = [("Accept-Encoding", "identity"), ("User-Agent", USER_AGENT)]
        given = {name.lower() for name, _ in request.headers}
        headers = [(n, v) for n, v in headers if n.lower() not in given]
        try:
            return client.build_request(
                request.method,
                self.base_url + request.target,
                headers=[*headers, *request.headers],
                content=request.body or None,
            )
        except (httpx.InvalidURL, httpx.LocalProtocolError, ValueError) as exc:
            raise InvalidRequest(f"the request cannot be sent: {exc}") from None

    def _phases(self, timeout: Timeout | float | None) -> Timeout:
        return self._timeout if timeout is None else Timeout.coerce(timeout)


class HttpxTransport(_Common):
    """A blocking transport through ``httpx.Client``, pinned by ``ssl_context``.

    ``options`` go to ``httpx.Client`` (``event_hooks``, ``limits``, ``headers``...),
    except those that would undo pinning or let the environment choose (``verify``,
    ``trust_env``, ``mounts``, ``transport``...). ``http2=True`` needs ``httpx[http2]``.
    """

    _client: httpx.Client

    def _open(self, settings: dict[str, Any]) -> httpx.Client:
        return httpx.Client(**settings)

    def send(self, request: HttpRequest, *, timeout: Timeout | float | None = None) -> HttpResponse:
        """Send ``request`` and read its reply; ``timeout`` overrides the transport's for
        this call."""
        phases = self._phases(timeout)
        prepared = self._request(self._client, request)
        if self._client.is_closed:
            raise TransportFailure("transport closed: connection not made", sent=False)
        progress = _Progress()
        prepared.extensions["trace"] = progress.note
        started = time.monotonic()
        try:
            _per_call(timeout, phases, prepared)
            response = self._client.send(prepared, stream=True)
        except httpx.HTTPError as exc:
            raise _failure(exc, sent=progress.sending) from None
        try:
            _check_head(response, self._limits)
            reading = _Reading(self._limits, phases, started)
            reading.check_time()
            for chunk in response.iter_raw():
                reading.add(chunk)
            answer = reading.response(response)
        except httpx.HTTPError as exc:
            raise _failure(exc, sent=True) from None
        finally:
            response.close()
        spoken = _spoken_after(response)
        if spoken is not None:
            spoken.close()
        return answer

    def close(self) -> None:
        """Close the pool's connections."""
        self._client.close()

    def __enter__(self) -> HttpxTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHttpxTransport(_Common):
    """The asyncio transport through ``httpx.AsyncClient``; see :class:`HttpxTransport`.
    The whole reply (head included) is bounded by the ``response`` phase here."""

    _client: httpx.AsyncClient

    def _open(self, settings: dict[str, Any]) -> httpx.AsyncClient:
        return httpx.AsyncClient(**settings)

    async def send(
        self, request: HttpRequest, *, timeout: Timeout | float | None = None
    ) -> HttpResponse:
        """Send ``request`` and read its reply; ``timeout`` overrides the transport's for
        this call."""
        phases = self._phases(timeout)
        prepared = self._request(self._client, request)
        if self._client.is_closed:
            raise TransportFailure("transport closed: connection not made", sent=False)
        _per_call(timeout, phases, prepared)
        progress = _Progress()
        prepared.extensions["trace"] = progress.anote
        # httpx bounds the connection's phases itself (the first deadline is past their
        # sum); once the request begins to go out, the whole reply has the response phase,
        # however its head drips in.
        connecting = phases.pool + 2 * max(phases.connect, phases.tls)
        connected_by = time.monotonic() + connecting
        exchange = asyncio.ensure_future(self._exchange(prepared, phases, progress))
        try:
            while True:
                due = (progress.since if progress.sending else connected_by) + phases.response
                done, _ = await asyncio.wait({exchange}, timeout=max(0.0, due - time.monotonic()))
                if done:
                    return exchange.result()
                if (
                    time.monotonic()
                    >= (progress.since if progress.sending else connected_by) + phases.response
                ):
                    break
        finally:
            if not exchange.done():
                exchange.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await exchange
        if not progress.sending:
            raise TransportFailure(
                f"no request sent within {connecting + phases.response:g} s: connection not made",
                sent=False,
            )
        raise TransportFailure(
            f"response timed out after {phases.response:g} s: outcome unknown", sent=True
        )

    async def _exchange(
        self, prepared: httpx.Request, phases: Timeout, progress: _Progress
    ) -> HttpResponse:
        started = time.monotonic()
        try:
            response = await self._client.send(prepared, stream=True)
        except httpx.HTTPError as exc:
            raise _failure(exc, sent=progress.sending) from None
        try:
            _check_head(response, self._limits)
            reading = _Reading(self._limits, phases, started)
            reading.check_time()
            async for chunk in response.aiter_raw():
                reading.add(chunk)
            answer = reading.response(response)
        except httpx.HTTPError as exc:
            raise _failure(exc, sent=True) from None
        finally:
            await response.aclose()
        spoken = _spoken_after(response)
        if spoken is not None:
            await spoken.aclose()
        return answer

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._client.aclose()


def _per_call(given: Timeout | float | None, phases: Timeout, request: httpx.Request) -> None:
    """A per-call timeout goes on the request; httpx reads it from there."""
    if given is not None:
        request.extensions["timeout"] = _httpx_timeout(phases).as_dict()
