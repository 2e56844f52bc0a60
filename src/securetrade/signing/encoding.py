"""Form/query encoding whose output is exactly what the venue will decode.

Every key and value is percent-encoded (UTF-8) unless it consists only of RFC 3986
unreserved characters, so no value can introduce a ``&`` or ``=`` of its own: the venue
decodes exactly the pairs that were given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["encode_query", "is_plain"]

_PLAIN = re.compile(r"[A-Za-z0-9._~-]*").fullmatch


def is_plain(text: str) -> bool:
    """True when ``text`` needs no percent-encoding."""
    return _PLAIN(text) is not None


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``k=v&k=v`` with percent-encoding applied only where a character needs it."""
    return "&".join(
        [
            (k if _PLAIN(k) else quote(k, safe="")) + "=" + (v if _PLAIN(v) else quote(v, safe=""))
            for k, v in pairs
        ]
    )
