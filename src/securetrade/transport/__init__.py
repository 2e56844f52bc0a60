"""Transports: pinned HTTPS to a venue, or the simulator in-process.

The asyncio transport lives in :mod:`securetrade.transport.aio` and loads aiohttp only when
used.
"""

from .base import AsyncTransport, HttpRequest, HttpResponse, Transport, TransportFailure
from .http import HttpTransport
from .tls import PinSet, pin_of_certificate, pinned_ssl_context

__all__ = [
    "AsyncTransport",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "PinSet",
    "Transport",
    "TransportFailure",
    "pin_of_certificate",
    "pinned_ssl_context",
]
