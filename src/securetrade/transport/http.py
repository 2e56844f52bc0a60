"""The blocking HTTPS transport over httpx, with pinning, no redirects, no environment proxies.

Failures are sorted by what they mean for an order: a connection that was never made
(``sent=False``, safe to resend), a pin mismatch (:class:`errors.PinMismatch`, never
retried), or anything after the request may have been written (``sent=True``: the outcome
is unknown and the idempotency layer asks the venue).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import InvalidRequest, PinMismatch, UntrustedServer
from . import redaction  # noqa: F401 - installs the log filters before httpx logs anything
from .base import HttpRequest, HttpResponse, TransportFailure
from .tls import PinFailure

__all__ = ["HttpTransport", "check_base_url", "find_cause", "security_refusal"]

log = logging.getLogger("securetrade.transport")

E = TypeVar("E", bound=BaseException)


# httpx logs each request URL at INFO, and a signed GET carries its signature there: the
# redaction module filters the httpx and httpcore loggers from the moment it is imported.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def check_base_url(base_url: str, *, unsafe_allow_plain_http: bool = False) -> str:
    """Refuse anything but ``https://``, except plain HTTP to loopback when asked for."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return base_url.rstrip("/")
    if parts.scheme == "http" and unsafe_allow_plain_http and _is_loopback(parts.hostname):
        log.warning("unsafe_allow_plain_http: sending to %s without TLS", base_url)
        return base_url.rstrip("/")
    raise InvalidRequest(
        f"{base_url!r}: only https:// is allowed (plain http only to loopback, "
        "with unsafe_allow_plain_http=True)"
    )


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in the cause/context chain of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def security_refusal(exc: BaseException) -> UntrustedServer | None:
    """The pin or certificate failure behind a failed connection, as our error, if any."""
    pin = find_cause(exc, PinFailure)
    if pin is not None:
        return PinMismatch(
            f"{pin.host} presented no pinned key (chain pins: {', '.join(pin.seen) or 'none'}); "
            "no request byte was sent"
        )
    untrusted = find_cause(exc, ssl.SSLCertVerificationError)
    if untrusted is not None:
        return UntrustedServer(
            f"the server's certificate failed verification ({untrusted.verify_message}); "
            "no request byte was sent"
        )
    return None


def _translate(exc: httpx.HTTPError) -> Exception:
    refusal = security_refusal(exc)
    if refusal is not None:
        return refusal
    if isinstance(exc, _NOT_SENT):
        return TransportFailure(f"{type(exc).__name__}: connection not made", sent=False)
    return TransportFailure(f"{type(exc).__name__}: outcome unknown", sent=True)


def _to_httpx(request: HttpRequest) -> tuple[str, str, list[tuple[str, str]], bytes]:
    return request.method, request.target, list(request.headers), request.body


def _client_options(
    ssl_context: ssl.SSLContext | None, timeout: float, proxy: str | None
) -> dict[str, Any]:
    """The settings both httpx clients share: pinned TLS, no env, no redirects."""
    return {
        "verify": ssl_context if ssl_context is not None else True,
        "timeout": timeout,
        "proxy": proxy,
        "trust_env": False,
        "follow_redirects": False,
    }


def _from_httpx(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content,
    )


class HttpTransport:
    """Synchronous, keep-alive HTTPS to one venue."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        timeout: float = 10.0,
        proxy: str | None = None,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        self.base_url = check_base_url(base_url, unsafe_allow_plain_http=unsafe_allow_plain_http)
        self._client = httpx.Client(
            base_url=self.base_url,
            **_client_options(ssl_context, timeout, proxy),
        )

    def send(self, request: HttpRequest) -> HttpResponse:
        method, target, headers, body = _to_httpx(request)
        try:
            response = self._client.request(method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise _translate(exc) from None
        return _from_httpx(response)

    def close(self) -> None:
        self._client.close()
