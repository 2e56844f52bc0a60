"""The simulator over HTTPS on one asyncio event loop, for throughput measurements.

The threaded server (:mod:`securetrade.sim.server`) parses each request with
``http.server`` in a thread per connection; under 50 concurrent clients that front end,
not the simulator, sets the ceiling (about 2,000 orders/s on a 2-CPU machine, where the
handler itself needs about 80 µs per order). This server answers the same handler from
``asyncio.Protocol`` callbacks with a minimal HTTP/1.1 parser, so the exchange logic is
what is measured: signatures checked, orders matched, rate limits counted.

The handler runs on the loop: a fault that sleeps (``delay``) would stall every
connection, so fault-injection tests use the threaded server. Dropped and reset responses
behave as there: the connection closes, or half a status line goes out before an abort.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

from .certs import Certificates, make_certificates
from .server import Handler, Served, server_context

__all__ = ["FastHttpsServer"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 418: "I'm a teapot", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


class _Connection(asyncio.Protocol):
    """One client connection: parses pipelined HTTP/1.1 requests and answers each in turn."""

    def __init__(self, server: FastHttpsServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._handle: asyncio.Transport | None = None
        self._peer = "127.0.0.1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._handle = transport  # kept after close(), to abort a goodbye that hangs
        peer = transport.get_extra_info("peername")
        if peer:
            self._peer = str(peer[0])
        self._server.connections += 1
        self._server._open.add(self)

    def data_received(self, data: bytes) -> None:
        self._server.bytes_received += len(data)
        self._buffer += data
        while self._transport is not None and self._answer_one():
            pass

    def _answer_one(self) -> bool:
        """Answer the first complete request in the buffer; False when there is none."""
        transport = self._transport
        assert transport is not None
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._refuse(431, "request header too large")
            return False
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            self._refuse(400, "bad request line")
            return False
        method, target, _ = request_line
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                self._refuse(400, "bad header line")
                return False
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            self._refuse(411, "send a Content-Length")
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._refuse(400, "bad Content-Length")
            return False
        if len(self._buffer) < end + 4 + length:
            return False
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        response = self._server.handler(method, target, headers, body, self._peer)
        if response.drop:
            self._close(transport)
            return False
        if response.reset:
            with contextlib.suppress(OSError):
                transport.write(f"HTTP/1.1 {response.status} OK\r\ncontent-type: ".encode())
            sock = transport.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close() sends an RST, not a FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            self._transport = None
            return False
        if response.early_hints:
            transport.write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </static/app.css>; rel=preload\r\n\r\n"
            )
        head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        head.append(f"content-length: {len(response.body)}")
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        if headers.get("connection", "").lower() == "close":
            self._close(transport)
            return False
        return True

    def _refuse(self, status: int, reason: str) -> None:
        transport = self._transport
        if transport is None:
            return
        body = reason.encode()
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n".encode()
            + body
        )
        self._close(transport)

    def _close(self, transport: asyncio.Transport) -> None:
        transport.close()
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._close(self._transport)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            # Closed by the peer. Python 3.10's TLS transport is not marked closed by a
            # lost connection and warns (ResourceWarning) when collected; later ones ignore this.
            transport.close()
        self._server._open.discard(self)


class FastHttpsServer(Served):
    """Serves ``handler`` over HTTPS on 127.0.0.1 from an event loop in its own thread.

    The same surface as :class:`~securetrade.sim.server.HttpsServer`: ``base_url``,
    ``pins``, ``ca_pem``, ``start``/``stop`` and use as a context manager.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        certificates: Certificates | None = None,
    ) -> None:
        self.handler = handler
        self.certificates = certificates or make_certificates()
        self.host = host
        self.port = port
        self.bytes_received = 0
        self.connections = 0
        self._context = server_context(self.certificates)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._open: set[_Connection] = set()

    def start(self) -> FastHttpsServer:
        """Listen, then serve from a new event loop in a daemon thread (callers may have a
        loop of their own running)."""
        loop = asyncio.new_event_loop()
        listener = socket.create_server((self.host, self.port), backlog=512)
        self.port = listener.getsockname()[1]
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="securetrade-sim-fast", daemon=True
        )
        self._thread.start()
        listening = loop.create_server(lambda: _Connection(self), sock=listener, ssl=self._context)
        self._server = asyncio.run_coroutine_threadsafe(listening, loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shut() -> None:
            self._server.close()
            for connection in list(self._open):
                connection.close()
            for _ in range(50):  # TLS says goodbye over a few loop turns: 0.5 s at most
                if not self._open:
                    break
                await asyncio.sleep(0.01)
            for connection in list(self._open):  # a peer that does not answer the goodbye
                connection.abort()
            for _ in range(50):
                if not self._open:
                    break
                await asyncio.sleep(0.01)
            await self._server.wait_closed()

        try:  # a loaded machine may take a while: the loop is closed whatever happens
            asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FastHttpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
