"""Nonces that strictly increase per API key, in one process, on one host, or across hosts.

``MemoryNonceSource`` (threads and tasks of one process), ``FileNonceSource`` (processes on
one host, ``flock``), ``RedisNonceSource`` (hosts sharing a Redis). All follow the
:class:`NonceSource` protocol. See docs/signing.md for choosing a :class:`Resolution`.
"""

from typing import TYPE_CHECKING

from .base import MemoryNonceSource, NonceSource, Resolution

if TYPE_CHECKING:
    from .file import FileNonceSource
    from .redis_backend import RedisNonceSource
else:  # loaded on first use (securetrade._lazy): the default source lives in memory
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__, {"FileNonceSource": ".file", "RedisNonceSource": ".redis_backend"}
    )

__all__ = ["FileNonceSource", "MemoryNonceSource", "NonceSource", "RedisNonceSource", "Resolution"]
