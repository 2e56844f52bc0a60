"""The HTTP layer under attack: answers no venue should send, and contexts no transport
should take. Every case runs over real TLS on 127.0.0.1 (tests/raw_server.py), through
each transport it concerns."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loops import NoReaderLoop
from raw_server import HOST, RawServer, Script, Stream
from securetrade import Client
from securetrade.errors import InvalidRequest
from securetrade.sim import Simulator
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.transport import proxy as proxy_module
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, Timeout, TransportFailure
from securetrade.transport.http import HttpTransport
from securetrade.transport.proxy import Proxy
from securetrade.transport.tls import PinSet, pinned_ssl_context, verified_ssl_context
from securetrade.transport.via_httpx import AsyncHttpxTransport, HttpxTransport

ORDER = HttpRequest("POST", "/api/v3/order", (), b"symbol=ETHUSDT")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
KINDS = ["sync", "async", "async-streams", "httpx-sync", "httpx-async"]


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return make_certificates()


def _pinned(certs: Certificates) -> ssl.SSLContext:
    return pinned_ssl_context(PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem)


class Driven:
    """Any transport behind one blocking surface (the async ones on a private loop)."""

    def __init__(self, kind: str, base_url: str, context: Any, **kwargs: Any) -> None:
        self.kind = kind
        self.loop: asyncio.AbstractEventLoop | None = None
        self.transport: Any
        if kind == "sync":
            self.transport = HttpTransport(base_url, context, **kwargs)
        elif kind == "httpx-sync":
            self.transport = HttpxTransport(base_url, context, **kwargs)
        else:
            make = AsyncHttpxTransport if kind == "httpx-async" else AsyncHttpTransport
            self.transport = make(base_url, context, **kwargs)
            self.loop = NoReaderLoop() if kind == "async-streams" else asyncio.new_event_loop()

    def send(self, request: HttpRequest = ORDER) -> HttpResponse:
        if self.loop is None:
            return self.transport.send(request)  # type: ignore[no-any-return]
        return self.loop.run_until_complete(self.transport.send(request))  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.loop is None:
            self.transport.close()
            return
        self.loop.run_until_complete(self.transport.aclose())
        self.loop.close()


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


@pytest.fixture
def drive(certs: Certificates) -> Iterator[Callable[..., Driven]]:
    made: list[Driven] = []

    def build(kind: str, base_url: str, context: Any = None, **kwargs: Any) -> Driven:
        driven = Driven(
            kind, base_url, context if context is not None else _pinned(certs), **kwargs
        )
        made.append(driven)
        return driven

    yield build
    for driven in made:
        driven.close()


# --- chunked trailers ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_endless_trailer_after_the_last_chunk_is_refused_within_the_head_limit(
    kind: str, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """After the last chunk, a trailer line that never ends: llhttp holds a header line
    whole until it ends, so this grew the process's memory for as long as the venue
    sent (64 MiB here) and only the deadline ended it. It is refused once the trailer
    section passes the head limit, a typed, ambiguous failure."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: "
    server = raw(lambda index, seen: [Stream(head, b"a" * 65536, 64 * 1024 * 1024)])
    client = drive(kind, server.base_url, timeout=20.0)
    with pytest.raises(TransportFailure) as caught:
        client.send()
    assert caught.value.sent is True
    # h11 (httpx) bounds an incomplete line itself (100 KiB), in its own words.
    assert "trailers over" in str(caught.value) or kind.startswith("httpx")
    assert "timed out" not in str(caught.value)


def test_a_reply_with_trailers_of_fair_size_is_still_read(
    drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """Control: trailers are allowed; only their size is bounded."""
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Checksum: abc\r\nX-Other: " + b"b" * 1000 + b"\r\n\r\n"
    )
    server = raw(lambda index, seen: [reply])
    client = drive("sync", server.base_url)
    assert client.send().body == b"{}"
    assert client.send().body == b"{}"  # and the connection is reused for the next
    assert server.connections == 1


# --- the TLS context every transport takes ---------------------------------------------------


