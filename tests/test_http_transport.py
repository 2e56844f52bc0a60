"""Both HTTPS transports (blocking on http.client, asyncio on our own protocol) against a
scripted TLS server on loopback.

The server is a few lines of sockets written here, so each test can make it misbehave in
one precise way: close an idle keep-alive connection, cut a reply after its status line,
send a body with no framing, or answer in chunks. It counts the requests it received, so
"refused before sending" is checked on the wire, not taken on trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from loops import NoReaderLoop
from securetrade.errors import InvalidRequest
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, TransportFailure
from securetrade.transport.http import HttpTransport
from securetrade.transport.tls import PinSet, pinned_ssl_context

HOST = "127.0.0.1"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

#: What the server does with one request: (bytes to send back, close the connection after).
#: A list of byte strings is sent as separate writes, 50 ms apart (separate TLS records).
Script = Callable[[int, bytes], tuple[bytes | list[bytes], bool]]


def _keep_alive(index: int, head: bytes) -> tuple[bytes, bool]:
    return OK, False


@dataclass
class ScriptedServer:
    """A threaded TLS server that reads whole requests and answers per ``script``."""

    certs: Certificates
    script: Script = _keep_alive
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._key_files = _write_pem(self.certs)
        self._context.load_cert_chain(*self._key_files)
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = _content_length(head)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(head)
                reply, close = self.script(index, head)
                try:
                    for n, chunk in enumerate(reply if isinstance(reply, list) else [reply]):
                        if n:
                            time.sleep(0.05)
                        conn.sendall(chunk)
                except OSError:
                    return
                if close:
                    return

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _write_pem(certs: Certificates) -> tuple[str, str]:
    folder = tempfile.mkdtemp(prefix="st-http-")
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as out:
        out.write(certs.cert_pem)
    with open(key_path, "wb") as out:
        out.write(certs.key_pem)
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return make_certificates()


@pytest.fixture
def serve(certs: Certificates) -> Iterator[Callable[[Script], ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Script = _keep_alive) -> ScriptedServer:
        server = ScriptedServer(certs, script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class AsyncDriven:
    """The asyncio transport behind the blocking surface the tests use, on a private loop."""

    def __init__(self, inner: AsyncHttpTransport, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop

    def send(self, request: HttpRequest) -> HttpResponse:
        return self.loop.run_until_complete(self.inner.send(request))

    def send_many(self, requests: list[HttpRequest]) -> list[HttpResponse]:
        async def all_at_once() -> list[HttpResponse]:
            return list(await asyncio.gather(*(self.inner.send(r) for r in requests)))

        return self.loop.run_until_complete(all_at_once())

    def close(self) -> None:
        self.loop.run_until_complete(self.inner.aclose())

    def dispose(self) -> None:
        self.close()
        self.loop.close()


Driven = HttpTransport | AsyncDriven


@pytest.fixture(params=["sync", "async", "async-streams"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _context(certs: Certificates) -> ssl.SSLContext:
    return pinned_ssl_context(PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem)


def make(kind: str, base_url: str, certs: Certificates, **kwargs: Any) -> Driven:
    if kind == "sync":
        return HttpTransport(base_url, _context(certs), timeout=5.0, **kwargs)
    # The transport first: one refused at construction must not leave a loop unclosed.
    transport = AsyncHttpTransport(base_url, _context(certs), timeout=5.0, **kwargs)
    loop = NoReaderLoop() if kind == "async-streams" else asyncio.new_event_loop()
    return AsyncDriven(transport, loop)


@pytest.fixture
def transport(kind: str) -> Iterator[Callable[..., Driven]]:
    made: list[Driven] = []

    def build(server: ScriptedServer, certs: Certificates, **kwargs: Any) -> Driven:
        client = make(kind, server.base_url, certs, **kwargs)
        made.append(client)
        return client

    yield build
    for client in made:
        with contextlib.suppress(Exception):
            client.dispose() if isinstance(client, AsyncDriven) else client.close()


def test_connections_are_kept_alive(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    server = serve()
    client = transport(server, certs)
    for _ in range(5):
        assert client.send(HttpRequest("GET", "/x")).body == b"ok"
    client.close()
    assert len(server.requests) == 5
    assert server.connections == 1


def test_the_target_and_body_go_out_exactly_as_signed(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    server = serve()
    client = transport(server, certs)
    target = "/api/v3/order?symbol=BTC%2FUSDT&x=a+b&signature=ab%3D"
    client.send(HttpRequest("POST", target, (("X-Key", "k"),), b"q=1%2B1"))
    client.close()
    request_line = server.requests[0].split(b"\r\n")[0]
    assert request_line == f"POST {target} HTTP/1.1".encode()
    assert b"Content-Length: 7" in server.requests[0]


def test_a_connection_the_server_closed_while_idle_is_not_reused(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    # The server answers, then closes: the next request must go on a fresh connection and
    # succeed, not be written into the dead socket and come back "outcome unknown".
    server = serve(lambda index, head: (OK, True))
    client = transport(server, certs)
    first = client.send(HttpRequest("GET", "/x"))
    time.sleep(0.2)  # let the close arrive
    second = client.send(HttpRequest("GET", "/x"))
    client.close()
    assert first.status == second.status == 200
    assert len(server.requests) == 2
    assert server.connections == 2


def test_the_reuse_check_of_an_idle_connection_reads_nothing(
    serve: Callable[..., ScriptedServer], certs: Certificates
) -> None:
    """An idle TLS socket read ends in SSLWantReadError, raised and caught per request: the
    check polls the socket instead, and reads only when something arrived."""
    server = serve()
    client = make("async", server.base_url, certs)
    assert isinstance(client, AsyncDriven)
    try:
        client.send(HttpRequest("GET", "/x"))
        (connection,) = client.inner._idle
        reads: list[int] = []
        sock = connection.sock  # type: ignore[attr-defined]
        real_recv = sock.recv

        def counted(size: int) -> bytes:
            reads.append(size)
            return real_recv(size)  # type: ignore[no-any-return]

        sock.recv = counted
        assert connection.reusable()
        assert reads == []
        assert client.send(HttpRequest("GET", "/y")).body == b"ok"
        assert server.connections == 1
    finally:
        client.dispose()


def test_a_kept_connection_reads_each_reply_with_the_same_parser(
    serve: Callable[..., ScriptedServer], certs: Certificates
) -> None:
    """The async transport keeps a reusable connection's reader and parser for its next
    reply: each reply still reads whole and alone, whatever its framing."""
    replies = [
        OK,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
        OK,
    ]
    server = serve(lambda index, head: (replies[index], False))
    client = make("async", server.base_url, certs)
    assert isinstance(client, AsyncDriven)
    try:
        got = []
        parsers = set()
        for n in range(len(replies)):
            response = client.send(HttpRequest("GET", f"/{n}"))
            got.append((response.status, response.body, response.headers.get("x-a")))
            (connection,) = client.inner._idle
            parsers.add(id(connection._spare._parser))  # type: ignore[union-attr]
        assert got == [
            (200, b"ok", None),
            (200, b"abc", None),
            (204, b"", "1"),
            (201, b"new", None),
            (429, b"", None),
            (200, b"ok", None),
        ]
        assert server.connections == 1
        assert len(parsers) == 1
        connection.close()
        assert connection._spare is None  # released with the connection
    finally:
        client.dispose()


def test_bytes_after_a_whole_reply_keep_its_connection_out_of_the_pool(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    """Bytes the server sends after a whole reply, in a later TLS record (the async
    transport stops reading once a reply is whole), are no answer to the next request:
    that one goes on a fresh connection and gets its own reply."""
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nXX"
    server = serve(lambda index, head: ([OK, stray] if index == 0 else OK, False))
    client = transport(server, certs)
    first = client.send(HttpRequest("GET", "/x"))
    time.sleep(0.3)  # let the stray reply arrive
    second = client.send(HttpRequest("GET", "/y"))
    client.close()
    assert first.body == second.body == b"ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-type: ", id="cut-in-headers"),
        pytest.param(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{"a":', id="unframed"),
        pytest.param(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"a":', id="short-body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", id="cut-chunk"
        ),
        pytest.param(b"", id="nothing"),
    ],
)
def test_a_cut_reply_is_an_unknown_outcome_never_an_answer(
    serve: Callable[..., ScriptedServer],
    certs: Certificates,
    transport: Callable[..., Driven],
    reply: bytes,
) -> None:
    server = serve(lambda index, head: (reply, True))
    client = transport(server, certs)
    with pytest.raises(TransportFailure) as caught:
        client.send(HttpRequest("POST", "/api/v3/order", (), b"a=1"))
    client.close()
    assert caught.value.sent is True
    assert len(server.requests) == 1


@pytest.mark.parametrize("trailer", [b"", b"X-Checksum: 1\r\n"], ids=["plain", "trailer"])
def test_chunked_replies_are_read_whole(
    serve: Callable[..., ScriptedServer],
    certs: Certificates,
    transport: Callable[..., Driven],
    trailer: bytes,
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n"
        + trailer
        + b"\r\n"
    )
    server = serve(lambda index, head: (chunked, False))
    client = transport(server, certs)
    assert client.send(HttpRequest("GET", "/x")).body == b"abcde"
    assert client.send(HttpRequest("GET", "/x")).body == b"abcde"
    client.close()
    assert server.connections == 1


def test_repeated_headers_are_joined_and_names_lower_cased(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    reply = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
    server = serve(lambda index, head: (reply, False))
    client = transport(server, certs)
    response = client.send(HttpRequest("GET", "/x"))
    client.close()
    assert response.headers["x-a"] == "1, 2"


@pytest.mark.parametrize(
    "request_",
    [
        HttpRequest("GET", "/x", (("X-Evil", "a\r\nX-Injected: 1"),)),
        HttpRequest("GET", "/x\r\nX-Injected: 1"),
        HttpRequest("GET", "/x y"),
        HttpRequest("GE T", "/x"),
    ],
    ids=["header-crlf", "target-crlf", "target-space", "method-space"],
)
def test_header_or_target_injection_is_refused_before_sending(
    serve: Callable[..., ScriptedServer],
    certs: Certificates,
    transport: Callable[..., Driven],
    request_: HttpRequest,
) -> None:
    server = serve()
    client = transport(server, certs)
    with pytest.raises(InvalidRequest):
        client.send(request_)
    assert client.send(HttpRequest("GET", "/ok")).status == 200  # the transport still works
    client.close()
    assert [head.split(b"\r\n")[0] for head in server.requests] == [b"GET /ok HTTP/1.1"]


def test_concurrent_callers_share_one_transport_without_mixing_replies(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    def echo(index: int, head: bytes) -> tuple[bytes, bool]:
        path = head.split(b" ")[1]
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path), False

    server = serve(echo)
    client = transport(server, certs)
    mixed: list[str] = []

    def check(path: str, response: HttpResponse) -> None:
        if response.body.decode() != path:
            mixed.append(f"{path} got {response.body.decode()}")

    if isinstance(client, AsyncDriven):  # 200 tasks at once on one loop
        paths = [f"/t{n}" for n in range(200)]
        for path, response in zip(
            paths, client.send_many([HttpRequest("GET", p) for p in paths]), strict=True
        ):
            check(path, response)
    else:

        def worker(n: int) -> None:
            for i in range(25):
                path = f"/t{n}-{i}"
                check(path, client.send(HttpRequest("GET", path)))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    client.close()
    assert mixed == []
    assert len(server.requests) == 200
    assert server.connections <= 64  # the async pool's default ceiling; 8 threads use <= 8


def test_a_closed_transport_refuses_without_connecting(
    serve: Callable[..., ScriptedServer], certs: Certificates, transport: Callable[..., Driven]
) -> None:
    server = serve()
    client = transport(server, certs)
    client.close()
    with pytest.raises(TransportFailure) as caught:
        client.send(HttpRequest("GET", "/x"))
    assert caught.value.sent is False
    assert server.connections == 0


def test_connection_refused_is_not_sent(certs: Certificates, kind: str) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        client = make(kind, f"https://{HOST}:{port}", certs)
        with pytest.raises(TransportFailure) as caught:
            client.send(HttpRequest("GET", "/x"))
        if isinstance(client, AsyncDriven):
            client.dispose()
    assert caught.value.sent is False


@pytest.mark.parametrize(
    "proxy", ["https://127.0.0.1:8443", "socks5://127.0.0.1:1080", "http://:80"]
)
def test_only_http_connect_proxies_are_accepted(certs: Certificates, kind: str, proxy: str) -> None:
    with pytest.raises(InvalidRequest):
        make(kind, "https://127.0.0.1:1", certs, proxy=proxy)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_async_transport_survives_a_new_event_loop(
    serve: Callable[..., ScriptedServer], certs: Certificates
) -> None:
    """asyncio.run twice (a notebook, a script calling it per batch): the second loop gets
    a pool of its own instead of the first loop's dead connections. (The first loop ends
    without aclose(), so its connection is reported unclosed when collected: ignored.)"""
    server = serve()
    client = AsyncHttpTransport(server.base_url, _context(certs), timeout=5.0)

    async def once() -> int:
        return (await client.send(HttpRequest("GET", "/x"))).status

    assert asyncio.run(once()) == 200
    assert asyncio.run(once()) == 200
    asyncio.run(client.aclose())
    assert len(server.requests) == 2
    gc.collect()  # the abandoned connections are reported here, under this test's filters


@pytest.mark.parametrize("loop_kind", ["sockets", "streams"])
def test_async_phases_hold_on_a_reused_connection(
    serve: Callable[..., ScriptedServer], certs: Certificates, loop_kind: str
) -> None:
    """A finished exchange's timer is left to fire rather than cancelled: firing into the
    idle connection it leaves it open for the next request, and a later request with a
    shorter time than the pending timer's still fails within its own time."""

    def script(index: int, head: bytes) -> tuple[bytes, bool]:
        if index == 2:
            time.sleep(3.0)  # no answer in time; then the connection ends
            return b"", True
        return OK, False

    server = serve(script)
    client = AsyncHttpTransport(server.base_url, _context(certs), timeout=60.0)
    loop = NoReaderLoop() if loop_kind == "streams" else asyncio.new_event_loop()

    async def run() -> str:
        assert (await client.send(HttpRequest("GET", "/a"), timeout=0.2)).status == 200
        await asyncio.sleep(0.5)  # that exchange's timer fires into the idle connection
        assert (await client.send(HttpRequest("GET", "/b"))).status == 200  # timer: 60 s
        with pytest.raises(TransportFailure) as failed:
            await client.send(HttpRequest("GET", "/c"), timeout=0.3)
        return str(failed.value)

    try:
        message = loop.run_until_complete(run())
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    assert server.connections == 1  # /b reused the connection the stale timer left alone
    assert "timed out after 0.3 s" in message  # its own time, not the pending 60 s timer


def test_the_async_transport_reads_plain_http_replies_on_loopback(certs: Certificates) -> None:
    """Plain HTTP (loopback, when asked for): a plain socket has no TLS buffer to ask
    about once a reply is whole, and its connection is kept alive all the same."""
    listener = socket.create_server((HOST, 0))
    accepted: list[socket.socket] = []

    def serve_plain() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        buffer = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                _, _, buffer = buffer.partition(b"\r\n\r\n")
                conn.sendall(OK)

    threading.Thread(target=serve_plain, daemon=True).start()
    url = f"http://{HOST}:{listener.getsockname()[1]}"
    client = AsyncHttpTransport(url, _context(certs), timeout=5.0, unsafe_allow_plain_http=True)

    async def twice() -> list[bytes]:
        try:
            return [(await client.send(HttpRequest("GET", f"/{n}"))).body for n in range(2)]
        finally:
            await client.aclose()

    try:
        assert asyncio.run(twice()) == [b"ok", b"ok"]
        assert len(accepted) == 1  # one kept-alive connection for both
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
