"""Regression tests for the shared HTTP layer, named for the failures it fixed, end to end
through the simulator where a venue's answer decides an order's fate."""

from __future__ import annotations

import asyncio
import base64
import pickle
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loops import NoReaderLoop
from oracle import assert_oracle
from raw_server import HOST, Drip, RawServer, Script
from securetrade import AsyncClient, Client
from securetrade.core import IntentState, Journal
from securetrade.errors import InvalidRequest
from securetrade.keys import Secret
from securetrade.models import MarketOrder, OrderStatus
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, Timeout, TransportFailure
from securetrade.transport.http import HttpTransport
from securetrade.transport.proxy import Proxy
from securetrade.transport.tls import PinSet, pinned_ssl_context

MARKET = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
POST = {"method": "POST", "path": "/api/v3/order"}
ORDER = HttpRequest("POST", "/api/v3/order", (), b"symbol=ETHUSDT")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def _journaled(journal_path: Path, client_order_id: str) -> IntentState:
    journal = Journal(journal_path)
    try:
        intent = journal.get(client_order_id)
        assert intent is not None
        return intent.state
    finally:
        journal.close()


def test_a_103_early_hints_before_a_fill_is_journaled_filled_not_rejected(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    """A 103 used to be taken as the final answer: the FILLED order was journaled
    REJECTED and the caller got ``VenueRejected HTTP 103``."""
    journal_path = tmp_path / "journal.sqlite3"
    key = sim.create_key()
    sim.faults.inject("early_hints", **POST)
    with Client(key, journal=journal_path, **tls_options(server)) as client:
        placed = client.place_order(MARKET, idempotency_key="hints-sync")
    assert placed.status is OrderStatus.FILLED
    assert sim.faults.fired == [("early_hints", "POST", "/api/v3/order")]
    assert _journaled(journal_path, placed.client_order_id) is IntentState.FILLED
    journal = Journal(journal_path)
    try:
        assert_oracle(sim, journal, key.key_id, ["hints-sync"])
    finally:
        journal.close()


def test_a_103_early_hints_before_a_fill_is_journaled_filled_on_the_async_client(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    journal_path = tmp_path / "journal.sqlite3"
    key = sim.create_key()
    sim.faults.inject("early_hints", **POST)

    async def run() -> Any:
        async with AsyncClient(key, journal=journal_path, **tls_options(server)) as client:
            return await client.place_order(MARKET, idempotency_key="hints-async")

    placed = asyncio.run(run())
    assert placed.status is OrderStatus.FILLED
    assert sim.faults.fired == [("early_hints", "POST", "/api/v3/order")]
    assert _journaled(journal_path, placed.client_order_id) is IntentState.FILLED


# --- deadlines per phase ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return make_certificates()


@pytest.fixture(params=["sync", "async", "async-streams"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Driven:
    """Either transport behind one blocking surface (the async one on a private loop)."""

    def __init__(self, kind: str, base_url: str, certs: Certificates, **kwargs: Any) -> None:
        context = pinned_ssl_context(
            PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem
        )
        self.sync: HttpTransport | None = None
        self.inner: AsyncHttpTransport | None = None
        if kind == "sync":
            self.sync = HttpTransport(base_url, context, **kwargs)
        else:
            self.inner = AsyncHttpTransport(base_url, context, **kwargs)
        # After the transport: one refused at construction leaves no loop unclosed.
        self.loop = NoReaderLoop() if kind == "async-streams" else asyncio.new_event_loop()

    def send(self, request: HttpRequest = ORDER, **kwargs: Any) -> HttpResponse:
        if self.sync is not None:
            return self.sync.send(request, **kwargs)
        assert self.inner is not None
        return self.loop.run_until_complete(self.inner.send(request, **kwargs))

    def failure(self, request: HttpRequest = ORDER, **kwargs: Any) -> TransportFailure:
        with pytest.raises(TransportFailure) as caught:
            self.send(request, **kwargs)
        return caught.value

    def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.inner is not None:
            self.loop.run_until_complete(self.inner.aclose())
        self.loop.close()


@pytest.fixture
def drive(kind: str, certs: Certificates) -> Iterator[Callable[..., Driven]]:
    made: list[Driven] = []

    def build(base_url: str, **kwargs: Any) -> Driven:
        driven = Driven(kind, base_url, certs, **kwargs)
        made.append(driven)
        return driven

    yield build
    for driven in made:
        driven.close()


@pytest.fixture
def raw(certs: Certificates) -> Iterator[Callable[..., RawServer]]:
    started: list[RawServer] = []

    def start(script: Script = lambda index, head: [OK], **kwargs: Any) -> RawServer:
        server = RawServer(certs, script, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_a_name_lookup_that_hangs_is_cut_by_the_resolve_phase(
    drive: Callable[..., Driven], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Name resolution was unbounded: a stuck resolver held the caller indefinitely."""
    release = threading.Event()
    real = socket.getaddrinfo

    def stuck(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "venue.test":
            release.wait(10)
            raise socket.gaierror("released")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    client = drive("https://venue.test:443", timeout=Timeout(5.0, resolve=0.2))
    try:
        failure = client.failure()
    finally:
        release.set()
    assert failure.sent is False
    assert "resolve timed out" in str(failure)


def test_a_venue_that_never_accepts_is_cut_by_the_connect_phase(
    drive: Callable[..., Driven],
) -> None:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port)):  # fills the backlog: SYNs are dropped
            client = drive(f"https://{HOST}:{port}", timeout=Timeout(5.0, connect=0.3))
            failure = client.failure()
    assert failure.sent is False
    assert "connect timed out" in str(failure)


def test_a_server_that_never_handshakes_is_cut_by_the_tls_phase(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    server = raw(before_tls=[3.0])
    client = drive(server.base_url, timeout=Timeout(5.0, tls=0.3))
    failure = client.failure()
    assert failure.sent is False
    assert "tls timed out" in str(failure)


# Not "async-streams": asyncio's TLS hides the bytes it passed on, so that transport's
# write phase is bounded by its first_byte deadline instead (tested with the others).
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_that_never_reads_is_cut_by_the_write_phase(
    kind: str, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    server = raw(stall=5.0)
    client = drive(server.base_url, timeout=Timeout(30.0, write=0.3))
    big = HttpRequest("POST", "/upload", (), b"x" * (64 << 20))  # more than socket buffers
    failure = client.failure(big)
    assert failure.sent is True
    assert "write timed out" in str(failure)


def test_a_slow_first_byte_is_cut_by_its_phase_and_the_outcome_is_unknown(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    server = raw(lambda index, head: [1.5, OK])
    client = drive(server.base_url, timeout=Timeout(10.0, first_byte=0.3))
    failure = client.failure()
    assert failure.sent is True
    assert "first byte timed out" in str(failure)


def test_a_dripping_reply_is_cut_by_the_response_phase_whatever_each_read_takes(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """The sync path bounded each read, not the reply: a slow drip took 2.0 s at
    timeout=1.0 (here 4 s of drip against 0.5 s)."""
    server = raw(lambda index, head: [Drip(OK, 0.05)])
    client = drive(server.base_url, timeout=Timeout(10.0, response=0.5))
    failure = client.failure()
    assert failure.sent is True
    assert "response timed out" in str(failure)


def test_a_timeout_given_to_one_call_applies_to_that_call_only(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    server = raw(lambda index, head: [0.5, OK])
    client = drive(server.base_url, timeout=10.0)
    assert "first byte timed out" in str(client.failure(timeout=Timeout(10.0, first_byte=0.1)))
    assert client.send().status == 200  # the transport's own timeout again
    assert len(server.requests) == 2


def test_waiting_for_a_free_pooled_connection_is_cut_by_the_pool_phase(
    certs: Certificates, raw: Callable[..., RawServer]
) -> None:
    """Waiting for a free connection of the async pool was unbounded."""
    server = raw(lambda index, head: [1.0, OK])

    async def main() -> list[HttpResponse | BaseException]:
        transport = AsyncHttpTransport(
            server.base_url,
            pinned_ssl_context(PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem),
            timeout=Timeout(10.0, pool=0.2),
            max_connections=1,
        )
        try:
            return await asyncio.gather(
                transport.send(ORDER), transport.send(ORDER), return_exceptions=True
            )
        finally:
            await transport.aclose()

    first, second = asyncio.run(main())
    assert isinstance(first, HttpResponse)
    assert isinstance(second, TransportFailure)
    assert second.sent is False
    assert "no free connection" in str(second)
    assert len(server.requests) == 1


def test_a_pool_wait_that_times_out_or_is_cancelled_leaves_no_slot_taken(
    certs: Certificates, raw: Callable[..., RawServer]
) -> None:
    """The wait for a pooled connection is cut by a timer on the waiting task: neither a
    waiter whose pool phase ran out nor one cancelled from outside may keep a slot, so
    the next caller gets the connection once it is free."""
    server = raw(lambda index, head: [0.4, OK])

    async def main() -> tuple[object, object, object, HttpResponse]:
        transport = AsyncHttpTransport(
            server.base_url,
            pinned_ssl_context(PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem),
            timeout=Timeout(10.0, pool=5.0),
            max_connections=1,
        )
        try:
            holder = asyncio.ensure_future(transport.send(ORDER))
            await asyncio.sleep(0.05)
            timed_out = asyncio.ensure_future(
                transport.send(ORDER, timeout=Timeout(10.0, pool=0.1))
            )
            cancelled = asyncio.ensure_future(transport.send(ORDER))
            await asyncio.sleep(0.15)
            cancelled.cancel()
            outcomes = await asyncio.gather(holder, timed_out, cancelled, return_exceptions=True)
            after = await transport.send(ORDER, timeout=Timeout(10.0, pool=1.0))
            return (*outcomes, after)  # type: ignore[return-value]
        finally:
            await transport.aclose()

    held, timed_out, cancelled, after = asyncio.run(main())
    assert isinstance(held, HttpResponse)
    assert isinstance(timed_out, TransportFailure)
    assert timed_out.sent is False
    assert "no free connection" in str(timed_out)
    assert isinstance(cancelled, asyncio.CancelledError)
    assert after.status == 200
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "value",
    [0, -1, float("nan"), float("inf"), True, "5", 3601],
)
def test_a_timeout_that_is_not_a_positive_number_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="Timeout"):
        Timeout(value)
    with pytest.raises(InvalidRequest, match=r"Timeout\.connect"):
        Timeout(5.0, connect=value)


# --- proxies ------------------------------------------------------------------------------------

DENY = [b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"]


def _connect_head(proxy: RawServer) -> list[bytes]:
    assert len(proxy.requests) == 1
    return proxy.requests[0].split(b"\r\n")


def test_an_ipv6_venue_is_bracketed_in_the_connect_request(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """``CONNECT 2001:db8::1:8443`` left the port indistinguishable from the address."""
    proxy = raw(lambda index, head: DENY, tls=False)
    client = drive("https://[2001:db8::1]:8443", proxy=f"http://{HOST}:{proxy.port}")
    assert client.failure().sent is False
    head = _connect_head(proxy)
    assert head[0] == b"CONNECT [2001:db8::1]:8443 HTTP/1.1"
    assert b"Host: [2001:db8::1]:8443" in head


def test_proxy_credentials_go_on_the_wire_and_nowhere_else(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    proxy_server = raw(lambda index, head: DENY, tls=False)
    proxy = Proxy(f"http://trader:p%40ss-w0rd@{HOST}:{proxy_server.port}")
    shown = f"{proxy!r} {proxy!s} {proxy}"
    assert "p@ss-w0rd" not in shown
    token = base64.b64encode(b"trader:p@ss-w0rd")
    assert token.decode() not in shown
    with pytest.raises(TypeError):
        pickle.dumps(proxy)
    client = drive("https://venue.invalid", proxy=proxy)
    assert client.failure().sent is False
    assert b"Proxy-Authorization: Basic " + token in _connect_head(proxy_server)


def test_a_proxy_scheme_other_than_basic_can_be_given_as_a_secret(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """Proxy authentication used to be Basic only."""
    proxy_server = raw(lambda index, head: DENY, tls=False)
    proxy = Proxy(f"http://{HOST}:{proxy_server.port}", authorization=Secret("Bearer t0ken"))
    assert "t0ken" not in repr(proxy)
    client = drive("https://venue.invalid", proxy=proxy)
    assert client.failure().sent is False
    assert b"Proxy-Authorization: Bearer t0ken" in _connect_head(proxy_server)


@pytest.mark.parametrize(
    ("url", "authorization"),
    [
        ("http://u:p@127.0.0.1:3128", Secret("Bearer x")),  # two sets of credentials
        ("http://127.0.0.1:3128", Secret("Bearer x\r\nX-Injected: 1")),
        ("http://127.0.0.1:3128/path", None),
        ("http://127.0.0.1:port", None),
        ("https://127.0.0.1:3128", None),
    ],
    ids=["url-and-secret", "crlf", "path", "bad-port", "https-scheme"],
)
def test_a_proxy_that_cannot_be_used_as_given_is_refused(
    url: str, authorization: Secret | None
) -> None:
    with pytest.raises(InvalidRequest):
        Proxy(url, authorization=authorization)


def test_an_ipv6_proxy_address_is_understood() -> None:
    proxy = Proxy("http://[::1]:3128")
    assert (proxy.host, proxy.port) == ("::1", 3128)
    assert repr(proxy) == "Proxy(http://[::1]:3128)"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_client_takes_a_timeout_per_phase_and_its_transport_keeps_it(
    kind: str, certs: Certificates, raw: Callable[..., RawServer]
) -> None:
    """``Client(timeout=Timeout(...))``: a per-phase timeout reached the transports only
    when the caller built the transport by hand; the client took a plain number alone."""
    body = b'{"serverTime":1700000000000}'
    time_answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server = raw(lambda index, head: [0.6, time_answer] if index == 0 else [time_answer])
    options: dict[str, Any] = {
        "venue": "binance",
        "base_url": server.base_url,
        "pins": {HOST: [certs.leaf_pin, certs.ca_pin]},
        "cadata": certs.ca_pem,
        "timeout": Timeout(10.0, first_byte=0.2),
    }
    if kind == "sync":
        with Client(**options) as client:
            assert client.server_time() == 1700000000000  # the slow first answer was cut
    else:

        async def main() -> int:
            async with AsyncClient(**options) as client:
                return await client.server_time()

        assert asyncio.run(main()) == 1700000000000
    assert len(server.requests) >= 2  # cut by the first-byte phase, then read again
