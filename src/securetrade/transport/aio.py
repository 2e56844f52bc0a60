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
* a reply is taken only when it is whole and strictly framed, within the size limits:
  the bytes are read here and parsed by the shared sans-I/O layer (:mod:`.wire`, on
  httptools), the same as the blocking transport's.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import ipaddress
import logging
import select
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from .._checks import shown, whole
from ..errors import InvalidRequest
from .base import HttpRequest, HttpResponse, Timeout, TransportFailure
from .http import (
    USER_AGENT,
    check_base_url,
    check_request,
    security_refusal,
)
from .proxy import Proxy, parse_proxy
from .redaction import redact_query
from .tls import check_context, verified_ssl_context
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

__all__ = ["AsyncHttpTransport"]

log = logging.getLogger("securetrade.transport")

_READ_SIZE = 256 * 1024

T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def _within_seconds(step: Awaitable[T], seconds: float) -> T:
        """``step``, or :class:`asyncio.TimeoutError` after ``seconds``: a timer that
        cancels the waiting task. ``wait_for`` would wrap ``step`` in a task of its own,
        which a fan-out pays for every order that waits for a pooled connection."""
        async with asyncio.timeout(seconds):
            return await step

else:  # Python 3.10: no asyncio.timeout
    _within_seconds = asyncio.wait_for


