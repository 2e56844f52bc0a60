"""The one redaction policy, used by reprs, logs, exceptions, traces and the CLI.

What it masks, wherever it appears:

* header values that carry a key, a signature, a passphrase or a token
  (:data:`SENSITIVE_HEADERS`), in mappings and in ``Name: value`` text;
* values of sensitive parameters (:data:`SENSITIVE_PARAMS`: ``signature``, ``apiKey``,
  ``passphrase``, ...) in query strings, form bodies, URLs and JSON, so the URL of a
  signed GET cannot be replayed from a log line;
* JWTs, ``Bearer``/``Basic`` credentials, passwords in URLs and PEM private keys.

:func:`redact_record` applies it to log records (message, arguments, formatted traceback,
and the attached exception, detached from its frames); :func:`install_log_redaction`
applies it to every record of securetrade's loggers and of the HTTP libraries underneath,
their child loggers included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._masking import MASK

__all__ = [
    "MASK",
    "SENSITIVE_HEADERS",
    "SENSITIVE_PARAMS",
    "RedactedError",
    "RedactingFilter",
    "install_log_redaction",
    "redact_record",
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
        "clientsecret",  # OAuth 2.0 (securetrade.oauth)
        "codeverifier",
        "idtoken",
        "listenkey",  # a Binance user data stream capability (WebSocket URLs and frames)
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
    """Redacts a record: its message (arguments merged in), its traceback text, its stack,
    and the exception attached to it (see :func:`redact_record`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class RedactedError(Exception):
    """Stands in for an exception that could not be rebuilt without its traceback."""


def redact_record(record: logging.LogRecord) -> None:
    """Apply the policy to ``record`` in place, once.

    The message is rendered with its arguments and redacted. An attached exception is
    rendered into ``exc_text`` (redacted, without locals), and ``exc_info`` is replaced
    by a stand-in of the same type, with the redacted message and no traceback, cause or
    context: a handler that renders the exception itself, with its frames' locals
    (Sentry, Rich, ``capture_locals``), finds no frame to render.
    """
    if getattr(record, "_securetrade_redacted", False):
        return  # one record, seen by several loggers on its way up
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: still never let its arguments through
        message = str(record.msg)
    record.msg = redact_text(message)
    record.args = None
    exc_info = record.exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
        if not record.exc_text:
            record.exc_text = logging.Formatter().formatException(exc_info)
        clone = _stand_in(exc_info[1])
        record.exc_info = (type(clone), clone, None)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    setattr(record, "_securetrade_redacted", True)  # noqa: B010 - not a declared field


_PLAIN_VALUES = (str, int, float, bool, type(None))


def _stand_in(exc: BaseException) -> BaseException:
    """``exc``'s type and redacted text, detached from every frame it was raised through."""
    try:
        text = str(exc)
    except Exception:
        text = f"<{type(exc).__name__}: unprintable>"
    text = redact_text(text)
    clone = _same_type(exc, text)
    if clone is None:
        clone = RedactedError(f"{type(exc).__qualname__}: {text}")
    clone.__traceback__ = None
    clone.__cause__ = None
    clone.__context__ = None
    clone.__suppress_context__ = True
    return clone


def _same_type(exc: BaseException, text: str) -> BaseException | None:
    """A copy of ``exc``'s class carrying ``text`` and its plain attributes (redacted);
    None when the class cannot be built that way or the copy cannot print itself."""
    cls = type(exc)
    try:
        clone: BaseException = cls.__new__(cls)
        clone.args = (text,)
        state = getattr(exc, "__dict__", None)
        if state:
            for name, value in state.items():
                if isinstance(value, _PLAIN_VALUES) and not name.startswith("__"):
                    clone.__dict__[name] = redact_text(value) if isinstance(value, str) else value
        str(clone)
        repr(clone)
    except Exception:
        return None
    return clone


# The HTTP libraries under our transports log URLs and headers at DEBUG/INFO. Their
# records, and those of every logger below these names, go through the policy.
_THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "aiohttp",
    "urllib3",
    "requests",
    "ccxt",
)
_COVERED = (*_THIRD_PARTY_LOGGERS, "securetrade")
_COVERED_CHILDREN = tuple(name + "." for name in _COVERED)


def _covered(name: object) -> bool:
    return isinstance(name, str) and (name in _COVERED or name.startswith(_COVERED_CHILDREN))


class _RedactingFactory:
    """A log record factory that redacts the records of the covered loggers as they are
    made. A logger's filters apply only to records made on that very logger (not to
    those its children pass up), so filters alone miss ``urllib3.connectionpool`` and any
    logger created later; the factory sees every record, and wraps the previous factory
    so other hooks keep working."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if _covered(record.name):
            redact_record(record)
        return record


def install_log_redaction() -> None:
    """Redact every record of ``securetrade`` and of the HTTP libraries underneath, and of
    every logger below them (``urllib3.connectionpool``, ``securetrade.ccxt``, ...).

    The record factory does it for records made from now on; :class:`RedactingFilter`
    on each such logger that exists is a second line for the case where an application
    replaces the factory without chaining it. Idempotent; clients call it so that loggers
    created since the first call get their filter too.
    """
    _install_factory()
    names = [*_COVERED]
    names += [n for n in list(logging.Logger.manager.loggerDict) if _covered(n)]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


_factory: _RedactingFactory | None = None


def _install_factory() -> None:
    """Install the factory once, and again if the factory was reset to the default. An
    application factory set after ours is left alone: it either chains ours (nothing to
    do) or replaced it (the filters remain), and wrapping it on every call would stack."""
    global _factory
    current = logging.getLogRecordFactory()
    if isinstance(current, _RedactingFactory):
        return
    if _factory is None or current is logging.LogRecord:
        _factory = _RedactingFactory(current)
        logging.setLogRecordFactory(_factory)


install_log_redaction()
