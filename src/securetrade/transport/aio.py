"""The asyncio HTTPS transport: keep-alive HTTP/1.1 on asyncio protocols, no HTTP library.

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
import logging
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

__all__ = ["AsyncHttpTransport"]

log = logging.getLogger("securetrade.transport")

_MAX_HEAD = 64 * 1024
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


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._gone: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.closed = True
        self._wake(ConnectionResetError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake(exc or ConnectionResetError("connection lost"))
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    async def wait_closed(self) -> None:
        """Until the socket is really closed (TLS says goodbye over a few loop turns)."""
        if self._gone is not None:
            await asyncio.shield(self._gone)

    def _expire(self) -> None:
        self.closed = True  # a reply may still be on its way: never reuse this connection
        self._wake(TimeoutError("no whole reply in time"))

    def _wake(self, exc: BaseException) -> None:
        self._lost = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def more(self) -> None:
        """Wait until more bytes arrive (or the connection ends)."""
        if self.closed:
            raise self._lost or ConnectionResetError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def exchange(self, data: bytes, timeout: float) -> HttpResponse:
        """Write ``data`` and read one whole reply; TimeoutError after ``timeout`` seconds
        (a timer on the loop, not ``wait_for``: that costs a task per request)."""
        transport = self.transport
        assert transport is not None
        timer = asyncio.get_running_loop().call_later(timeout, self._expire)
        try:
            transport.write(data)
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

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


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
            ssl_context = ssl.create_default_context()
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
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
            if self._proxy is None:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(
                        _Connection,
                        self._host,
                        self._port,
                        ssl=self._context if self._tls else None,
                        server_hostname=self._host if self._tls else None,
                    ),
                    self._timeout,
                )
                return connection
            return await asyncio.wait_for(self._tunnel(loop), self._timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, ConnectionError) as exc:
            refusal = security_refusal(exc)
            if refusal is not None:
                raise refusal from None
            raise TransportFailure(
                f"{type(exc).__name__}: connection not made", sent=False
            ) from None

    async def _tunnel(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        """An HTTP CONNECT tunnel through the proxy, then TLS (pinned) inside it."""
        assert self._proxy is not None
        proxy_host, proxy_port, proxy_headers = self._proxy
        transport, connection = await loop.create_connection(_Connection, proxy_host, proxy_port)
        try:
            authority = f"{self._host}:{self._port}"
            lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            lines += [f"{name}: {value}" for name, value in proxy_headers.items()]
            transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            while b"\r\n\r\n" not in connection.buffer:
                if len(connection.buffer) > _MAX_HEAD:
                    raise ConnectionError("proxy answer too large")
                await connection.more()
            status_line = bytes(connection.buffer.split(b"\r\n", 1)[0])
            status = status_line.split(b" ")[1:2]
            if status != [b"200"]:
                raise ConnectionError(f"proxy refused the tunnel: {status_line[:60]!r}")
            if not self._tls:
                connection.buffer.clear()
                return connection
            assert self._context is not None  # set whenever the scheme is https
            secure = await loop.start_tls(
                transport, connection, self._context, server_hostname=self._host
            )
        except BaseException:
            transport.close()
            raise
        if secure is None:
            raise ConnectionError("TLS inside the proxy tunnel could not start")
        fresh = _Connection()
        fresh.connection_made(secure)
        secure.set_protocol(fresh)
        return fresh

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
            self._idle.clear()
            self._open.clear()
            self._slots = asyncio.Semaphore(self._max_connections)
            self._loop = loop
        slots = self._slots
        assert slots is not None
        async with slots:
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed and not candidate.buffer:
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
        """Close every connection and wait (a second at most) until their sockets are shut."""
        self._closed = True
        self._idle.clear()
        connections, self._open = list(self._open), set()
        if asyncio.get_running_loop() is not self._loop:
            return  # they belong to a loop that has ended: nothing can close them now
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_closed()) for c in connections], timeout=1.0
            )
