"""HTTP/1.1 without I/O, shared by both transports: requests out as bytes, replies in.

The transports own their sockets, TLS and deadlines; this module owns what the bytes
mean. Replies are parsed by httptools (llhttp, the parser Node.js ships) in its strict
mode, which already refuses the lenient framings a reply can smuggle an answer through:
chunk sizes such as ``0x2``, ``+2`` or ``0_2``, a chunk not followed by CRLF, whitespace
before a header's colon, obs-fold, a status of four digits, versions other than HTTP/1.x
(checked here), a Content-Length next to a Transfer-Encoding, a duplicated
Content-Length. On top of the parser this module decides what the transports accept:

* interim (1xx) replies are skipped and the final one read; ``101`` is refused (we never
  ask to switch protocols), and so is a final status outside 200-599 (``000``, ``999``:
  llhttp reads any three digits);
* the body must be framed by Content-Length or ``Transfer-Encoding: chunked`` (exactly
  that coding: we ask for no other), else the reply cannot be told whole from cut;
* ``Connection`` is read as a token list: ``keep-alive, close`` closes;
* limits are enforced as bytes arrive, before anything is kept: the head (interim replies
  included, and the trailer section after the last chunk, which llhttp holds line by
  line) and the body, whatever a header or a chunk size declares;
* bytes after the reply make the connection unusable (the reply itself stands).

Every refusal is a :class:`ProtocolError`; the transports turn it into a
:class:`~securetrade.transport.base.TransportFailure`, ambiguous (``sent=True``) since a
reply is only read after the request went out.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

from ..errors import InvalidRequest
from .base import HttpResponse

__all__ = [
    "DEFAULT_LIMITS",
    "Expired",
    "Limits",
    "ProtocolError",
    "ResponseReader",
    "TunnelReader",
    "authority",
    "check_limits",
    "encode_request",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a reply a transport will hold. ``max_head`` counts the status line and
    headers of the reply and of any interim replies before it; ``max_body`` the decoded
    body. The defaults fit the largest answer any supported venue sends (a full Binance
    ``exchangeInfo`` is a few MiB) with a wide margin."""

    max_head: int = 64 * 1024
    max_body: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_head", "max_body"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise InvalidRequest(f"Limits.{name} must be a whole number of bytes >= 1024")


DEFAULT_LIMITS = Limits()


def check_limits(limits: object) -> None:
    """Refuse anything but a :class:`Limits` where a transport takes its limits (a
    number or a dict would fail at the first reply, after the request went out)."""
    if not isinstance(limits, Limits):
        raise InvalidRequest("limits must be a securetrade.transport.Limits")


class ProtocolError(Exception):
    """The reply cannot be read as one whole answer: malformed, unframed, too large, cut."""


