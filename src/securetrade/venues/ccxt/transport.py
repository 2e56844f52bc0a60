"""The bytes ccxt built, written through ccxt's own HTTP stacks with our pinned TLS.

* Sync: the exchange object's ``requests.Session`` (ccxt creates one per exchange), with
  an adapter whose connection pools use the pinned :class:`ssl.SSLContext`, no
  environment proxies or CA bundles, no redirects and no urllib3 retries.
* Async: the aiohttp session ccxt's ``open()`` builds, over ``aiohttp.TCPConnector`` with
  the same pinned context set as ``exchange.ssl_context``.

ccxt's own ``fetch`` is never used (the codec replaces it), so its retries, throttle and
logging never run; what runs is the connection pool ccxt would have used, with the pin
checked inside the TLS handshake, before the first request byte. The context is checked
(:func:`~securetrade.transport.tls.check_context`) when a transport is built and again
before each request, as the httpx transports do (the pools open connections on their own
schedule): one made elsewhere, or weakened since, never carries a request. Failures are
sorted the
same way as on the native transports: pin and certificate failures become
:class:`~securetrade.errors.UntrustedServer` (never retried), a connection never made is
``sent=False``, anything later is ``sent=True`` and the core asks the venue.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...errors import InvalidRequest
from ...transport.base import HttpRequest, HttpResponse, TransportFailure
from ...transport.http import check_base_url, security_refusal
from ...transport.tls import check_context
from .codec import CcxtRequest, CcxtResponse

if TYPE_CHECKING:
    import requests

__all__ = ["CcxtAsyncTransport", "CcxtSyncTransport"]


class _Origins:
    """Which origins may be written to: https, or plain http to loopback when asked for."""

    def __init__(self, unsafe_allow_plain_http: bool) -> None:
        self._plain = unsafe_allow_plain_http
        self._seen: set[str] = set()

    def url(self, request: HttpRequest) -> str:
        url = request.target
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise InvalidRequest(f"a ccxt request needs an absolute URL, got {parts.path!r}")
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._seen:
            check_base_url(origin, unsafe_allow_plain_http=self._plain)
            self._seen.add(origin)
        return url


def _answer(request: HttpRequest, status: int, headers: Any, body: bytes) -> CcxtResponse:
    return CcxtResponse(
        status,
        {str(k).lower(): str(v) for k, v in headers.items()},
        body,
        request=request if isinstance(request, CcxtRequest) else None,
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason`` and exceptions
    passed as arguments (requests wraps urllib3 errors that way)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 64:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo += [item for item in linked if isinstance(item, BaseException)]
    return found


# --- sync: ccxt's requests session -----------------------------------------------------------


def _pinned_adapter(context: ssl.SSLContext) -> Any:
    from requests.adapters import HTTPAdapter

    class PinnedAdapter(HTTPAdapter):
        """Connection pools on the pinned context; the CA set is the context's alone."""

        def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
            pool_kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **pool_kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            proxy_kwargs["ssl_context"] = context  # the tunnelled handshake is pinned too
            return super().proxy_manager_for(proxy, **proxy_kwargs)

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            # requests would load certifi's bundle into our context here; the context
            # already verifies (CERT_REQUIRED, hostname) against the CAs it was given.
            conn.cert_reqs = "CERT_REQUIRED"

    return PinnedAdapter(max_retries=0)


class CcxtSyncTransport:
    """Blocking HTTPS through the ccxt exchange object's own ``requests.Session``."""

    def __init__(
        self,
        session: requests.Session,
        context: ssl.SSLContext,
        *,
        timeout: float = 10.0,
        proxy: str | None = None,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        check_context(context)  # before the session is touched: a refusal leaves it as it was
        adapter = _pinned_adapter(context)
        session.trust_env = False
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.proxies = {"http": proxy, "https": proxy} if proxy else {}
        self._session = session
        self._context = context
        self._timeout = timeout
        self._origins = _Origins(unsafe_allow_plain_http)

    def send(self, request: HttpRequest) -> HttpResponse:
        import requests

        url = self._origins.url(request)
        check_context(self._context)  # as it is now: the pool may open a connection
        try:
            response = self._session.request(
                request.method,
                url,
                data=request.body or None,
                headers=dict(request.headers),
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _sync_failure(exc) from None
        return _answer(request, response.status_code, response.headers, response.content)

    def close(self) -> None:
        self._session.close()


def _sync_failure(exc: BaseException) -> Exception:
    import requests
    import urllib3.exceptions as u3

    chain = _causes(exc)
    for item in chain:
        refusal = security_refusal(item)
        if refusal is not None:
            return refusal
    not_sent = (
        requests.ConnectTimeout,
        requests.exceptions.ProxyError,
        requests.exceptions.InvalidURL,
        u3.NewConnectionError,
        u3.ConnectTimeoutError,
        u3.NameResolutionError,
    )
    if any(isinstance(item, not_sent) for item in chain):
        return TransportFailure(f"{type(exc).__name__}: connection not made", sent=False)
    return TransportFailure(f"{type(exc).__name__}: outcome unknown", sent=True)


# --- async: ccxt's aiohttp session -----------------------------------------------------------


class CcxtAsyncTransport:
    """Asyncio HTTPS through the aiohttp session ccxt opens, on our pinned context.

    The session belongs to a ccxt async exchange object that does nothing else; it is
    opened inside the running loop at the first request (ccxt's ``open()``), so the
    client may be built outside any loop.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        timeout: float = 10.0,
        proxy: str | None = None,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        check_context(context)
        self._context = context
        self._timeout = timeout
        self._proxy = proxy
        self._origins = _Origins(unsafe_allow_plain_http)
        self._exchange: Any = None

    def _open(self) -> Any:
        from ccxt.async_support.base.exchange import Exchange

        exchange = Exchange(
            {"enableRateLimit": False, "verbose": False, "aiohttp_trust_env": False}
        )
        exchange.ssl_context = self._context  # ccxt hands it to aiohttp.TCPConnector(ssl=...)
        exchange.timeout_on_exit = 0
        exchange.open()
        return exchange

    async def send(self, request: HttpRequest) -> HttpResponse:
        import aiohttp
        from yarl import URL

        url = self._origins.url(request)
        check_context(self._context)  # as it is now: the connector may open a connection
        exchange = self._exchange
        if exchange is None or exchange.session is None or exchange.session.closed:
            exchange = self._exchange = self._open()
        try:
            async with exchange.session.request(
                request.method,
                URL(url, encoded=True),  # no re-quoting: these are the bytes ccxt signed
                data=request.body or None,
                headers=list(request.headers),
                allow_redirects=False,
                proxy=self._proxy,
                timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=self._timeout),
            ) as response:
                body = await response.read()
                return _answer(request, response.status, response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _async_failure(exc) from None

    async def aclose(self) -> None:
        if self._exchange is not None:
            await self._exchange.close()
            self._exchange = None


def _async_failure(exc: BaseException) -> Exception:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        exc = exc.certificate_error  # the handshake's own error, with its causes
    for item in _causes(exc):
        refusal = security_refusal(item)
        if refusal is not None:
            return refusal
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return TransportFailure(f"{type(exc).__name__}: connection not made", sent=False)
    return TransportFailure(f"{type(exc).__name__}: outcome unknown", sent=True)