class _Exchange(abc.ABC):
    """What both kinds of connection share: one request at a time, its reply fed to a
    :class:`ResponseReader` as bytes arrive, the waiting task woken once (reply whole, or
    the exchange failed), and one timer for the phases of :class:`Timeout`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.reader: ResponseReader | None = None
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._heard = False  # a byte of the reply arrived
        self._phases: tuple[float, float, float] = (0.0, 0.0, 0.0)  # loop times
        self._timeout: Timeout | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._spare: ResponseReader | None = None  # the last reply's, for the next one

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Write request bytes (each kind of connection writes its own way)."""

    @abc.abstractmethod
    def _writing(self) -> bool:
        """Whether part of the request is still waiting to be written."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; a waiting task is woken with the failure."""

    @abc.abstractmethod
    def reusable(self) -> bool:
        """Idle, open, and nothing received since its last reply."""

    def _deliver(self, data: bytes) -> bool:
        """Hand received bytes on; True when the waiting task should wake. Raises
        ProtocolError when they cannot be a reply."""
        reader = self.reader
        if reader is None:
            self.buffer += data
            return True
        self._heard = True
        return reader.feed(data)

    def _end(self, exc: BaseException) -> None:
        """The stream is over: close, and fail whoever waits for more."""
        self.close()
        if self._lost is None:
            self._lost = exc

    def _lose(self, exc: BaseException) -> None:
        self._end(exc)
        self._wake(exc)

    def _arm(self, at: float) -> None:
        """Have the timer fire at ``at`` or earlier. A timer still pending from an earlier
        exchange that fires no later is kept: :meth:`_expire` moves it on to this
        exchange's phases. Scheduling and cancelling a loop timer per request cost more
        Python than the rest of the wait for the reply (a heap of Python-level handles)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= at:
                return
            timer.cancel()
        self._timer = self._loop.call_at(at, self._expire)

    def _disarm(self) -> None:
        """Cancel the timer (the connection is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        """The timer fired: fail the exchange if the phase under way is over its time, else
        wait for the next phase's end. Between exchanges it does nothing: the timer of a
        finished exchange is left to fire rather than cancelled, and the next exchange
        arms it again (:meth:`_arm`)."""
        self._timer = None
        if self.reader is None:
            return
        now = self._loop.time() + 0.001  # the loop may run a timer a hair early
        write_at, first_at, whole_at = self._phases
        timeout = self._timeout
        assert timeout is not None
        writing = self._writing()
        if writing and now >= write_at:
            expired = Expired("write", timeout.write)
        elif not self._heard and now >= first_at:
            expired = Expired("first_byte", timeout.first_byte)
        elif now >= whole_at:
            expired = Expired("response", timeout.response)
        else:
            pending = [whole_at]
            if writing:
                pending.append(write_at)
            if not self._heard:
                pending.append(first_at)
            later = [at for at in pending if at > now] or [whole_at]
            self._timer = self._loop.call_at(min(later), self._expire)
            return
        self.closed = True  # a reply may still be on its way: never reuse this connection
        self._lost = expired
        self._wake(expired)

    def _wake(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def more(self) -> None:
        """Wait until there is progress: bytes in the buffer, or the reply whole (or the
        connection ends)."""
        if self._lost is not None or self.closed:
            raise self._lost or ConnectionResetError("connection closed")
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def exchange(self, data: bytes, timeout: Timeout, limits: Limits) -> ResponseReader:
        """Write ``data`` and read one whole reply, each phase within its time, counted
        from now (a timer on the loop, not ``wait_for``: that costs a task per request)."""
        reader, self._spare = self._spare, None
        if reader is None or not reader.again(limits):
            if reader is not None:
                reader.release()  # other limits: freed now, not by the cyclic collector
            reader = ResponseReader(limits, keep_parser=True)
        self.reader = reader
        start = self._loop.time()
        self._phases = phases = (
            start + timeout.write,
            start + timeout.first_byte,
            start + timeout.response,
        )
        self._timeout = timeout
        self._heard = False
        self._arm(min(phases))
        try:
            self.write(data)
            while not reader.done:
                await self.more()
        finally:
            self.reader = None  # the timer stays: it fires into an idle connection, or the next
        if not reader.reusable:  # closing, or bytes after the reply: not reusable
            reader.release()
            self.close()
        else:  # its parser reads the next reply (the caller takes this one's response first)
            self._spare = reader
        return reader

    def _drop_spare(self) -> None:
        """The connection is closing: free the kept reader and its parser now."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.release()


class _Connection(_Exchange):
    """One keep-alive connection on a non-blocking socket, one request at a time.

    TLS is an :class:`ssl.SSLSocket` read and written from loop callbacks: the record
    layer runs in C, without asyncio's TLS protocol, whose Python layers cost about a
    third of this transport's time per request. The pinned context's socket class checks
    the pins inside the handshake, as it does for every other path.

    While a request is out, arriving bytes go straight to its :class:`ResponseReader`
    (nothing is buffered beyond the reader's limits) and the waiting task is woken once,
    when the reply is whole or the exchange failed. Between requests (and while a proxy
    tunnel is set up) they are kept in :attr:`buffer`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        super().__init__(loop)
        self.sock = sock
        self._fd = sock.fileno()
        self._unsent = b""
        # Decrypted bytes TLS holds that the socket no longer signals (none in plain HTTP).
        self._tls_pending: Callable[[], int] = (
            sock.pending if isinstance(sock, ssl.SSLSocket) else _no_bytes
        )
        loop.add_reader(self._fd, self._readable)

    def _writing(self) -> bool:
        return bool(self._unsent)

    def _readable(self) -> None:
        reader = self.reader
        progress = False
        try:
            while True:  # until the socket (and the TLS layer's own buffer) is empty
                data = self.sock.recv(_READ_SIZE)
                if not data:
                    if reader is not None:
                        reader.end_of_stream()  # ProtocolError unless the reply is whole
                    self._end(ConnectionResetError("the server closed the connection"))
                    break
                if self._deliver(data):
                    progress = True
                    if reader is not None and reader.done and not self._tls_pending():
                        # The reply is whole and TLS holds nothing more: no read ending in
                        # "would block" (an exception) per reply. Whatever follows it (an
                        # end of stream, stray bytes) calls this again (the loop watches
                        # the socket level-triggered) or is found by reusable().
                        break
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except ssl.SSLWantWriteError:  # the TLS layer must write before it reads on
            self._loop.add_writer(self._fd, self._flush_then_read)
        except (OSError, ProtocolError) as exc:  # ssl.SSLError too: a bad record, an alert
            self._end(exc)
        # The answer first: a reply followed by the end of the stream is still a reply.
        if progress:
            self._wake(None)
        elif self._lost is not None:
            self._wake(self._lost)

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

    def reusable(self) -> bool:
        """Idle and still open. Reads what arrived first: the loop may not have run since
        the server closed the connection (a caller driving it with run_until_complete)."""
        if not self.closed and not self.buffer and self._arrived():
            self._readable()  # an end of stream marks it closed; stray bytes fill the buffer
        return not self.closed and not self.buffer

    def _arrived(self) -> bool:
        """Whether anything waits to be read: bytes TLS decrypted and holds, or the socket
        readable (an end of stream too). Asked with a poll, not a read: a read of an idle
        TLS socket ends in SSLWantReadError, an exception raised and caught per request."""
        if self._tls_pending():
            return True
        try:
            readable, _, _ = select.select((self._fd,), (), (), 0)
        except (OSError, ValueError):
            return True  # the read says what is wrong with the socket
        return bool(readable)

    def detach(self) -> socket.socket:
        """Stop watching the socket and hand it over (a proxy tunnel, now to carry TLS)."""
        self._loop.remove_reader(self._fd)
        self.closed = True
        return self.sock

    def close(self) -> None:
        """Close now: a TLS goodbye if the socket takes it at once, then the socket."""
        self._disarm()
        self._drop_spare()
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


class _StreamConnection(_Exchange, asyncio.Protocol):
    """The same connection on asyncio's own transports, TLS by :class:`ssl.SSLObject`:
    for event loops that cannot watch a socket (``add_reader``), such as the proactor loop
    Windows runs by default. The pinned context's SSLObject class checks the pins inside
    the handshake, which asyncio completes before it hands the connection over: the first
    request byte is written after the check, as on every other path."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.transport: asyncio.Transport | None = None
        self.gone: asyncio.Future[None] = loop.create_future()  # set once the socket is shut

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            if self._deliver(data):
                self._wake(None)
        except ProtocolError as exc:
            self._lose(exc)

    def eof_received(self) -> bool:
        reader = self.reader
        if reader is not None and not reader.done:
            self._lose(ProtocolError("the connection ended before the reply was whole"))
        else:
            self._end(ConnectionResetError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._lose(exc or ConnectionResetError("the connection was closed"))
        if not self.gone.done():
            self.gone.set_result(None)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _writing(self) -> bool:
        """What asyncio still holds. Over TLS it passes bytes to the socket's transport at
        once, where they are out of sight: there the ``first_byte`` and ``response``
        phases bound a request the server does not read."""
        return self.transport is not None and self.transport.get_write_buffer_size() > 0

    def reusable(self) -> bool:
        """Idle, open, nothing received since its reply, and nothing waiting in the socket
        either: the loop may not have run since the server closed the connection (a
        caller driving it with run_until_complete), and between requests a server has
        nothing to say."""
        transport = self.transport
        if self.closed or self.buffer or transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError, TypeError):
            return False
        return not readable

    def close(self) -> None:
        """Close now. No TLS goodbye: asyncio would wait for the peer's answer to it (up
        to its shutdown timeout) before letting the socket go."""
        self._disarm()
        self._drop_spare()
        self.closed = True
        if self.transport is not None and not self._loop.is_closed():
            self.transport.abort()


def _watches_sockets(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` can call back when a socket is readable (``add_reader``); the
    proactor loop, Windows' default, cannot."""
    probe, other = socket.socketpair()
    try:
        loop.add_reader(probe.fileno(), _nothing)
    except NotImplementedError:
        return False
    else:
        loop.remove_reader(probe.fileno())
        return True
    finally:
        probe.close()
        other.close()


def _nothing() -> None:
    pass


def _no_bytes() -> int:
    return 0


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


async def _open_socket(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    timeout: Timeout,
    local_address: str | None = None,
) -> socket.socket:
    """A connected non-blocking TCP socket (no Nagle delay), trying each address in turn:
    the lookup within the ``resolve`` phase, the connecting within ``connect``. With
    ``local_address`` the socket leaves from that address of this host (the egress IP the
    venue counts its per-IP limits by)."""
    try:
        addresses = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout.resolve
        )
    except asyncio.TimeoutError:
        raise Expired("resolve", timeout.resolve) from None
    deadline = loop.time() + timeout.connect
    failure: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if local_address is not None:
                _bind(sock, local_address)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Expired("connect", timeout.connect)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, address), remaining)
            except asyncio.TimeoutError:
                raise Expired("connect", timeout.connect) from None
        except Expired:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure


