"""What the core asks of a transport, and what a transport hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol

from .._checks import number, safe_repr
from .redaction import redact_headers, redact_query

__all__ = [
    "AsyncTransport",
    "HttpRequest",
    "HttpResponse",
    "Timeout",
    "Transport",
    "TransportFailure",
]

_PHASES = ("resolve", "connect", "tls", "pool", "write", "first_byte", "response")


@dataclass(frozen=True, slots=True, init=False)
class Timeout:
    """Seconds allowed to each phase of one request; a phase not given gets ``default``.

    Before a connection is in hand (nothing sent, safe to resend): ``resolve`` (the name
    lookup), ``connect`` (TCP, and a proxy's CONNECT answer), ``tls`` (the handshake and
    pin check), ``pool`` (waiting for a free connection where the pool is bounded).
    Then, counted from the moment the request starts going out (the outcome is unknown
    once one runs out): ``write`` (until the request is written), ``first_byte`` (until
    the reply starts), ``response`` (until the reply is whole: a reply that drips in
    slowly cannot stretch it). ``Timeout(5.0)`` gives every phase five seconds;
    ``Timeout(5.0, connect=1.0)`` fails fast on a venue that does not answer SYN.
    """

    resolve: float
    connect: float
    tls: float
    pool: float
    write: float
    first_byte: float
    response: float

    def __init__(
        self,
        default: float = 10.0,
        *,
        resolve: float | None = None,
        connect: float | None = None,
        tls: float | None = None,
        pool: float | None = None,
        write: float | None = None,
        first_byte: float | None = None,
        response: float | None = None,
    ) -> None:
        given = {
            "resolve": resolve,
            "connect": connect,
            "tls": tls,
            "pool": pool,
            "write": write,
            "first_byte": first_byte,
            "response": response,
        }
        for phase in _PHASES:
            value = given[phase]
            seconds = _seconds(phase, default if value is None else value)
            object.__setattr__(self, phase, seconds)

    @safe_repr
    def __repr__(self) -> str:
        phases = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"Timeout({phases})"

    @classmethod
    def coerce(cls, value: Timeout | float) -> Timeout:
        """``value`` as a Timeout: one as it is, a number of seconds for every phase."""
        return value if isinstance(value, Timeout) else cls(value)


def _seconds(phase: str, value: object) -> float:
    return number(f"Timeout.{phase} (seconds)", value, above=0, most=3600)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request exactly as it will be written: ``target`` is the path plus query string,
    ``body`` the exact bytes that were signed (or none)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __repr__(self) -> str:
        body = redact_query(self.body.decode("utf-8", "replace")) if self.body else ""
        return (
            f"HttpRequest({self.method} {redact_query(self.target)}, "
            f"headers={redact_headers(self.headers)}, body={body!r})"
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A venue's answer. Header names are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class TransportFailure(Exception):
    """The exchange of bytes failed. ``sent`` tells whether the venue may have the request:
    ``False`` only when it certainly was not delivered (connection refused, pool timeout)."""

    def __init__(self, detail: str, *, sent: bool) -> None:
        super().__init__(detail)
        self.sent = sent


class Transport(Protocol):
    """Sends requests synchronously, keeping connections alive."""

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` exactly as given; raises ``TransportFailure`` saying whether it may
        have been delivered. A :class:`~securetrade.errors.LocalRefusal` (a pin or
        certificate refused, a weakened context, a malformed request) only before any byte
        of the request left: the order path then records the attempt as not placed."""

    def close(self) -> None:
        """Close every connection."""


class AsyncTransport(Protocol):
    """Sends requests from asyncio tasks."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` exactly as given; as :meth:`Transport.send`."""

    async def aclose(self) -> None:
        """Close every connection."""
