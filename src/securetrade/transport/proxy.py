"""The HTTP CONNECT proxy in front of a venue, with its credentials kept as a Secret.

Only CONNECT proxies: the venue's TLS runs inside the tunnel, pinned end to end, so the
proxy carries bytes it cannot read. Proxies are never taken from the environment
(``HTTPS_PROXY`` and the like): one is used only when given.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit

from .._checks import safe_repr, shown, text, whole
from ..errors import InvalidRequest
from ..keys.secret import MASK, Secret
from .wire import authority

__all__ = ["Proxy", "parse_proxy"]

_DEFAULT_PORT = 8080


class Proxy:
    """``http://[user:password@]host:port``; IPv6 hosts in brackets (``http://[::1]:3128``).

    The credentials become the ``Proxy-Authorization`` value, held as a
    :class:`~securetrade.keys.Secret` and shown nowhere (``repr`` masks it). A user and
    password in the URL mean Basic; for another scheme pass the whole value as
    ``authorization`` (``Secret("Bearer <token>")``) and leave the URL without them.
    """

    __slots__ = ("_authorization", "host", "port")

    def __init__(self, url: str, *, authorization: Secret | None = None) -> None:
        try:
            self.host, self.port, self._authorization = _parse(url, authorization)
        except InvalidRequest as exc:
            reason = str(exc)
        else:
            return
        # Raised anew, outside the handler: the refusal's traceback holds neither this
        # frame's URL (deleted) nor the parser's frame, whose locals hold the password.
        del url
        raise InvalidRequest(reason)

    @safe_repr
    def __repr__(self) -> str:
        credentials = f", authorization={MASK!r}" if self._authorization is not None else ""
        return f"Proxy(http://{authority(self.host, self.port)}{credentials})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Proxy holds credentials and cannot be pickled")

    def connect_request(self, host: str, port: int) -> bytes:
        """The CONNECT request for a tunnel to ``host:port`` (IPv6 bracketed)."""
        text("host", host)
        whole("port", port, 1, 65535)
        try:
            target = authority(host, port).encode("ascii")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{shown(host)}: give the venue's host name in ASCII (IDNA)"
            ) from None
        head = b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n"
        if self._authorization is not None:
            head += b"Proxy-Authorization: " + self._authorization.expose() + b"\r\n"
        return head + b"\r\n"

    def connect_headers(self) -> dict[bytes, bytes]:
        """The CONNECT request's extra headers, for a client that writes the request itself
        (httpx): the credentials, if any."""
        if self._authorization is None:
            return {}
        return {b"Proxy-Authorization": self._authorization.expose()}


def _without_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@``, and that user info (None if absent), split
    as :func:`urllib.parse.urlsplit` splits it. The password never reaches ``urlsplit``,
    whose cache (``functools.lru_cache``) would keep the whole URL for the process's
    life."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    user_info, at, host_port = rest[:end].rpartition("@")
    if not at:
        return url, None
    return f"{scheme}://{host_port}{rest[end:]}", user_info


def _parse(url: str, authorization: Secret | None) -> tuple[str, int, Secret | None]:
    """The host, port and Proxy-Authorization value of a proxy URL, or InvalidRequest."""
    if not isinstance(url, str):
        raise InvalidRequest("proxy: give an http://host:port URL or a securetrade Proxy")
    url, user_info = _without_credentials(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an unclosed or invalid IPv6 literal
        raise InvalidRequest(
            "proxy: the host is not a name or an address (IPv6 goes in brackets: http://[::1]:3128)"
        ) from None
    if parts.scheme != "http" or not host:
        raise InvalidRequest(
            "proxy: give an http://host:port CONNECT proxy (the venue connection inside it "
            "is still TLS, pinned end to end)"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = _DEFAULT_PORT
    if port == 0:  # not silently the default port: a proxy nobody named
        raise InvalidRequest("proxy: the port is not a number from 1 to 65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidRequest("proxy: give only http://[user:password@]host:port")
    if user_info is not None:
        if authorization is not None:
            raise InvalidRequest(
                "proxy: credentials in the URL and an authorization value: give one"
            )
        username, _, secret = user_info.partition(":")
        try:
            user = unquote(username).encode("utf-8")
            password = unquote(secret).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest("proxy: the user or password is not valid text") from None
        authorization = Secret(b"Basic " + base64.b64encode(user + b":" + password))
    if authorization is not None:
        if not isinstance(authorization, Secret):
            raise InvalidRequest("proxy: authorization must be a securetrade.keys.Secret")
        value = authorization.expose()
        if any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value):
            raise InvalidRequest("proxy: the authorization value has control characters")
    return host, port, authorization


def parse_proxy(proxy: str | Proxy) -> Proxy:
    """``proxy`` as a :class:`Proxy`: one as it is, a URL parsed (and refused when it is
    not an ``http://`` CONNECT proxy)."""
    if isinstance(proxy, Proxy):
        return proxy
    if not isinstance(proxy, str):
        raise InvalidRequest("proxy: give an http://host:port URL or a securetrade Proxy")
    try:
        return Proxy(proxy)
    except InvalidRequest as exc:
        reason = str(exc)
    del proxy  # as in Proxy: the refusal carries no frame holding the URL
    raise InvalidRequest(reason)
