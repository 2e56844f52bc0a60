"""Transports: pinned HTTPS to a venue, or the simulator in-process.

The asyncio transport lives in :mod:`securetrade.transport.aio` and loads aiohttp only when
used.
"""

from .base import AsyncTransport, HttpRequest, HttpResponse, Timeout, Transport, TransportFailure
from .http import HttpTransport
from .proxy import Proxy
from .tls import PinSet, pin_of_certificate, pinned_ssl_context
from .wire import Limits

__all__ = [
    "AsyncTransport",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "Limits",
    "PinSet",
    "Proxy",
    "Timeout",
    "Transport",
    "TransportFailure",
    "pin_of_certificate",
    "pinned_ssl_context",
]
