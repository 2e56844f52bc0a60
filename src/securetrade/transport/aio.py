"""The asyncio HTTPS transport: keep-alive HTTP/1.1 on non-blocking sockets watched by the
event loop, TLS by :class:`ssl.SSLSocket`, no HTTP library and no asyncio TLS protocol.

Why not httpx here: under 50 concurrent requests httpx's async pool spends most of its
time scanning its own connections (0.06x aiohttp's throughput on this project's machine;
encode/httpx#3215). Why not aiohttp any more: its request machinery costs more Python per
order than everything else in our async path put together, and an order needs little of
it (one method, a pre-encoded target, bytes in, status, headers and bytes out). The
guarantees are the transport's, as in :mod:`securetrade.transport.http`:

* pinned TLS: the pinned :class:`ssl.SSLContext` checks the peer inside the handshake,
  direct or through a CONNECT proxy, before the first request byte;
* no redirects, no environment proxies, plain HTTP only to loopback when asked for;
* target and body written exactly as signed;
* failures sorted by what they mean for an order: not connected (``sent=False``), a pin
  mismatch (:class:`errors.PinMismatch`), or possibly delivered (``sent=True``);
* a reply is taken only when it is whole: framed by Content-Length or chunked encoding.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from urllib.parse import urlsplit

from ..errors import InvalidRequest
from .base import HttpRequest, HttpResponse, TransportFailure
from .http import (
    USER_AGENT,
    check_base_url,
    check_request,
    parse_proxy,
    security_refusal,
)
from .redaction import redact_query
from .tls import verified_ssl_context

__all__ = ["AsyncHttpTransport"]

log = logging.getLogger("securetrade.transport")

_MAX_HEAD = 64 * 1024
_READ_SIZE = 256 * 1024
_MAX_BODY = 64 * 1024 * 1024


class _Cut(Exception):
    """The reply cannot be read as a whole answer (malformed, unframed or too large)."""


class _Reply:
    """Incremental parser of one HTTP/1.1 response in a connection's buffer."""

    __slots__ = ("body_start", "chunked", "close", "headers", "length", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length = -1
        self.chunked = False
        self.close = False
        self.body_start = -1

    def head(self, buffer: bytearray) -> bool:
        """Parse the status line and headers once they are in; False while incomplete."""
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise _Cut("response header too large")
            return False
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _Cut(f"bad status line {lines[0][:40]!r}")
        self.status = int(code)
        headers = self.headers
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise _Cut("bad header line")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not self.chunked:
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit() or int(length) > _MAX_BODY:
                    raise _Cut("bad Content-Length")
                self.length = int(length)
            elif 100 <= self.status < 200 or self.status in (204, 304):
                self.length = 0
            else:
                raise _Cut("response without Content-Length or chunked framing")
        self.close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        self.body_start = end + 4
        return True

    def body(self, buffer: bytearray) -> tuple[bytes, int] | None:
        """The body and the bytes consumed, or None while it is incomplete."""
        start = self.body_start
        if not self.chunked:
            end = start + self.length
            if len(buffer) < end:
                return None
            return bytes(buffer[start:end]), end
        parts: list[bytes] = []
        received = 0
        at = start
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Cut("bad chunk size") from None
            if size == 0:  # the trailer section (usually empty) ends with a blank line
                end = buffer.find(b"\r\n\r\n", line_end)
                return None if end < 0 else (b"".join(parts), end + 4)
            chunk_start = line_end + 2
            chunk_end = chunk_start + size
            if len(buffer) < chunk_end + 2:
                return None
            parts.append(bytes(buffer[chunk_start:chunk_end]))
            received += size
            if received > _MAX_BODY:
                raise _Cut("response body too large")
            at = chunk_end + 2


class _Connection:
    """One keep-alive connection on a non-blocking socket, one request at a time.

    TLS is an :class:`ssl.SSLSocket` read and written from loop callbacks: the record
    layer runs in C, without asyncio's TLS protocol, whose Python layers cost about a
    third of this transport's time per request. The pinned context's socket class checks
    the pins inside the handshake, as it does for every other path.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.closed = False
        self._loop = loop
        self._fd = sock.fileno()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._unsent = b""
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        received = False
        try:
            while True:  # until the socket (and the TLS layer's own buffer) is empty
                data = self.sock.recv(_READ_SIZE)
                if not data:
                    self._end(ConnectionResetError("the server closed the connection"))
                    break
                self.buffer += data
                received = True
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except ssl.SSLWantWriteError:  # the TLS layer must write before it reads on
            self._loop.add_writer(self._fd, self._flush_then_read)
        except OSError as exc:  # ssl.SSLError too: a bad record, an alert, a reset
            self._end(exc)
        # Bytes first: a reply followed by the end of the stream is still a whole reply.
        self._wake(None if received else self._lost)

    def _flush_then_read(self) -> None:
        self._loop.remove_writer(self._fd)
        if self._unsent:
            self._writable()
        self._readable()

    def write(self, data: bytes) -> None:
        """Send ``data`` now, the rest as the socket takes it (requests are small)."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        if sent < len(data):
            self._unsent = data[sent:]
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._unsent)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            self._loop.remove_writer(self._fd)

    def _lose(self, exc: BaseException) -> None:
        self._end(exc)
        self._wake(exc)

    def _end(self, exc: BaseException) -> None:
        """The stream is over: close, and fail whoever waits for more."""
        self.close()
        if self._lost is None:
            self._lost = exc

    def _expire(self) -> None:
        self.closed = True  # a reply may still be on its way: never reuse this connection
        self._lost = TimeoutError("no whole reply in time")
        self._wake(self._lost)

    def _wake(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def more(self) -> None:
        """Wait until more bytes arrive (or the connection ends)."""
        if self._lost is not None or self.closed:
            raise self._lost or ConnectionResetError("connection closed")
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def exchange(self, data: bytes, timeout: float) -> HttpResponse:
        """Write ``data`` and read one whole reply; TimeoutError after ``timeout`` seconds
        (a timer on the loop, not ``wait_for``: that costs a task per request)."""
        timer = self._loop.call_later(timeout, self._expire)
        try:
            self.write(data)
            reply = _Reply()
            while not (self.buffer and reply.head(self.buffer)):
                await self.more()
            while (done := reply.body(self.buffer)) is None:
                await self.more()
        finally:
            timer.cancel()
        body, used = done
        del self.buffer[:used]
        if reply.close or self.buffer:  # closing, or bytes nobody asked for: not reusable
            self.close()
        return HttpResponse(reply.status, reply.headers, body)

    def reusable(self) -> bool:
        """Idle and still open. Reads what arrived first: the loop may not have run since
        the server closed the connection (a caller driving it with run_until_complete)."""
        if not self.closed and not self.buffer:
            self._readable()  # an end of stream marks it closed; stray bytes fill the buffer
        return not self.closed and not self.buffer

    def detach(self) -> socket.socket:
        """Stop watching the socket and hand it over (a proxy tunnel, now to carry TLS)."""
        self._loop.remove_reader(self._fd)
        self.closed = True
        return self.sock

    def close(self) -> None:
        """Close now: a TLS goodbye if the socket takes it at once, then the socket."""
        if self.closed and self.sock.fileno() < 0:
            return
        self.closed = True
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if isinstance(self.sock, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                self.sock.unwrap()  # sends close_notify; the peer's answer is not awaited
        self.sock.close()


async def _ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, *, write: bool) -> None:
    """Until ``sock`` can be read (or written)."""
    future: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await future
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _open_socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (no Nagle delay), trying each address in turn."""
    failure: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure


async def _handshake(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, context: ssl.SSLContext, host: str
) -> ssl.SSLSocket:
    """TLS over ``sock`` (verified, and pinned when the context is), without blocking."""
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(loop, tls, write=False)
            except ssl.SSLWantWriteError:
                await _ready(loop, tls, write=True)
    except BaseException:
        tls.close()
        raise


class AsyncHttpTransport:
    """Asynchronous keep-alive HTTPS to one venue, for many concurrent tasks.

    Connections are opened on demand inside the running loop (so the transport, and an
    ``AsyncClient``, may be built outside any loop), at most ``max_connections`` at once;
    each carries one request at a time and goes back to the idle pool when its reply has
    been read whole.
    """

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        timeout: float = 10.0,
        proxy: str | None = None,
        max_connections: int = 64,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        self.base_url = check_base_url(base_url, unsafe_allow_plain_http=unsafe_allow_plain_http)
        parts = urlsplit(self.base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        if ssl_context is None and self._tls:
            ssl_context = verified_ssl_context()  # the platform's CAs, never SSL_CERT_*
        self._context = ssl_context
        self._timeout = timeout
        self._proxy = parse_proxy(proxy) if proxy is not None else None
        if max_connections < 1:
            raise InvalidRequest("max_connections must be at least 1")
        self._max_connections = max_connections
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the pool belongs to
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(self._open_connection(loop), self._timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, ConnectionError) as exc:
            refusal = security_refusal(exc)
            if refusal is not None:
                raise refusal from None
            raise TransportFailure(
                f"{type(exc).__name__}: connection not made", sent=False
            ) from None

    async def _open_connection(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        """TCP to the venue (or through an HTTP CONNECT tunnel), then TLS, pinned."""
        if self._proxy is None:
            sock = await _open_socket(loop, self._host, self._port)
        else:
            sock = await self._tunnel(loop)
        if not self._tls:
            return _Connection(loop, sock)
        assert self._context is not None  # set whenever the scheme is https
        tls = await _handshake(loop, sock, self._context, self._host)
        try:
            return _Connection(loop, tls)
        except BaseException:
            tls.close()
            raise

    async def _tunnel(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A socket through the proxy's HTTP CONNECT tunnel to the venue, ready for TLS."""
        assert self._proxy is not None
        proxy_host, proxy_port, proxy_headers = self._proxy
        connection = _Connection(loop, await _open_socket(loop, proxy_host, proxy_port))
        try:
            authority = f"{self._host}:{self._port}"
            lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            lines += [f"{name}: {value}" for name, value in proxy_headers.items()]
            connection.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            while b"\r\n\r\n" not in connection.buffer:
                if len(connection.buffer) > _MAX_HEAD:
                    raise ConnectionError("proxy answer too large")
                await connection.more()
            head, _, rest = bytes(connection.buffer).partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0]
            if status_line.split(b" ")[1:2] != [b"200"]:
                raise ConnectionError(f"proxy refused the tunnel: {status_line[:60]!r}")
            if rest:  # the venue cannot have spoken yet: not a tunnel we understand
                raise ConnectionError("the proxy sent bytes after its answer")
            return connection.detach()
        except BaseException:
            connection.close()
            raise

    def _encode(self, request: HttpRequest) -> bytes:
        check_request(request)
        lines = [f"{request.method} {self._prefix}{request.target} HTTP/1.1"]
        lines.append(f"Host: {self._host_header}")
        named = {name.lower() for name, _ in request.headers}
        lines += [f"{name}: {value}" for name, value in request.headers]
        if "user-agent" not in named:
            lines.append(f"User-Agent: {USER_AGENT}")
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(request.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body

    async def send(self, request: HttpRequest) -> HttpResponse:
        data = self._encode(request)
        if self._closed:
            raise TransportFailure("transport closed: connection not made", sent=False)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (Jupyter, asyncio.run again): new pool
            if self._loop is not None and self._loop.is_running():
                raise InvalidRequest(
                    "this transport is in use on another running event loop: make one "
                    "client per event loop (thread)"
                )
            self._drop_all()
            self._slots = asyncio.Semaphore(self._max_connections)
            self._loop = loop
        slots = self._slots
        assert slots is not None
        async with slots:
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.reusable():
                    connection = candidate
                    break
                candidate.close()
                self._open.discard(candidate)
            if connection is None:
                connection = await self._connect()
                self._open.add(connection)
            try:
                response = await connection.exchange(data, self._timeout)
            except (OSError, asyncio.TimeoutError, ConnectionError, _Cut) as exc:
                connection.close()
                self._open.discard(connection)
                raise TransportFailure(
                    f"{type(exc).__name__}: outcome unknown", sent=True
                ) from None
            except BaseException:
                connection.close()  # cancelled mid-exchange: the connection is in an unknown state
                raise
            if connection.closed or self._closed:
                connection.close()
                self._open.discard(connection)
            else:
                self._idle.append(connection)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "HTTP Request: %s %s -> %d",
                request.method,
                redact_query(request.target),
                response.status,
            )
        return response

    async def aclose(self) -> None:
        """Close every connection (each says goodbye to TLS if its socket takes it at once)."""
        self._closed = True
        self._drop_all()

    def _drop_all(self) -> None:
        """Close the pool's sockets; a connection of a loop that has ended is closed too."""
        self._idle.clear()
        connections, self._open = list(self._open), set()
        for connection in connections:
            connection.close()
