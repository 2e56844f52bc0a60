"""The HTTP layer under attack: answers no venue should send, and contexts no transport
should take. Every case runs over real TLS on 127.0.0.1 (tests/raw_server.py), through
each transport it concerns."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loops import NoReaderLoop
from raw_server import HOST, RawServer, Script, Stream
from securetrade.errors import InvalidRequest
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, TransportFailure
from securetrade.transport.http import HttpTransport
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


@pytest.mark.parametrize("kind", ["sync", "async", "async-streams"])
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
    assert "trailers over" in str(caught.value)


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