class Expired(TimeoutError):
    """A phase of one request (see :class:`~securetrade.transport.base.Timeout`) ran out."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"{phase.replace('_', ' ')} timed out after {seconds:g} s")
        self.phase = phase


def encode_request(
    method: str,
    target: str,
    host: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    user_agent: str,
) -> bytes:
    """The request as written: the target and body exactly as given (and as signed).

    The caller has checked every field for CR, LF and other controls
    (:func:`securetrade.transport.http.check_request`).
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    has_agent = False
    for name, value in headers:
        lines.append(f"{name}: {value}")
        if not has_agent and name.lower() == "user-agent":
            has_agent = True
    if not has_agent:
        lines.append(f"User-Agent: {user_agent}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def authority(host: str, port: int) -> str:
    """``host:port`` as a request's Host or a CONNECT target: IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Stop(Exception):
    """Raised from a parser callback to end parsing at once (the reason is kept aside)."""


def _tokens(value: str) -> set[str]:
    """A header's comma-separated list of tokens, lower-cased (RFC 9110 §5.6.1)."""
    return {token.strip().lower() for token in value.split(",")}


class ResponseReader:
    """One reply, fed as it arrives: :meth:`feed` until it returns True, then
    :attr:`response`; :meth:`end_of_stream` if the connection ends first.

    After the reply, :attr:`reusable` tells whether the connection may carry another
    request: HTTP/1.1, no ``close`` token, nothing sent after the reply.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_error",
        "_head_fed",
        "_head_size",
        "_headers",
        "_in_head",
        "_keep",
        "_limits",
        "_parser",
        "_raw",
        "_status",
        "_tail_fed",
        "_trailing",
        "done",
        "response",
        "reusable",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, keep_parser: bool = False) -> None:
        self._limits = limits
        # keep_parser: the parser stays after the reply, for the connection's next one
        # (see again()); whoever keeps the reader calls release() when it is done with it.
        self._keep = keep_parser
        # The parser holds this reader's callbacks and the reader holds the parser: a cycle,
        # broken once the reply is whole so that the pair is freed at once rather than by
        # the cyclic collector (12 objects per request, and full collections take longer).
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._raw: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0  # headers kept, interim replies included
        self._head_fed = 0  # bytes fed while a head was incomplete
        self._in_head = True
        self._status = 0
        self._error: str | None = None
        self._trailing = False  # a chunk header seen, no data since: maybe the last chunk
        self._tail_fed = 0  # bytes fed since then (a trailer section, if it was the last)
        self.done = False
        self.reusable = False
        self.response: HttpResponse | None = None

    # --- what the transports call ----------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Parse ``data``; True once the final reply is whole. Raises ProtocolError."""
        if self.done:  # bytes after the reply: the reply stands, the connection does not
            if data:
                self.reusable = False
            return True
        if self._in_head:
            self._head_fed += len(data)
        elif self._trailing:
            self._tail_fed += len(data)
        parser = self._parser
        assert parser is not None  # dropped only once done
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, _Stop) as exc:
            if not self.done:
                raise ProtocolError(self._error or f"malformed reply: {exc}") from None
            self.reusable = False  # what followed the reply is not a reply
        if not self.done:
            if self._in_head and self._head_fed > self._limits.max_head:
                raise ProtocolError(f"reply head over {self._limits.max_head} bytes")
            if self._trailing and self._tail_fed > self._limits.max_head:
                # llhttp keeps a trailer line whole until it ends: one that never ends
                # would grow without bound, so the trailer section counts as head.
                raise ProtocolError(f"reply trailers over {self._limits.max_head} bytes")
        return self.done

    def again(self, limits: Limits) -> bool:
        """Ready this reader, and its parser, for the connection's next reply: only after
        a whole reply that left the connection reusable (llhttp then waits for the next
        message), with the same limits. False: make a new reader. A parser costs more to
        make and free than the rest of a reply's reading."""
        if not (self.done and self.reusable and self._parser is not None):
            return False
        if limits is not self._limits:
            return False
        self._headers = {}
        self._raw = []
        self._body = []
        self._body_size = self._head_size = self._head_fed = self._tail_fed = 0
        self._in_head = True
        self._status = 0
        self._error = None
        self._trailing = self.done = self.reusable = False
        self.response = None
        return True

    def release(self) -> None:
        """Drop the parser (it and this reader refer to each other): freed now, not by the
        cyclic collector."""
        self._parser = None

    def end_of_stream(self) -> None:
        """The connection ended: fine after the reply, a cut reply before it."""
        if not self.done:
            raise ProtocolError("the connection ended before the reply was whole")

    # --- httptools callbacks ---------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self._error = reason
        raise _Stop(reason)

    def on_message_begin(self) -> None:
        if self.done:
            self.reusable = False
            raise _Stop("bytes after the reply")
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_size + len(name) + len(value) + 4
        if size > self._limits.max_head:
            self._fail(f"reply head over {self._limits.max_head} bytes")
        self._head_size = size
        self._raw.append((name, value))  # decoded once the head is whole

    def _decoded(self) -> dict[str, str]:
        """The head's headers by lower-case name; a repeated name's values joined by commas."""
        headers: dict[str, str] = {}
        for name, value in self._raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._raw = []
        return headers

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # called from inside feed_data
        status = parser.get_status_code()
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(f"reply in HTTP/{version}, not HTTP/1.x")
        headers = self._decoded()
        if 100 <= status < 200:
            if status == 101:
                self._fail("101 Switching Protocols: no upgrade was asked for")
            self._status = status  # an interim reply: its headers are not the answer's
            return
        if not 200 <= status <= 599:  # llhttp takes any three digits: 000, 999...
            self._fail(f"status {status} is no HTTP status: the answer cannot be read")
        self._headers = headers
        self._status = status
        self._in_head = False
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                self._fail(f"Transfer-Encoding {encoding[:40]!r}: only chunked is accepted")
        elif "content-length" in headers:
            if int(headers["content-length"]) > self._limits.max_body:  # llhttp checked digits
                self._fail(f"Content-Length over the {self._limits.max_body}-byte limit")
        elif status not in (204, 304):
            self._fail("reply without Content-Length or chunked framing: cut or whole?")
        connection = headers.get("connection")
        closes = connection is not None and "close" in _tokens(connection)
        self.reusable = version == "1.1" and not closes

    def on_chunk_header(self) -> None:
        # A chunk of data follows at once, unless this was the last chunk (size 0): then
        # the trailer section does, and no data until the reply ends.
        self._trailing = True
        self._tail_fed = 0

    def on_chunk_complete(self) -> None:
        self._trailing = False

    def on_body(self, body: bytes) -> None:
        self._trailing = False
        size = self._body_size + len(body)
        if size > self._limits.max_body:
            self._fail(f"reply body over the {self._limits.max_body}-byte limit")
        self._body_size = size
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._in_head:  # an interim reply ended: the answer follows
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.response = HttpResponse(self._status, self._headers, body)
        self.done = True
        if not self._keep:
            self._parser = None  # feed_data's own reference keeps it alive until it returns