def _unverified(certs: Certificates) -> ssl.SSLContext:
    context = _pinned(certs)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _unhooked(certs: Certificates) -> ssl.SSLContext:
    context = _pinned(certs)
    context.sslsocket_class = ssl.SSLSocket
    context.sslobject_class = ssl.SSLObject
    return context


def _foreign(certs: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=certs.ca_pem)


def _old_tls(certs: Certificates) -> ssl.SSLContext:
    context = _pinned(certs)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


WEAK = {"unverified": _unverified, "unhooked": _unhooked, "foreign": _foreign, "old-tls": _old_tls}


@pytest.mark.parametrize("weakness", sorted(WEAK))
@pytest.mark.parametrize("kind", KINDS)
def test_a_weak_context_is_refused_by_every_transport_when_it_is_built(
    kind: str, weakness: str, certs: Certificates, raw: Callable[..., RawServer]
) -> None:
    """A context without verification, with its pin check unhooked, made outside
    securetrade (which trusts ``SSL_CERT_FILE``) or allowing TLS 1.0: each used to be
    taken by the transports as given (the unverified and unhooked ones then sent a
    signed order to whoever answered). Now refused when the transport is built."""
    server = raw()
    with pytest.raises(InvalidRequest):
        Driven(kind, server.base_url, WEAK[weakness](certs))
    assert server.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_context_weakened_after_the_transport_was_built_sends_nothing(
    kind: str, certs: Certificates, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """The context is checked again before each new connection (httpx: each request):
    turning verification off after the transport took it does not let a request out."""
    server = raw(
        lambda index, seen: [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"]
    )
    context = _pinned(certs)
    client = drive(kind, server.base_url, context)
    assert client.send().status == 200
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(InvalidRequest):
        client.send()
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_securetrade_contexts_pinned_or_verified_are_taken(
    kind: str, certs: Certificates, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """Control: the contexts securetrade makes pass the check and carry requests."""
    server = raw()
    assert drive(kind, server.base_url, _pinned(certs)).send().status == 200
    verified = drive(kind, server.base_url, verified_ssl_context(cadata=certs.ca_pem))
    assert verified.send().status == 200


# --- proxies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["httpx-sync", "httpx-async"])
def test_httpx_behind_a_proxy_refuses_an_ipv6_venue_it_would_connect_unbracketed(
    kind: str, certs: Certificates, raw: Callable[..., RawServer]
) -> None:
    """httpcore wrote ``CONNECT 2001:db8::1:8443``: the proxy cannot tell the port from
    the address. The httpx transports now refuse that combination when built (the
    default transports bracket it: test_http_layer)."""
    proxy = raw(lambda index, seen: [b"HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n"], tls=False)
    with pytest.raises(InvalidRequest):
        Driven(
            kind, "https://[2001:db8::1]:8443", _pinned(certs), proxy=f"http://{HOST}:{proxy.port}"
        )
    assert proxy.requests == []


@pytest.mark.parametrize("kind", ["httpx-sync", "httpx-async"])
def test_httpx_reaches_a_proxy_given_as_an_ipv6_literal(kind: str, certs: Certificates) -> None:
    """Control for the refusal above: an IPv6 *proxy* literal works through httpx (its
    CONNECT names the venue by host name, with the credentials)."""
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    seen: list[bytes] = []

    def answer() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        client = Driven(
            kind,
            "https://venue.invalid",
            _pinned(certs),
            proxy=f"http://u:pw@[::1]:{port}",
            timeout=5.0,
        )
        try:
            with pytest.raises(TransportFailure) as caught:
                client.send()
        finally:
            client.close()
    finally:
        thread.join(5)
        listener.close()
    assert caught.value.sent is False
    assert seen
    assert seen[0].startswith(b"CONNECT venue.invalid:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic dTpwdw==" in seen[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1:3128",
        "http://[zz]:3128",
        "http://u:\ud800@127.0.0.1:3128",
        "http://127.0.0.1:0",
    ],
    ids=["unclosed-ipv6", "invalid-ipv6", "surrogate-password", "port-0"],
)
def test_a_malformed_proxy_url_is_a_typed_refusal(url: str) -> None:
    """These raised ValueError or UnicodeEncodeError from urllib (or, port 0, quietly
    became port 8080, a proxy nobody named)."""
    with pytest.raises(InvalidRequest):
        Proxy(url)


def _frames_holding(exc: BaseException, needle: str, skip: Any) -> list[str]:
    """The functions in ``exc``'s tracebacks (its context and cause too) with a local
    whose repr shows ``needle``; the frame ``skip`` (the test's own) left out."""
    found: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__context__, current.__cause__]
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame is not skip:
                for name, value in frame.f_locals.items():
                    with contextlib.suppress(Exception):
                        if needle in repr(value):
                            found.append(f"{frame.f_code.co_name}:{name}")
            tb = tb.tb_next
    return found


@pytest.mark.parametrize("where", ["malformed-proxy", "later-failure"])
def test_a_client_refusal_carries_no_frame_holding_the_proxy_password(
    where: str, sim: Simulator
) -> None:
    """The proxy URL was kept as plain text in the client's constructor frames (and the
    parser's): a traceback with locals (a crash reporter, a debugger) showed the proxy
    password. It is a Proxy, its credentials a Secret, from the first line on."""
    password = "pw-" + secrets.token_hex(8)
    if where == "malformed-proxy":
        proxy, pins = f"http://trader:{password}@[::1:3128", {HOST: ["sha256/x"]}
    else:
        proxy, pins = f"http://trader:{password}@{HOST}:3128", {HOST: ["sha256/not-base64!"]}
    with pytest.raises(InvalidRequest) as caught:
        Client(sim.create_key(), journal=":memory:", pins=pins, proxy=proxy)
    assert password not in str(caught.value)
    here = sys._getframe()
    assert _frames_holding(caught.value, password, here) == []


def test_a_proxy_password_never_enters_urllibs_process_wide_cache(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``urlsplit`` keeps every URL it splits in an ``lru_cache``: the proxy URL, password
    and all, stayed in the process after the client was built (seen by
    ``gc.get_referrers`` as the cache's key). The credentials are split off first."""
    password = "pw-" + secrets.token_hex(8)
    split: list[str] = []
    real = proxy_module.urlsplit

    def spy(url: str, *args: Any, **kwargs: Any) -> Any:
        split.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(proxy_module, "urlsplit", spy)
    server = sim.serve()
    try:
        client = Client(
            sim.create_key(),
            journal=":memory:",
            pins=server.pins,
            cadata=server.ca_pem,
            base_url=server.base_url,
            proxy=f"http://trader:{password}@{HOST}:3128",
        )
        client.close()
    finally:
        server.stop()
    assert split == [f"http://{HOST}:3128"]
    assert password not in repr(client)


@pytest.mark.parametrize(
    ("url", "user", "password", "host", "port"),
    [
        ("http://u:p@h:1", "u", "p", "h", 1),
        ("http://u%40x:p%3Aq@[::1]:3128", "u@x", "p:q", "::1", 3128),
        ("http://a@b:c@h:2/", "a@b", "c", "h", 2),  # the last @ ends the user info
        ("http://u@h", "u", "", "h", 8080),
        ("http://h:3", None, None, "h", 3),
    ],
)
def test_a_proxy_url_is_read_as_urllib_reads_it(
    url: str, user: str | None, password: str | None, host: str, port: int
) -> None:
    """Control for the split above: the same host, port and credentials as urllib."""
    proxy = Proxy(url)
    assert (proxy.host, proxy.port) == (host, port)
    headers = proxy.connect_headers()
    if user is None:
        assert headers == {}
    else:
        token = base64.b64encode(f"{user}:{password}".encode())
        assert headers == {b"Proxy-Authorization": b"Basic " + token}


# --- answers that are no HTTP status ---------------------------------------------------------


@pytest.mark.parametrize("status", [b"000", b"099", b"600", b"999"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_final_status_outside_200_to_599_is_an_unreadable_answer(
    kind: str, status: bytes, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """The parsers take any three digits: ``HTTP/1.1 000`` came back to the venue layer
    as an answer with status 0 (neither success, refusal nor server error). It is now an
    unreadable answer to a request that went out: ambiguous, and the connection closed."""
    reply = b"HTTP/1.1 " + status + b" X\r\nContent-Length: 2\r\n\r\n{}"
    server = raw(lambda index, seen: [reply] if index == 0 else [OK])
    client = drive(kind, server.base_url)
    with pytest.raises(TransportFailure) as caught:
        client.send()
    assert caught.value.sent is True
    assert client.send().status == 200
    assert server.connections == 2


# --- a kept-alive connection that speaks out of turn -----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_reply_the_venue_sends_between_requests_is_never_the_next_answer(
    kind: str, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """After a whole reply, the idle kept-alive connection receives a second, unasked
    reply (a stale answer, a desynchronised front end). The next request must get its
    own answer, from a fresh connection, never that one. (A guard: every transport
    holds today, h11's included through httpcore's readable-when-idle check.)"""
    stale = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"old":1}'
    fresh = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"new":1}'
    server = raw(lambda index, seen: [OK, 0.1, stale] if index == 0 else [fresh])
    client = drive(kind, server.base_url)
    assert client.send().body == b"{}"
    time.sleep(0.4)  # the stale reply has arrived in the idle connection's buffer
    assert client.send().body == b'{"new":1}'
    assert server.connections == 2


# --- base URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://\u4f8b\u3048.jp",
        "https://venue.example\r\nX-Injected: 1",
        "https://venue.example/\x00",
        "https://a b.example",
        "https://[::1",
        "https://venue.example:99999",
        "https://venue.example:0",
        "https://",
        "https://trader:p4ss-w0rd@venue.example",
        "https://venue.example/?q=1",
        "https://venue.example/#f",
    ],
    ids=[
        "non-ascii-host",
        "crlf",
        "nul",
        "space",
        "unclosed-ipv6",
        "port-too-big",
        "port-0",
        "no-host",
        "credentials",
        "query",
        "fragment",
    ],
)
@pytest.mark.parametrize("kind", ["sync", "async", "httpx-sync"])
def test_a_base_url_that_is_not_plain_is_refused_when_the_transport_is_built(
    kind: str, url: str, certs: Certificates
) -> None:
    """These reached the socket layer: a ValueError from urllib (port, IPv6), a
    UnicodeEncodeError writing the Host header, a name lookup of ``a b.example``; a
    user and password were quietly dropped (and echoed in the refusal of a plain-http
    URL). Now each is InvalidRequest before anything is opened, naming no credentials."""
    with pytest.raises(InvalidRequest) as caught:
        Driven(kind, url, _pinned(certs))
    assert "p4ss" not in str(caught.value)


def test_plain_base_urls_are_still_taken(certs: Certificates) -> None:
    """Control: host names (underscores and xn-- forms included), addresses, ports,
    paths."""
    for url in (
        "https://api.binance.com",
        "https://xn--r8jz45g.jp/v1",
        "https://my_host.internal:8443/api/",
        "https://127.0.0.1:8443",
        "https://[2001:db8::1]/v3",
    ):
        HttpTransport(url, _pinned(certs)).close()


# --- headers that would frame the request twice ----------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "0"),
        ("Host", "other.example"),
        ("Connection", "Upgrade"),
        ("Expect", "100-continue"),
    ],
    ids=["transfer-encoding", "content-length", "host", "connection", "expect"],
)
@pytest.mark.parametrize("kind", ["sync", "async", "httpx-sync"])
def test_a_request_header_that_frames_the_request_is_refused_before_sending(
    kind: str,
    header: tuple[str, str],
    drive: Callable[..., Driven],
    raw: Callable[..., RawServer],
) -> None:
    """A ``Transfer-Encoding: chunked`` next to the Content-Length the transport writes
    (or a second Content-Length or Host) was written as given: a front end and the venue
    could read the body differently, the classic request-smuggling split. Refused with
    InvalidRequest, and no byte reaches the server."""
    server = raw()
    client = drive(kind, server.base_url)
    request = HttpRequest("POST", "/api/v3/order", (header,), b"symbol=ETHUSDT")
    with pytest.raises(InvalidRequest):
        client.send(request)
    assert server.requests == []


# --- arguments of the wrong kind -------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        HttpRequest("POST", "/api/v3/order", (), "a str body"),  # type: ignore[arg-type]
        HttpRequest("POST", "/api/v3/order", (("X-A", 5),), b""),  # type: ignore[arg-type]
        HttpRequest("POST", "/api/v3/order", (("X-A", "b", "c"),), b""),  # type: ignore[arg-type]
        HttpRequest(b"POST", "/api/v3/order", (), b""),  # type: ignore[arg-type]
        HttpRequest("POST", None, (), b""),  # type: ignore[arg-type]
    ],
    ids=["str-body", "int-header", "triple-header", "bytes-method", "no-target"],
)
@pytest.mark.parametrize("kind", ["sync", "async", "httpx-sync"])
def test_a_request_of_the_wrong_kind_is_a_typed_refusal(
    kind: str, request_: HttpRequest, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """These raised TypeError or ValueError from the request checks or the encoder."""
    server = raw()
    client = drive(kind, server.base_url)
    with pytest.raises(InvalidRequest):
        client.send(request_)
    assert server.requests == []


@pytest.mark.parametrize("kind", ["sync", "async", "httpx-sync"])
def test_limits_of_the_wrong_kind_are_refused_when_the_transport_is_built(
    kind: str, certs: Certificates
) -> None:
    """The default transports took ``limits="x"`` and failed at the first reply, after
    the request had gone out."""
    with pytest.raises(InvalidRequest):
        Driven(kind, "https://venue.example", _pinned(certs), limits="x")


@pytest.mark.parametrize("seconds", [10**400, -(10**400)])
def test_a_timeout_too_large_for_a_float_is_a_typed_refusal(seconds: int, sim: Simulator) -> None:
    """``math.isfinite(10**400)`` raised OverflowError, from Timeout and from the
    client's own argument check."""
    with pytest.raises(InvalidRequest):
        Timeout.coerce(seconds)
    with pytest.raises(InvalidRequest):
        Client(sim.create_key(), journal=":memory:", unsafe_disable_pinning=True, timeout=seconds)


@pytest.mark.parametrize("kind", ["httpx-sync", "httpx-async"])
def test_an_httpx_transport_keeps_no_readable_proxy_credentials(
    kind: str, certs: Certificates
) -> None:
    """The httpx transports kept the settings they opened httpx with, ``httpx.Proxy``
    included, whose repr shows ``Proxy-Authorization: Basic ...`` in clear: any repr of
    the transport's state (a debugger, a crash reporter's locals) showed the proxy
    password, base64 being no cover."""
    password = "pw-" + secrets.token_hex(8)
    token = base64.b64encode(f"trader:{password}".encode()).decode()
    driven = Driven(
        kind, "https://venue.example", _pinned(certs), proxy=f"http://trader:{password}@{HOST}:3128"
    )
    try:
        shown = repr(vars(driven.transport))
        assert token not in shown
        assert password not in shown
    finally:
        driven.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_reply_that_comes_after_its_request_timed_out_is_never_the_next_answer(
    kind: str, drive: Callable[..., Driven], raw: Callable[..., RawServer]
) -> None:
    """Request 1 times out waiting for its reply (ambiguous), which arrives late; request
    2 must be answered on a new connection by its own reply, never by the late one. (A
    guard: every transport closes a connection a timeout interrupted.)"""
    late = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"old":1}'
    fresh = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"new":1}'
    server = raw(lambda index, seen: [0.6, late] if index == 0 else [fresh])
    client = drive(kind, server.base_url, timeout=0.3)
    with pytest.raises(TransportFailure) as caught:
        client.send()
    assert caught.value.sent is True
    time.sleep(0.5)  # the late reply is sent meanwhile
    assert client.send().body == b'{"new":1}'
    assert server.connections == 2
