"""The one redaction policy, used by reprs, logs, exceptions, traces and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..keys.secret import MASK

__all__ = ["MASK", "SENSITIVE_HEADERS", "SENSITIVE_PARAMS", "redact_headers", "redact_query"]

# Headers that carry a key, a signature, a passphrase or a bearer token, lower-cased.
SENSITIVE_HEADERS = frozenset(
    {
        "x-mbx-apikey",
        "authorization",
        "api-key",
        "api-sign",
        "ok-access-key",
        "ok-access-sign",
        "ok-access-passphrase",
        "x-bapi-api-key",
        "x-bapi-sign",
        "kc-api-key",
        "kc-api-sign",
        "kc-api-passphrase",
        "apca-api-key-id",
        "apca-api-secret-key",
        "cookie",
    }
)

# Query or form parameters whose values must never be shown (a signed Binance GET carries
# its signature in the URL, and it stays replayable for recvWindow).
SENSITIVE_PARAMS = frozenset({"signature", "apikey", "api_key", "passphrase", "secret", "otp"})

_PARAM_RE = re.compile(r"(?P<key>[^&=?\s]+)=(?P<value>[^&\s\"']*)")


def redact_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with every sensitive value masked."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (MASK if k.lower() in SENSITIVE_HEADERS else v) for k, v in items}


def redact_query(text: str) -> str:
    """Mask the values of sensitive parameters in a query string, form body or URL."""

    def mask(match: re.Match[str]) -> str:
        key = match.group("key")
        if key.lower() in SENSITIVE_PARAMS:
            return f"{key}={MASK}"
        return match.group(0)

    return _PARAM_RE.sub(mask, text)