class TunnelReader:
    """A proxy's answer to CONNECT: 2xx opens the tunnel; nothing may follow it, since
    the venue cannot speak before our TLS hello. Limits as for replies."""

    __slots__ = ("_reader",)

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._reader = _TunnelHead(limits)

    def feed(self, data: bytes | bytearray | memoryview) -> int | None:
        """Parse ``data``; the proxy's status once its head is whole, else None."""
        return self._reader.feed_head(data)


class _TunnelHead(ResponseReader):
    """A head without a body: llhttp cannot know the reply answers a CONNECT."""

    __slots__ = ()

    def feed_head(self, data: bytes | bytearray | memoryview) -> int | None:
        if self.done:
            raise ProtocolError("the proxy sent bytes after its answer")
        self._head_fed += len(data)
        parser = self._parser
        assert parser is not None  # dropped only once done
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, _Stop) as exc:
            raise ProtocolError(self._error or f"malformed proxy answer: {exc}") from None
        if not self.done and self._head_fed > self._limits.max_head:
            raise ProtocolError(f"proxy answer over {self._limits.max_head} bytes")
        return self._status if self.done else None

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # called from inside feed_data
        status = parser.get_status_code()
        if parser.get_http_version() not in ("1.1", "1.0"):
            self._fail(f"proxy answered in HTTP/{parser.get_http_version()}")
        headers = self._decoded()
        if 100 <= status < 200 and status != 101:
            return
        self._headers = headers
        self._status = status
        self._in_head = False
        self.done = True

    def on_body(self, body: bytes) -> None:
        if 200 <= self._status < 300:  # a refusal may explain itself; a tunnel stays silent
            self._fail("the proxy sent bytes after its answer")

    def on_message_complete(self) -> None:
        pass
