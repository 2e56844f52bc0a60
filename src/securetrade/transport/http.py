"""The blocking HTTPS transport: keep-alive HTTP/1.1 on blocking sockets, TLS by
:class:`ssl.SSLSocket`, replies read by the shared sans-I/O layer (:mod:`.wire`, on
httptools).

Why not httpx here: one keep-alive POST through ``httpx.Client`` spends about 600 µs of
Python in its client, pool and h11 layers on this project's machine, most of which this
transport does not spend (``python -m benchmarks`` measures the order row against
raw httpx). The guarantees are the transport's, not the library's:

* pinned TLS: the pinned :class:`ssl.SSLContext` checks the peer inside the handshake,
  direct or through a CONNECT proxy, before the first request byte;
* no redirects, no environment proxies, plain HTTP only to loopback and only when asked
  for;
* the request target and body are written exactly as signed;
* a reply is taken only when it is whole and strictly framed (see :mod:`.wire`), within
  the size limits and the timeout, which bounds the whole exchange, not each read;
* failures are sorted by what they mean for an order: a connection that was never made
  (``sent=False``, safe to resend), a pin mismatch (:class:`errors.PinMismatch`, never
  retried), or anything after the request may have been written (``sent=True``: the
  outcome is unknown and the idempotency layer asks the venue).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import select
import socket
import ssl
import threading
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .._checks import shown
from ..errors import InvalidRequest, PinMismatch, UntrustedServer
from . import redaction  # noqa: F401 - installs the log filters before any library logs
from .base import HttpRequest, HttpResponse, Timeout, TransportFailure
from .proxy import Proxy, parse_proxy
from .redaction import redact_query
from .tls import PinFailure, check_context, verified_ssl_context
from .wire import (
    DEFAULT_LIMITS,
    Expired,
    Limits,
    ProtocolError,
    ResponseReader,
    TunnelReader,
    authority,
    check_limits,
    encode_request,
)

__all__ = [
    "USER_AGENT",
    "HttpTransport",
    "check_base_url",
    "check_request",
    "find_cause",
    "parse_proxy",
    "security_refusal",
]

log = logging.getLogger("securetrade.transport")

E = TypeVar("E", bound=BaseException)

USER_AGENT = "securetrade"  # what both transports send unless a venue sets its own
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # RFC 9110: methods, names
_TARGET = re.compile(r"/[\x21-\x7e]*").fullmatch  # origin form: visible ASCII, no spaces
_VALUE = re.compile(r"[\t\x20-\x7e]*").fullmatch  # no CR, LF or other controls
_VISIBLE = re.compile(r"[\x21-\x7e]+").fullmatch  # visible ASCII: no spaces, controls
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?").fullmatch
# Headers that frame the request or steer the connection: written by the transport
# alone (Host, Content-Length), or never (the rest: one body, no upgrade, no 100-continue).
_TRANSPORTS_OWN = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-connection",
    }
)
_MAX_IDLE = 16  # idle keep-alive connections kept per transport
_READ_SIZE = 256 * 1024


def check_base_url(base_url: str, *, unsafe_allow_plain_http: bool = False) -> str:
    """Refuse anything but ``https://``, except plain HTTP to loopback when asked for,
    and any base URL whose every part is not plain: visible ASCII (an international
    host name in its ``xn--`` form), a host name or address literal, a port from 1 to
    65535, no credentials (never sent), no query or fragment. Anything else used to
    reach the socket layer (a ValueError, a UnicodeEncodeError writing the Host header)
    or to be quietly dropped. The refusal names no more of the URL than its host."""
    if not isinstance(base_url, str) or _VISIBLE(base_url) is None:
        raise InvalidRequest(
            "base_url must be visible ASCII without spaces or controls (give an "
            "international host name in its xn-- form)"
        )
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise InvalidRequest(
            "base_url: the port must be a number from 1 to 65535, and an IPv6 address "
            "a valid one in brackets (https://[2001:db8::1]:8443)"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            f"base_url for {host}: remove the user and password (they are never sent; "
            "credentials belong in the key)"
        )
    if parts.query or parts.fragment:
        raise InvalidRequest(f"base_url for {host}: give no query or fragment")
    if not host or not (_HOST_NAME(host) or _is_address(host)):
        raise InvalidRequest("base_url: give a host name or an address literal")
    if port == 0:
        raise InvalidRequest(f"base_url for {host}: the port must be from 1 to 65535")
    if parts.scheme == "https":
        return base_url.rstrip("/")
    if parts.scheme == "http" and unsafe_allow_plain_http and _is_loopback(host):
        log.warning("unsafe_allow_plain_http: sending to %s without TLS", host)
        return base_url.rstrip("/")
    raise InvalidRequest(
        f"base_url for {host}: only https:// is allowed (plain http only to loopback, "
        "with unsafe_allow_plain_http=True)"
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


def _not_sent(exc: BaseException) -> Exception:
    refusal = security_refusal(exc)
    if refusal is not None:
        return refusal
    return TransportFailure(f"{_describe(exc)}: connection not made", sent=False)


def _maybe_sent(exc: BaseException) -> Exception:
    return TransportFailure(f"{_describe(exc)}: outcome unknown", sent=True)


def _describe(exc: BaseException) -> str:
    """What went wrong, for a failure's message: our own reasons in full, else the kind."""
    if isinstance(exc, (ProtocolError, Expired)):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "TimeoutError"
    return type(exc).__name__


