"""The simulator on one asyncio loop (``Simulator.serve_fast``), as the throughput bench uses it.

Same exchange, other front end: these tests check that the front end answers what the
threaded one answers (orders over pinned TLS, from the sync and the async client), keeps
connections alive, handles pipelined requests, refuses malformed ones, and loses a
connection the way the ``drop`` and ``reset`` faults ask.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from decimal import Decimal

import pytest

from securetrade import AsyncClient, Client, LimitOrder, OrderStatus
from securetrade.sim import Simulator
from securetrade.sim.fast_server import FastHttpsServer

ORDER = LimitOrder(symbol="BTCUSDT", side="BUY", quantity=Decimal("0.001"), price=Decimal("70000"))


@pytest.fixture
def fast(sim: Simulator) -> FastHttpsServer:
    return sim.serve_fast()


def _tls(server: FastHttpsServer) -> ssl.SSLSocket:
    context = ssl.create_default_context(cadata=server.ca_pem)
    raw = socket.create_connection((server.host, server.port), timeout=5)
    return context.wrap_socket(raw, server_hostname=server.host)


def _read_all(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_sync_client_orders_over_pinned_tls(sim: Simulator, fast: FastHttpsServer) -> None:
    key = sim.create_key()
    with Client(key, base_url=fast.base_url, pins=fast.pins, cadata=fast.ca_pem) as client:
        placed = [client.place_order(ORDER, idempotency_key=f"fast-{i}") for i in range(5)]
    assert all(order.status is OrderStatus.FILLED for order in placed)
    assert sim.dialect.stats.by_path["POST /api/v3/order"] == 5
    assert fast.connections == 1  # kept alive


def test_async_client_orders_concurrently(sim: Simulator, fast: FastHttpsServer) -> None:
    key = sim.create_key()

    async def run() -> list[OrderStatus]:
        async with AsyncClient(
            key, base_url=fast.base_url, pins=fast.pins, cadata=fast.ca_pem
        ) as client:
            orders = await asyncio.gather(
                *(client.place_order(ORDER, idempotency_key=f"a-{i}") for i in range(40))
            )
        return [order.status for order in orders]

    assert asyncio.run(run()) == [OrderStatus.FILLED] * 40
    assert sim.dialect.stats.by_path["POST /api/v3/order"] == 40


def test_pipelined_requests_are_answered_in_order(fast: FastHttpsServer) -> None:
    with _tls(fast) as conn:
        conn.sendall(
            b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /api/v3/nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        replies = _read_all(conn)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", replies)
    assert statuses == [b"200", b"404", b"200"]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
    ],
    ids=["request-line", "header", "length", "chunked"],
)
def test_malformed_requests_are_refused_and_closed(
    fast: FastHttpsServer, request_bytes: bytes, status: bytes
) -> None:
    with _tls(fast) as conn:
        conn.sendall(request_bytes)
        reply = _read_all(conn)  # returns only because the server closed
    assert reply.split(b" ")[1] == status


@pytest.mark.parametrize("kind", ["drop_response", "reset"])
def test_lost_responses_close_the_connection(
    sim: Simulator, fast: FastHttpsServer, kind: str
) -> None:
    sim.faults.inject(kind, method="GET", path="/api/v3/time")
    with _tls(fast) as conn:
        conn.sendall(b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _read_all(conn)
    assert b"\r\n\r\n" not in reply  # never a whole response
    assert sim.dialect.stats.by_path["GET /api/v3/time"] == 1


def test_stop_closes_open_connections(sim: Simulator) -> None:
    server = FastHttpsServer(sim.handle).start()
    conn = _tls(server)
    conn.sendall(b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    server.stop()
    assert _read_all(conn) == b""
    conn.close()
