"""Transports: pinned HTTPS to a venue, or the simulator in-process."""

from .base import AsyncTransport, HttpRequest, HttpResponse, Transport, TransportFailure
from .http import AsyncHttpTransport, HttpTransport
from .tls import PinSet, pin_of_certificate, pinned_ssl_context

__all__ = [
    "AsyncHttpTransport",
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