def _bind(sock: socket.socket, local_address: str) -> None:
    """Send from ``local_address`` (any free port)."""
    try:
        sock.bind((local_address, 0))
    except OSError as exc:
        sock.close()
        raise TransportFailure(
            f"cannot send from {local_address} ({exc.strerror}): give an address of this "
            "host as the egress; connection not made",
            sent=False,
        ) from None


def _local_address(value: str | None) -> str | None:
    """``value`` checked as an IP address literal (the egress to bind), or None."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        raise InvalidRequest(
            f"local_address must be an IP address of this host, not {shown(value)}"
        ) from None


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
    been read whole. ``local_address`` sends every connection from that address of this
    host: a platform with several egress IPs gives each its own transport.
    """

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        timeout: Timeout | float = 10.0,
        proxy: str | Proxy | None = None,
        max_connections: int = 64,
        limits: Limits = DEFAULT_LIMITS,
        unsafe_allow_plain_http: bool = False,
        local_address: str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, unsafe_allow_plain_http=unsafe_allow_plain_http)
        self.local_address = _local_address(local_address)
        parts = urlsplit(self.base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._tls else 80)
        self._host_header = (
            (f"[{self._host}]" if ":" in self._host else self._host)
            if default_port
            else authority(self._host, self._port)
        )
        if ssl_context is None and self._tls:
            ssl_context = verified_ssl_context()  # the platform's CAs, never SSL_CERT_*
        if self._tls:
            check_context(ssl_context)
        self._context = ssl_context
        self._timeout = Timeout.coerce(timeout)
        check_limits(limits)
        self._limits = limits
        self._proxy = parse_proxy(proxy) if proxy is not None else None
        self._max_connections = whole("max_connections", max_connections, 1)
        self._idle: collections.deque[_Exchange] = collections.deque()
        self._open: set[_Exchange] = set()
        self._watching = True  # whether the loop has add_reader (else asyncio's streams)
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the pool belongs to
        self._closed = False

    async def _connect(self, timeout: Timeout) -> _Exchange:
        loop = asyncio.get_running_loop()
        if self._tls:
            check_context(self._context)  # as it is now: nothing weakened since
        try:
            if self._watching:
                return await self._open_connection(loop, timeout)
            return await self._open_stream(loop, timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, ConnectionError) as exc:
            refusal = security_refusal(exc)
            if refusal is not None:
                raise refusal from None
            reason = str(exc) if isinstance(exc, Expired) else type(exc).__name__
            raise TransportFailure(f"{reason}: connection not made", sent=False) from None

    async def _open_connection(
        self, loop: asyncio.AbstractEventLoop, timeout: Timeout
    ) -> _Connection:
        """TCP to the venue (or through an HTTP CONNECT tunnel), then TLS, pinned."""
        if self._proxy is None:
            sock = await _open_socket(loop, self._host, self._port, timeout, self.local_address)
        else:
            sock = await self._within(self._tunnel(loop, timeout), "connect", timeout.connect)
        if not self._tls:
            return _Connection(loop, sock)
        assert self._context is not None  # set whenever the scheme is https
        tls = await self._within(
            _handshake(loop, sock, self._context, self._host), "tls", timeout.tls
        )
        try:
            return _Connection(loop, tls)
        except BaseException:
            tls.close()
            raise

    async def _open_stream(
        self, loop: asyncio.AbstractEventLoop, timeout: Timeout
    ) -> _StreamConnection:
        """The same on asyncio's own transports (loops without ``add_reader``): TCP (or
        the proxy's tunnel), then asyncio's TLS with the pinned context, whose SSLObject
        checks the pins in the handshake."""
        connection = _StreamConnection(loop)
        proxy = self._proxy
        address = (self._host, self._port) if proxy is None else (proxy.host, proxy.port)
        try:
            sock = await _open_socket(loop, *address, timeout, self.local_address)
            if proxy is not None or not self._tls:
                await loop.create_connection(lambda: connection, sock=sock)
            if proxy is not None:
                await self._within(self._through(connection), "connect", timeout.connect)
            if not self._tls:
                return connection
            assert self._context is not None  # set whenever the scheme is https
            if proxy is None:
                opening = loop.create_connection(
                    lambda: connection, sock=sock, ssl=self._context, server_hostname=self._host
                )
                await self._within(opening, "tls", timeout.tls)
            else:
                assert connection.transport is not None
                upgrade = loop.start_tls(
                    connection.transport, connection, self._context, server_hostname=self._host
                )
                transport = await self._within(upgrade, "tls", timeout.tls)
                assert isinstance(transport, asyncio.Transport)
                connection.transport = transport
            return connection
        except BaseException:
            connection.close()
            raise

    @staticmethod
    async def _within(step: Awaitable[T], phase: str, seconds: float) -> T:
        """``step``, or Expired once the phase's ``seconds`` have passed."""
        try:
            return await asyncio.wait_for(step, seconds)
        except asyncio.TimeoutError:
            raise Expired(phase, seconds) from None

    async def _through(self, connection: _Exchange) -> None:
        """Ask the proxy for a tunnel to the venue on ``connection``; return once it is
        open (ConnectionError if the proxy refuses it or answers what we cannot read)."""
        assert self._proxy is not None
        connection.write(self._proxy.connect_request(self._host, self._port))
        tunnel = TunnelReader(self._limits)
        status = None
        try:
            while status is None:
                await connection.more()
                status = tunnel.feed(connection.buffer)
                connection.buffer.clear()
        except ProtocolError as exc:
            raise ConnectionError(str(exc)) from None
        if not 200 <= status < 300:
            raise ConnectionError(f"the proxy refused the tunnel with HTTP {status}")

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, timeout: Timeout) -> socket.socket:
        """A socket through the proxy's HTTP CONNECT tunnel to the venue, ready for TLS."""
        assert self._proxy is not None
        proxy = self._proxy
        opened = await _open_socket(loop, proxy.host, proxy.port, timeout, self.local_address)
        connection = _Connection(loop, opened)
        try:
            await self._through(connection)
            return connection.detach()
        except BaseException:
            connection.close()
            raise

    def _encode(self, request: HttpRequest) -> bytes:
        check_request(request)
        return encode_request(
            request.method,
            self._prefix + request.target,
            self._host_header,
            request.headers,
            request.body,
            USER_AGENT,
        )

    async def send(
        self, request: HttpRequest, *, timeout: Timeout | float | None = None
    ) -> HttpResponse:
        """Send ``request`` and read its reply; ``timeout`` overrides the transport's for
        this call."""
        data = self._encode(request)
        phases = self._timeout if timeout is None else Timeout.coerce(timeout)
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
            self._watching = _watches_sockets(loop)
            self._loop = loop
        slots = self._slots
        assert slots is not None
        if slots.locked():  # every connection busy: wait for one, within the pool phase
            try:
                await _within_seconds(slots.acquire(), phases.pool)
            except asyncio.TimeoutError:
                raise TransportFailure(
                    f"no free connection within {phases.pool:g} s (all {self._max_connections}"
                    " busy): connection not made",
                    sent=False,
                ) from None
        else:
            await slots.acquire()  # free: returns at once
        try:
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.reusable():
                    connection = candidate
                    break
                candidate.close()
                self._open.discard(candidate)
            if connection is None:
                connection = await self._connect(phases)
                self._open.add(connection)
            try:
                response = (await connection.exchange(data, phases, self._limits)).response
            except (OSError, asyncio.TimeoutError, ConnectionError, ProtocolError) as exc:
                connection.close()
                self._open.discard(connection)
                reason = (
                    str(exc) if isinstance(exc, (ProtocolError, Expired)) else type(exc).__name__
                )
                raise TransportFailure(f"{reason}: outcome unknown", sent=True) from None
            except BaseException:
                connection.close()  # cancelled mid-exchange: the connection is in an unknown state
                raise
            if connection.closed or self._closed:
                connection.close()
                self._open.discard(connection)
            else:
                self._idle.append(connection)
        finally:
            slots.release()
        assert response is not None  # the reader is done
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
        connections = self._drop_all()
        closing = [
            connection.gone
            for connection in connections
            if isinstance(connection, _StreamConnection) and connection.transport is not None
        ]
        if closing:  # asyncio lets a transport's socket go on the loop's next turn
            await asyncio.wait(closing, timeout=1.0)

    def _drop_all(self) -> list[_Exchange]:
        """Close the pool's sockets; a connection of a loop that has ended is closed too."""
        self._idle.clear()
        connections, self._open = list(self._open), set()
        for connection in connections:
            connection.close()
        return connections
