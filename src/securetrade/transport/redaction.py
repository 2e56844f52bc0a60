"""The one redaction policy, used by reprs, logs, exceptions, traces and the CLI.

What it masks, wherever it appears:

* header values that carry a key, a signature, a passphrase or a token
  (:data:`SENSITIVE_HEADERS`), in mappings and in ``Name: value`` text;
* values of sensitive parameters (:data:`SENSITIVE_PARAMS`: ``signature``, ``apiKey``,
  ``passphrase``, ...) in query strings, form bodies, URLs and JSON, so the URL of a
  signed GET cannot be replayed from a log line;
* JWTs, ``Bearer``/``Basic`` credentials, passwords in URLs and PEM private keys.

:class:`RedactingFilter` applies it to log records (message, arguments and formatted
traceback); :func:`install_log_redaction` attaches it to securetrade's loggers and to
those of the HTTP libraries underneath.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..keys.secret import MASK

__all__ = [
    "MASK",
    "SENSITIVE_HEADERS",
    "SENSITIVE_PARAMS",
    "RedactingFilter",
    "install_log_redaction",
    "redact_headers",
    "redact_json",
    "redact_query",
    "redact_text",
    "redact_url",
]

# Headers that carry a key, a signature, a passphrase or a token, lower-cased.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-mbx-apikey",  # Binance
        "api-key",  # Kraken
        "api-sign",
        "ok-access-key",  # OKX
        "ok-access-sign",
        "ok-access-passphrase",
        "x-bapi-api-key",  # Bybit
        "x-bapi-sign",
        "kc-api-key",  # KuCoin
        "kc-api-sign",
        "kc-api-passphrase",
        "cb-access-key",  # Coinbase Exchange
        "cb-access-sign",
        "cb-access-passphrase",
        "apca-api-key-id",  # Alpaca: the secret itself travels in a header
        "apca-api-secret-key",
    }
)


def _normal(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


# Parameter and JSON field names whose values are never shown, compared without case,
# '_' or '-' (so apiKey, api_key and API-KEY are one name).
SENSITIVE_PARAMS = frozenset(
    _normal(n)
    for n in (
        "signature",
        "sign",
        "apikey",
        "secret",
        "secretkey",
        "apisecret",
        "passphrase",
        "password",
        "otp",
        "token",
        "accesstoken",
        "refreshtoken",
        "privatekey",
        "authorization",
    )
)

_PARAM = re.compile(r"(?P<key>[A-Za-z0-9_.\-\[\]]+)=(?P<value>[^&\s\"',;)]*)")
_JSON_FIELD = re.compile(r'"(?P<key>[^"\\]{1,64})"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)"')
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# A credential after Bearer/Basic: 8+ token characters, at least one of them not a letter
# (so "Basic information" in prose stays as it is).
_SCHEME_TOKEN = re.compile(
    r"\b(?P<scheme>Bearer|Basic)\s+(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
    re.DOTALL,
)
_HEADER_LINE = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9-]{1,40})(?P<sep>['\"]?\s*:\s*['\"]?)(?P<value>[^\s'\",}]+)"
)


def redact_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with every sensitive value masked."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (MASK if k.lower() in SENSITIVE_HEADERS else redact_text(v)) for k, v in items}


def redact_json(value: Any) -> Any:
    """A copy of a decoded JSON value with sensitive fields masked, at any depth."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and _normal(k) in SENSITIVE_PARAMS else redact_json(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_json(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """Apply the whole policy to free text: a log line, a URL, a body, an error message."""
    if not text:
        return text
    # Each pattern runs only when its marker is present: most text has none of them.
    if "PRIVATE KEY" in text:
        text = _PEM_PRIVATE.sub(lambda m: f"-----{m.group('kind')} {MASK}-----", text)
    if "eyJ" in text:
        text = _JWT.sub(MASK, text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _SCHEME_TOKEN.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if ":" in text:
        text = _HEADER_LINE.sub(_mask_header, text)
    if '"' in text:
        text = _JSON_FIELD.sub(_mask_json_field, text)
    if "=" in text:
        text = _PARAM.sub(_mask_param, text)
    return text


def redact_query(text: str) -> str:
    """Mask sensitive values in a query string, form body or URL (the whole text policy)."""
    return redact_text(text)


def redact_url(url: str) -> str:
    """A URL safe to log: no password, no signature, no key (a signed GET stays unusable)."""
    return redact_text(url)


def _mask_header(match: re.Match[str]) -> str:
    if match.group("name").lower() in SENSITIVE_HEADERS and match.group("value") != MASK:
        return f"{match.group('name')}{match.group('sep')}{MASK}"
    return match.group(0)


def _mask_param(match: re.Match[str]) -> str:
    key = match.group("key")
    sensitive = _normal(key) in SENSITIVE_PARAMS or key.lower() in SENSITIVE_HEADERS
    if sensitive and match.group("value") != MASK:
        return f"{key}={MASK}"
    return match.group(0)


def _mask_json_field(match: re.Match[str]) -> str:
    if _normal(match.group("key")) in SENSITIVE_PARAMS:
        return f'"{match.group("key")}": "{MASK}"'
    return match.group(0)


class RedactingFilter(logging.Filter):
    """Redacts a record's message (with its arguments merged in) and its traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_securetrade_redacted", False):
            return True  # one record, seen by several loggers on its way up
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: still never let its arguments through
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        setattr(record, "_securetrade_redacted", True)  # noqa: B010 - not a declared field
        return True


# The HTTP libraries under our transports log URLs and headers at DEBUG/INFO.
_THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "aiohttp", "aiohttp.client", "urllib3", "ccxt")


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to every ``securetrade.*`` logger and to the HTTP
    libraries' loggers. Idempotent; clients call it so that loggers created by modules
    imported later are covered too."""
    names = [*_THIRD_PARTY_LOGGERS, "securetrade"]
    names += [n for n in list(logging.Logger.manager.loggerDict) if n.startswith("securetrade.")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


install_log_redaction()
