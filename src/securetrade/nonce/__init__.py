"""Nonces that strictly increase per API key, in one process, on one host, or across hosts.

``MemoryNonceSource`` (threads and tasks of one process), ``FileNonceSource`` (processes on
one host, ``flock``), ``RedisNonceSource`` (hosts sharing a Redis). All follow the
:class:`NonceSource` protocol. See docs/signing.md for choosing a :class:`Resolution`.
"""

from .base import MemoryNonceSource, NonceSource, Resolution
from .file import FileNonceSource
from .redis_backend import RedisNonceSource

__all__ = ["FileNonceSource", "MemoryNonceSource", "NonceSource", "RedisNonceSource", "Resolution"]
