"""The conformance corpus: every transport against the same raw replies, byte for byte.

Each case is what a server (or a proxy, or whatever sits in between) sends, and the class
of outcome a caller must get: the answer, a :class:`TransportFailure` with ``sent=False``
(nothing was written: safe to resend), or one with ``sent=True`` (the venue may have the
request: ambiguous, the idempotency layer asks). Nothing else may escape, and no case
may hold more memory than the limits allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from loops import NoReaderLoop
from raw_server import HOST, Drip, RawServer, Script, Step, Stream
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, TransportFailure
from securetrade.transport.http import HttpTransport
from securetrade.transport.tls import PinSet, pinned_ssl_context
from securetrade.transport.via_httpx import AsyncHttpxTransport, HttpxTransport
from securetrade.transport.wire import Limits

ORDER = HttpRequest("POST", "/api/v3/order", (("X-MBX-APIKEY", "k"),), b"symbol=BTCUSDT&side=BUY")
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
ANSWER = "answer"
AMBIGUOUS = "ambiguous"  # TransportFailure(sent=True)
NOT_SENT = "not sent"  # TransportFailure(sent=False)


def _reply(head: bytes, body: bytes = b"") -> bytes:
    return head + b"\r\n\r\n" + body


def _chunked(body: bytes) -> bytes:
    return _reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", body)


@dataclass(frozen=True)
class Case:
    name: str
    steps: Sequence[Step]
    expect: str
    body: bytes = b'{"ok":true}'
    status: int = 200


# One request each. "answer" cases must give ``status`` and ``body``.
CASES = [
    Case("content-length", [OK], ANSWER),
    Case("no-reason-phrase", [b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n{}"], ANSWER, b"{}"),
    Case("103-early-hints", [_reply(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>"), OK], ANSWER),
    Case("100-continue", [_reply(b"HTTP/1.1 100 Continue"), OK], ANSWER),
    Case(
        "1xx-in-separate-writes",
        [
            _reply(b"HTTP/1.1 103 Early Hints\r\nLink: </a>"),
            0.05,
            b"HTTP/1.1 102 Pro",
            0.05,
            b"cessing\r\n\r\n",
            0.05,
            OK,
        ],
        ANSWER,
    ),
    Case("101-switching", [_reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c")], AMBIGUOUS),
    Case("204-no-body", [_reply(b"HTTP/1.1 204 No Content")], ANSWER, b"", 204),
    Case("chunked", [_chunked(b'3\r\n{"o\r\n8\r\nk":true}\r\n0\r\n\r\n')], ANSWER),
    Case("chunked-ext", [_chunked(b'b;name=v\r\n{"ok":true}\r\n0\r\n\r\n')], ANSWER),
    Case("chunked-trailer", [_chunked(b'b\r\n{"ok":true}\r\n0\r\nX-Sum: 1\r\n\r\n')], ANSWER),
    Case("chunked-upper-hex", [_chunked(b'B\r\n{"ok":true}\r\n0\r\n\r\n')], ANSWER),
    Case("chunk-size-0x", [_chunked(b'0xb\r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-size-plus", [_chunked(b'+b\r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-size-underscore", [_chunked(b'0_b\r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-size-space", [_chunked(b'b \r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-size-negative", [_chunked(b'-b\r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-size-overflow", [_chunked(b"1" * 20 + b"\r\nab")], AMBIGUOUS),
    Case("chunk-without-crlf", [_chunked(b'b\r\n{"ok":true}XX0\r\n\r\n')], AMBIGUOUS),
    Case("chunk-longer-than-size", [_chunked(b'2\r\n{"ok":true}\r\n0\r\n\r\n')], AMBIGUOUS),
    Case("chunked-cut-before-last", [_chunked(b'b\r\n{"ok":true}\r\n'), "close"], AMBIGUOUS),
    Case(
        "te-chunked-substring",
        [_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked", b"{}"), "close"],
        AMBIGUOUS,
    ),
    Case(
        "te-gzip-chunked",
        [_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked", b"2\r\n{}\r\n0\r\n\r\n")],
        AMBIGUOUS,
    ),
    Case(
        "content-length-and-chunked",
        [
            _reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked",
                b"2\r\n{}\r\n0\r\n\r\n",
            )
        ],
        AMBIGUOUS,
    ),
    Case(
        "duplicate-content-length",
        [_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2", b"{}")],
        AMBIGUOUS,
    ),
    Case(
        "content-length-list",
        [_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2", b"{}")],
        AMBIGUOUS,
    ),
    Case(
        "content-length-superscript",
        [_reply("HTTP/1.1 200 OK\r\nContent-Length: \u00b2".encode("latin-1"), b"{}")],
        AMBIGUOUS,
    ),
    Case(
        "content-length-plus", [_reply(b"HTTP/1.1 200 OK\r\nContent-Length: +2", b"{}")], AMBIGUOUS
    ),
    Case(
        "status-superscript",
        [_reply("HTTP/1.1 2\u00b20 OK\r\nContent-Length: 2".encode("latin-1"), b"{}")],
        AMBIGUOUS,
    ),
    Case(
        "status-four-digits", [_reply(b"HTTP/1.1 2000 OK\r\nContent-Length: 2", b"{}")], AMBIGUOUS
    ),
    Case("status-two-digits", [_reply(b"HTTP/1.1 20 OK\r\nContent-Length: 2", b"{}")], AMBIGUOUS),
    Case("version-1.9", [_reply(b"HTTP/1.9 200 OK\r\nContent-Length: 2", b"{}")], AMBIGUOUS),
    Case("version-2.0", [_reply(b"HTTP/2.0 200 OK\r\nContent-Length: 2", b"{}")], AMBIGUOUS),
    Case("not-http", [b"SSH-2.0-OpenSSH_9.6\r\n", "close"], AMBIGUOUS),
    Case(
        "space-before-colon", [_reply(b"HTTP/1.1 200 OK\r\nContent-Length : 2", b"{}")], AMBIGUOUS
    ),
    Case(
        "obs-fold",
        [_reply(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2", b"{}")],
        AMBIGUOUS,
    ),
    Case("bare-lf", [b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}"], AMBIGUOUS),
    Case(
        "nul-in-header",
        [_reply(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2", b"{}")],
        AMBIGUOUS,
    ),
    Case(
        "unframed",
        [_reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain", b"{}"), "close"],
        AMBIGUOUS,
    ),
    Case("http-1.0-unframed", [b"HTTP/1.0 200 OK\r\n\r\n{}", "close"], AMBIGUOUS),
    Case("nothing", ["close"], AMBIGUOUS),
    Case("reset-before-reply", ["rst"], AMBIGUOUS),
    Case("cut-in-status-line", [b"HTTP/1.1 20", "close"], AMBIGUOUS),
    Case("cut-in-headers", [b"HTTP/1.1 200 OK\r\nContent-Type: text/pl", "close"], AMBIGUOUS),
    Case("cut-after-1xx", [_reply(b"HTTP/1.1 103 Early Hints"), "close"], AMBIGUOUS),
    Case(
        "short-body", [_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 50", b"{}"), "close"], AMBIGUOUS
    ),
    Case(
        "reset-mid-body",
        [_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 50", b"{}"), 0.05, "rst"],
        AMBIGUOUS,
    ),
    Case("half-close-before-reply", ["shut_wr"], AMBIGUOUS),
    Case("half-close-after-reply", [OK, "shut_wr"], ANSWER),
    Case("garbage-after-body", [OK + b"\x16\x03garbage"], ANSWER),
    Case("close-after-reply", [OK, "close"], ANSWER),
    Case("slow-drip", [Drip(OK, 0.05)], AMBIGUOUS),  # ~4 s of drip against a 1 s deadline
]


@dataclass(frozen=True)
class Run:
    """One transport under test, driven through a blocking surface."""

    send: Callable[[HttpRequest], HttpResponse]
    close: Callable[[], None]


def _context(certs: Certificates) -> ssl.SSLContext:
    return pinned_ssl_context(PinSet({HOST: [certs.leaf_pin, certs.ca_pin]}), cadata=certs.ca_pem)


def _open(kind: str, base_url: str, certs: Certificates, **kwargs: Any) -> Run:
    kwargs.setdefault("timeout", 1.0)
    if kind in ("sync", "httpx-sync"):
        sync = (HttpTransport if kind == "sync" else HttpxTransport)(
            base_url, _context(certs), **kwargs
        )
        return Run(sync.send, sync.close)
    inner: AsyncHttpTransport | AsyncHttpxTransport
    if kind == "httpx-async":
        inner = AsyncHttpxTransport(base_url, _context(certs), **kwargs)
    else:
        inner = AsyncHttpTransport(base_url, _context(certs), **kwargs)
    # After the transport: one refused at construction leaves no loop unclosed.
    loop = NoReaderLoop() if kind == "async-streams" else asyncio.new_event_loop()

    def close() -> None:
        loop.run_until_complete(inner.aclose())
        loop.close()

    return Run(lambda request: loop.run_until_complete(inner.send(request)), close)


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return make_certificates()


@pytest.fixture(params=["sync", "async", "async-streams", "httpx-sync", "httpx-async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(kind: str, certs: Certificates) -> Iterator[Callable[..., tuple[RawServer, Run]]]:
    servers: list[RawServer] = []
    runs: list[Run] = []

    def start(script: Script, *, tls: bool = True, **kwargs: Any) -> tuple[RawServer, Run]:
        server = RawServer(certs, script, tls=tls)
        servers.append(server)
        run = _open(kind, server.base_url, certs, **kwargs)
        runs.append(run)
        return server, run

    yield start
    for run in runs:
        with contextlib.suppress(Exception):
            run.close()
    for server in servers:
        server.stop()


def _outcome(run: Run, request: HttpRequest = ORDER) -> HttpResponse | str:
    """The response, or the class of the failure; anything else propagates (and fails)."""
    try:
        return run.send(request)
    except TransportFailure as failure:
        return AMBIGUOUS if failure.sent else NOT_SENT


# Framings h11 (httpx's parser) reads leniently where llhttp refuses them: the httpx
# transports give the answer the bytes spell out, as documented in transport/via_httpx.py.
H11_LENIENT = frozenset(
    {"chunk-size-space", "duplicate-content-length", "content-length-list", "obs-fold", "bare-lf"}
)


def _is_httpx(kind: str) -> bool:
    return kind.startswith("httpx")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus(harness: Callable[..., tuple[RawServer, Run]], case: Case, kind: str) -> None:
    server, run = harness(lambda index, head: case.steps)
    outcome = _outcome(run)
    assert len(server.requests) == 1  # the request was delivered in every case
    if _is_httpx(kind) and case.name in H11_LENIENT:
        assert isinstance(outcome, HttpResponse), outcome
        assert outcome.body == case.body or outcome.body == b"{}"
    elif case.expect == ANSWER:
        assert isinstance(outcome, HttpResponse), outcome
        assert (outcome.status, outcome.body) == (case.status, case.body)
    else:
        assert outcome == case.expect


# --- after the answer: may the connection carry the next request? ---------------------------


@pytest.mark.parametrize(
    ("first", "connections"),
    [
        pytest.param([OK], 1, id="keep-alive"),
        pytest.param(
            [
                _reply(
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 11",
                    b'{"ok":true}',
                )
            ],
            2,
            id="connection-token-list-close",
        ),
        pytest.param(
            [_reply(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 11", b'{"ok":true}')],
            2,
            id="connection-close-any-case",
        ),
        pytest.param(
            [b'HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}'], 2, id="http-1.0"
        ),
        pytest.param([OK + b"garbage"], 2, id="garbage-after-body"),
        pytest.param(  # read as the next request's answer, it would be a forged one
            [OK + _reply(b"HTTP/1.1 200 OK\r\nContent-Length: 14", b'{"forged":true}'[:14])],
            2,
            id="a-whole-reply-after-the-reply",
        ),
        pytest.param([OK, 0.1, b"late garbage"], 2, id="garbage-while-idle"),
        pytest.param([OK, 0.1, "close"], 2, id="stale-keep-alive"),
        pytest.param([OK, "shut_wr"], 2, id="half-close"),
        pytest.param([_reply(b"HTTP/1.1 103 Early Hints"), OK], 1, id="1xx-keeps-alive"),
    ],
)
def test_the_next_request_goes_where_it_safely_can(
    harness: Callable[..., tuple[RawServer, Run]], first: list[Step], connections: int
) -> None:
    """Whatever the first answer did to its connection, the second request succeeds:
    on the same connection only when that connection is clean and kept alive."""

    def script(index: int, head: bytes) -> Sequence[Step]:
        return first if index == 0 else [OK]

    server, run = harness(script)
    answer = _outcome(run)
    assert isinstance(answer, HttpResponse)
    assert answer.body == b'{"ok":true}'
    time.sleep(0.3)  # whatever the server does after its answer has happened
    again = _outcome(run)
    assert isinstance(again, HttpResponse), again
    assert again.body == b'{"ok":true}'
    assert server.connections == connections
    assert len(server.requests) == 2


# --- limits, enforced before buffering -------------------------------------------------------

SMALL = Limits(max_head=4096, max_body=64 * 1024)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(
            [
                Stream(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n",
                    b"x" * 65536,
                    64 << 20,
                )
            ],
            id="huge-declared-chunk",
        ),
        pytest.param(
            [
                Stream(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"4000\r\n" + b"x" * 0x4000 + b"\r\n",
                    64 << 20,
                )
            ],
            id="endless-small-chunks",
        ),
        pytest.param(
            [
                Stream(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                    b"x" * 65536,
                    64 << 20,
                )
            ],
            id="declared-length-over-limit",
        ),
        pytest.param(
            [Stream(b"HTTP/1.1 200 OK\r\nX-Big: ", b"y" * 65536, 64 << 20)],
            id="endless-header",
        ),
        pytest.param(
            [Stream(b"HTTP/1.1 200 OK\r\n", b"X-A: 1\r\n" * 8192, 64 << 20)],
            id="endless-headers",
        ),
    ],
)
def test_over_the_limits_is_ambiguous_and_memory_stays_bounded(
    harness: Callable[..., tuple[RawServer, Run]], steps: list[Step]
) -> None:
    _over_the_limits(harness, steps)


# The sync httpx transport bounds each read, not a head of endless 1xx replies (see
# transport/via_httpx.py): that one case is run on the transports that bound it.
@pytest.mark.parametrize("kind", ["sync", "async", "async-streams", "httpx-async"])
def test_endless_interim_replies_are_ambiguous_and_memory_stays_bounded(
    harness: Callable[..., tuple[RawServer, Run]],
) -> None:
    # 16 MiB offered, four times the memory bound: h11 parses interim replies in Python,
    # 64 MiB of them took the httpx transport 40 s.
    steps = [Stream(b"", b"HTTP/1.1 103 Early Hints\r\n\r\n" * 2048, 16 << 20)]
    _over_the_limits(harness, steps)


def _over_the_limits(harness: Callable[..., tuple[RawServer, Run]], steps: list[Step]) -> None:
    _, run = harness(lambda index, head: steps, limits=SMALL, timeout=10.0)
    tracemalloc.start()
    try:
        outcome = _outcome(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome == AMBIGUOUS
    # The server offers 64 MiB; the client holds its limit plus a read or two.
    assert peak < 4 << 20, f"peak {peak} bytes"


def test_a_body_at_the_limit_is_an_answer(harness: Callable[..., tuple[RawServer, Run]]) -> None:
    body = b"z" * SMALL.max_body
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    _, run = harness(lambda index, head: [reply], limits=SMALL)
    outcome = _outcome(run)
    assert isinstance(outcome, HttpResponse)
    assert outcome.body == body


# --- failures before a request byte is written -----------------------------------------------


@pytest.mark.parametrize(
    "before_tls",
    [
        pytest.param(["close"], id="closed-at-once"),
        pytest.param([OK, "close"], id="plain-http-instead-of-tls"),
        pytest.param(["rst"], id="reset-during-handshake"),
    ],
)
def test_a_handshake_that_fails_sent_nothing(
    kind: str, certs: Certificates, before_tls: list[Step]
) -> None:
    server = RawServer(certs, lambda index, head: [OK], before_tls=before_tls)
    run = _open(kind, server.base_url, certs)
    try:
        assert _outcome(run) == NOT_SENT
    finally:
        run.close()
        server.stop()
    assert server.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            [_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0")], id="407"
        ),
        pytest.param(
            [_reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5", b"nope!")], id="403-with-body"
        ),
        pytest.param(
            [_reply(b"HTTP/1.1 200 Connection established", b"early bytes")], id="bytes-after-200"
        ),
        pytest.param([_reply(b"HTTP/1.1 2000 OK")], id="malformed-status"),
        pytest.param([b"HTTP/1.1 200 Connection est", "close"], id="cut"),
        pytest.param(["close"], id="closed"),
        pytest.param(
            [Stream(b"HTTP/1.1 200 OK\r\nX: ", b"y" * 65536, 64 << 20)], id="endless-head"
        ),
    ],
)
def test_a_proxy_that_does_not_open_the_tunnel_sent_nothing(
    kind: str, certs: Certificates, answer: list[Step]
) -> None:
    proxy = RawServer(certs, lambda index, head: answer, tls=False)
    run = _open(kind, "https://venue.invalid:443", certs, proxy=f"http://{HOST}:{proxy.port}")
    try:
        assert _outcome(run) == NOT_SENT
    finally:
        run.close()
        proxy.stop()
    assert [head.split(b"\r\n")[0] for head in proxy.requests] == [
        b"CONNECT venue.invalid:443 HTTP/1.1"
    ]


def test_connection_refused_sent_nothing(kind: str, certs: Certificates) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        run = _open(kind, f"https://{HOST}:{probe.getsockname()[1]}", certs)
        try:
            assert _outcome(run) == NOT_SENT
        finally:
            run.close()


@pytest.mark.parametrize("after", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
def test_a_whole_reply_leaves_no_garbage_cycle(after: bytes) -> None:
    """The parser and the reader referred to each other, so every request left 12 objects
    for the cyclic collector: a full collection of a platform's heap then ran inside the
    fan-out. Broken once the reply is whole, even with bytes after it in the same read."""
    import gc

    from securetrade.transport.wire import ResponseReader

    gc.collect()
    gc.disable()
    try:
        reader = ResponseReader()
        assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + after)
        assert reader.response is not None
        assert reader.response.body == b"ok"
        assert reader.reusable is (not after)
        assert reader.feed(b"more")  # bytes after the reply: still the reply, not reusable
        assert not reader.reusable
        del reader
        assert gc.collect() == 0
    finally:
        gc.enable()
