"""What the core asks of a transport, and what a transport hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .redaction import redact_headers, redact_query

__all__ = ["AsyncTransport", "HttpRequest", "HttpResponse", "Transport", "TransportFailure"]


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

    def send(self, request: HttpRequest) -> HttpResponse: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Sends requests from asyncio tasks."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None: ...
