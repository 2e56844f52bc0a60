"""The simulator as a real HTTPS server on loopback, counting every byte it receives.

A thread per connection, HTTP/1.1 keep-alive, TLS from freshly generated certificates.
``bytes_received`` counts application bytes only (after the handshake), which is how the
tests prove that a pinned-out client sent nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import InvalidRequest
from .binance import SimResponse
from .certs import Certificates, make_certificates

__all__ = ["HttpsServer", "Served", "server_context"]

Handler = Callable[[str, str, dict[str, str], bytes, str], SimResponse]


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_received = 0
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        self.connections = 0


class _CountingReader:
    """Wraps the connection's read file and counts what it yields."""

    def __init__(self, inner: Any, counters: _Counters) -> None:
        self._inner = inner
        self._counters = counters

    def _count(self, data: bytes) -> bytes:
        with self._counters.lock:
            self._counters.bytes_received += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        return self._count(self._inner.readline(limit))

    def read(self, size: int = -1) -> bytes:
        return self._count(self._inner.read(size))

    def close(self) -> None:
        self._inner.close()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body go out in two writes
    server: _Server

    def setup(self) -> None:
        counters = self.server.counters
        with counters.lock:
            counters.connections += 1
        if self.server.tls is not None:
            try:
                self.request = self.server.tls.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                with counters.lock:
                    counters.handshakes_failed += 1
                raise
            with counters.lock:
                counters.handshakes_ok += 1
        with counters.lock:
            self.server.open.add(self.request)
        super().setup()
        self.rfile = _CountingReader(self.rfile, counters)  # type: ignore[assignment]

    def finish(self) -> None:
        with self.server.counters.lock:
            self.server.open.discard(self.request)
        super().finish()
        if self.server.tls is not None:
            self.request.close()  # the TLS socket: socketserver only closes the one it accepted

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.handler(
            self.command, self.path, headers, body, self.client_address[0]
        )
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return
        if response.reset:
            # Half a response (status line and some headers), then an RST: SO_LINGER 0
            # makes close() abort the connection instead of finishing it.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.write(f"HTTP/1.1 {response.status} OK\r\ncontent-type: ".encode())
                self.wfile.flush()
                self.request.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.request.close()
            return
        if response.early_hints:
            self.wfile.write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </static/app.css>; rel=preload\r\n\r\n"
            )
            self.wfile.flush()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake is expected (pinning tests); it is counted, not printed."""

    def __init__(self, address: tuple[str, int], handler: Handler, tls: ssl.SSLContext | None):
        self.handler = handler
        self.tls = tls
        self.counters = _Counters()
        self.open: set[socket.socket] = set()  # the client connections being served
        super().__init__(address, _RequestHandler)


def server_context(certificates: Certificates) -> ssl.SSLContext:
    """The server side of the simulator's TLS: TLS 1.2 or newer, the given chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(certificates.cert_pem + certificates.key_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


class Served:
    """What a client needs to reach a simulator server: its URL, pins and CA."""

    host: str
    port: int
    certificates: Certificates

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def pins(self) -> dict[str, list[str]]:
        """Pins for a client: the leaf key, and the CA key as the backup."""
        return {self.host: [self.certificates.leaf_pin, self.certificates.ca_pin]}

    @property
    def ca_pem(self) -> str:
        return self.certificates.ca_pem


class HttpsServer(Served):
    """Serves ``handler`` over HTTPS on 127.0.0.1 (a free port unless one is given)."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        certificates: Certificates | None = None,
    ) -> None:
        if not callable(handler):
            raise InvalidRequest("HttpsServer needs a handler: a function(request) -> response")
        self.certificates = certificates or make_certificates()
        self._server = _Server((host, port), handler, server_context(self.certificates))
        self.host = host
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def bytes_received(self) -> int:
        """Bytes read from clients so far (tests check that nothing reached the venue)."""
        return self._server.counters.bytes_received

    @property
    def handshakes(self) -> tuple[int, int]:
        """(completed, failed) TLS handshakes."""
        c = self._server.counters
        return c.handshakes_ok, c.handshakes_failed

    def drop_connections(self) -> None:
        """Close every client connection now (a load balancer dropping idle keep-alives):
        the client's next request opens a new connection, with a new handshake."""
        with self._server.counters.lock:
            connections = list(self._server.open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def impersonate(self, certificates: Certificates) -> None:
        """Answer every new handshake with ``certificates`` from now on: somebody between
        the client and the venue, with a chain of their own (the pins tests)."""
        if not isinstance(certificates, Certificates):
            raise InvalidRequest(
                "certificates must be sim.certs.Certificates (make_certificates())"
            )
        self._server.tls = server_context(certificates)

    def start(self) -> HttpsServer:
        """Serve in a background thread; returns the server."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="securetrade-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