def _is_stale(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection was closed (or spoke out of turn) meanwhile.

    Between requests the server has nothing to say; anything readable means it closed the
    connection. Checking first keeps a request from being written into a dead socket,
    which would make its outcome look unknown for no reason.
    """
    if sock.fileno() < 0:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _exchange(sock: socket.socket, data: bytes, timeout: Timeout, limits: Limits) -> ResponseReader:
    """Write ``data`` and read one whole reply, each phase within its time (all counted
    from the start: a reply that drips in cannot stretch the ``response`` phase)."""
    start = time.monotonic()
    whole = start + timeout.response
    phase, seconds = (
        ("write", timeout.write)
        if timeout.write < timeout.response
        else (
            "response",
            timeout.response,
        )
    )
    sock.settimeout(seconds)  # sendall's timeout bounds the whole call
    try:
        sock.sendall(data)
    except TimeoutError:
        raise Expired(phase, seconds) from None
    reader = ResponseReader(limits)
    recv = sock.recv
    if timeout.first_byte < timeout.response:
        phase, until = "first_byte", start + timeout.first_byte
    else:
        phase, until = "response", whole
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise Expired(phase, getattr(timeout, phase))
        sock.settimeout(remaining)
        try:
            chunk = recv(_READ_SIZE)
        except TimeoutError:
            raise Expired(phase, getattr(timeout, phase)) from None
        phase, until = "response", whole
        if not chunk:
            reader.end_of_stream()
        if reader.feed(chunk):
            return reader


def _resolve(host: str, port: int, seconds: float) -> list[tuple[Any, ...]]:
    """The addresses of ``host``, within ``seconds``: the lookup runs on a thread of its
    own, since :func:`socket.getaddrinfo` cannot be interrupted (a stuck resolver keeps
    that thread, not the caller)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address literal needs no lookup
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[list[tuple[Any, ...]] | OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="securetrade-resolve", daemon=True).start()
    if not done.wait(seconds):
        raise Expired("resolve", seconds)
    result = found[0]
    if isinstance(result, OSError):
        raise result
    return result


def _open_socket(host: str, port: int, timeout: Timeout) -> socket.socket:
    """A connected TCP socket (no Nagle delay), trying each address in turn within the
    ``connect`` phase."""
    addresses = _resolve(host, port, timeout.resolve)
    deadline = time.monotonic() + timeout.connect
    failure: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Expired("connect", timeout.connect)
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            sock.close()
            raise Expired("connect", timeout.connect) from None
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    raise failure


class _Endpoint:
    """Where connections go: the venue, and the CONNECT proxy in front of it, if any."""

    def __init__(
        self,
        base_url: str,
        context: ssl.SSLContext | None,
        timeout: Timeout,
        proxy: str | Proxy | None,
        limits: Limits,
    ) -> None:
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.path_prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = (
            (f"[{self.host}]" if ":" in self.host else self.host)
            if default_port
            else authority(self.host, self.port)
        )
        self.context = context
        self.timeout = timeout
        self.limits = limits
        self.proxy = None if proxy is None else parse_proxy(proxy)

    def connect(self, timeout: Timeout) -> socket.socket:
        """A new connection, handshaken (and pinned) before it is returned."""
        if self.tls:
            check_context(self.context)  # as it is now: nothing weakened since
        target_host, target_port = self.host, self.port
        if self.proxy is not None:
            target_host, target_port = self.proxy.host, self.proxy.port
        try:
            sock = _open_socket(target_host, target_port, timeout)
        except OSError as exc:
            raise _not_sent(exc) from None
        try:
            if self.proxy is not None:
                sock.settimeout(timeout.connect)
                self._tunnel(sock, time.monotonic() + timeout.connect)
            if not self.tls:
                return sock
            assert self.context is not None  # set whenever the scheme is https
            sock.settimeout(timeout.tls)  # bounds the whole handshake, not each read
            # The pinned context's socket class checks the pins inside this handshake.
            try:
                return self.context.wrap_socket(sock, server_hostname=self.host)
            except TimeoutError:
                raise Expired("tls", timeout.tls) from None
        except (OSError, ProtocolError) as exc:
            sock.close()
            raise _not_sent(exc) from None

    def _tunnel(self, sock: socket.socket, deadline: float) -> None:
        """Open the proxy's CONNECT tunnel to the venue on ``sock``, by ``deadline``."""
        assert self.proxy is not None
        sock.sendall(self.proxy.connect_request(self.host, self.port))
        tunnel = TunnelReader(self.limits)
        status = None
        while status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Expired("connect", self.timeout.connect)
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(_READ_SIZE)
            except TimeoutError:
                raise Expired("connect", self.timeout.connect) from None
            if not chunk:
                raise ProtocolError("the proxy closed the connection before answering")
            status = tunnel.feed(chunk)
        if not 200 <= status < 300:
            raise ProtocolError(f"the proxy refused the tunnel with HTTP {status}")


def check_request(request: HttpRequest) -> None:
    """Refuse, before anything is sent, a request that would not go out as one request.

    Venue adapters build requests from validated fields, so this never fires in normal
    use; it is the last line against a CR or LF smuggling a header or a second request.
    """
    if (
        not isinstance(request, HttpRequest)
        or not isinstance(request.method, str)
        or not isinstance(request.target, str)
        or not isinstance(request.body, bytes)
        or not isinstance(request.headers, (tuple, list))
    ):
        raise _malformed()
    passed = _PASSED
    method, target = request.method, request.target
    if type(method) is not str or method not in passed:
        if _TOKEN(method) is None:
            raise InvalidRequest(f"request refused before sending: bad method {shown(method)}")
        _remember(method)
    if type(target) is not str or target not in passed:
        if _TARGET(target) is None:
            raise InvalidRequest(
                "request refused before sending: the target has spaces or controls"
            )
        if "?" not in target:  # a path; a query (a timestamp, a signature) is one-off
            _remember(target)
    # One loop for the shape and the text of each header (a generator for the shape
    # would cost a Python-level resumption per header on every request).
    for pair in request.headers:
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise _malformed()
        if pair in passed and type(pair[0]) is str and type(pair[1]) is str:
            continue
        name, value = pair
        if _TOKEN(name) is None or _VALUE(value) is None:
            raise InvalidRequest(f"request refused before sending: bad header {shown(name)}")
        if name.lower() in _TRANSPORTS_OWN:
            raise InvalidRequest(
                f"request refused before sending: {name} is the transport's to write (a "
                "second framing or Host header would let the venue's front end and the "
                "venue read different requests)"
            )
        _remember(pair)


# What passed the checks above (methods, targets, header pairs; exact str only): a
# client's order requests repeat their method, path and headers (the key id, the content
# type), and each regex costs more than the set lookup. Bounded: beyond it, checked anew.
_PASSED: set[str | tuple[str, str]] = set()
_PASSED_MAX = 1024


def _remember(item: str | tuple[str, str]) -> None:
    """Keep ``item`` as checked: only exact str (a subclass may compare equal to text it
    does not write), and only while the set has room."""
    if len(_PASSED) < _PASSED_MAX and (
        type(item) is str or (type(item) is tuple and type(item[0]) is str and type(item[1]) is str)
    ):
        _PASSED.add(item)


def _malformed() -> InvalidRequest:
    return InvalidRequest(
        "request refused before sending: give an HttpRequest of str method and target, "
        "a tuple of (str, str) headers and a bytes body"
    )


class HttpTransport:
    """Synchronous, keep-alive HTTPS to one venue; safe to share between threads.

    Each request borrows an idle connection (or opens one) and returns it once the
    response is read whole, so concurrent threads never interleave on one socket.
    """

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        timeout: Timeout | float = 10.0,
        proxy: str | Proxy | None = None,
        limits: Limits = DEFAULT_LIMITS,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        self.base_url = check_base_url(base_url, unsafe_allow_plain_http=unsafe_allow_plain_http)
        if ssl_context is None and self.base_url.startswith("https"):
            ssl_context = verified_ssl_context()  # the platform's CAs, never SSL_CERT_*
        if self.base_url.startswith("https"):
            check_context(ssl_context)
        check_limits(limits)
        self._endpoint = _Endpoint(
            self.base_url, ssl_context, Timeout.coerce(timeout), proxy, limits
        )
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    def _borrow(self, timeout: Timeout) -> socket.socket:
        while True:
            with self._lock:
                if self._closed:
                    raise TransportFailure("transport closed: connection not made", sent=False)
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._endpoint.connect(timeout)
            if not _is_stale(connection):
                return connection
            connection.close()

    def _give_back(self, connection: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def send(self, request: HttpRequest, *, timeout: Timeout | float | None = None) -> HttpResponse:
        """Send ``request`` and read its reply; ``timeout`` overrides the transport's for
        this call (the ``pool`` phase does not apply: threads never wait for a connection,
        each opens one if none is idle)."""
        check_request(request)
        endpoint = self._endpoint
        phases = endpoint.timeout if timeout is None else Timeout.coerce(timeout)
        target = endpoint.path_prefix + request.target
        data = encode_request(
            request.method, target, endpoint.host_header, request.headers, request.body, USER_AGENT
        )
        connection = self._borrow(phases)
        try:
            reader = _exchange(connection, data, phases, endpoint.limits)
        except (OSError, ProtocolError) as exc:
            connection.close()
            raise _maybe_sent(exc) from None
        except BaseException:
            connection.close()  # interrupted mid-exchange: the connection's state is unknown
            raise
        response = reader.response
        assert response is not None  # the reader is done
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "HTTP Request: %s %s -> %d", request.method, redact_query(target), response.status
            )
        if reader.reusable:
            self._give_back(connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        """Close idle connections and refuse new requests."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
