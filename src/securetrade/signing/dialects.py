"""Request signers of the timestamp dialects: OKX, KuCoin and Bybit.

Each builds the venue's pre-hash string from the parts of one request and signs it with a
primitive from ``signers``. The parts must be the exact text that is sent: the query or
JSON body from :mod:`securetrade.signing.encoding`, the timestamp that goes in the header.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .._checks import as_text, own_methods, shown, whole
from ..errors import InvalidRequest
from ..keys import KeyKind, Secret
from .signers import (
    HmacSha256Base64Signer,
    HmacSha256Signer,
    RsaSigner,
    SecretHolder,
    Signer,
    body_bytes,
    held,
)

__all__ = ["BybitSigner", "KucoinSigner", "OkxSigner", "iso_timestamp"]

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
# A request path as it appears on the request line: no spaces, controls or fragment.
_PATH = re.compile(r"/[!-~]*").fullmatch


def iso_timestamp(ms: int) -> str:
    """``2020-12-08T09:08:57.715Z``: OKX's timestamp form for epoch milliseconds ``ms``."""
    whole("ms (epoch milliseconds)", ms, 0, 253_402_300_799_999)  # to 9999-12-31
    moment = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _text(value: bytes | str) -> bytes:
    return body_bytes("body", value)


def _method_path(method: str, request_path: str) -> bytes:
    verb = as_text(method)  # the caller's str subclass is neither hashed nor signed
    if verb is None or verb not in _METHODS:
        raise InvalidRequest(
            f"method {shown(method)}{own_methods(method)} is not one of "
            f"{', '.join(sorted(_METHODS))}"
        )
    method = verb
    if not isinstance(request_path, str) or _PATH(request_path) is None or "#" in request_path:
        raise InvalidRequest("request path must start with '/' and hold printable ASCII only")
    return method.encode("ascii") + request_path.encode("ascii")


class _MethodPathSigner(SecretHolder):
    """``base64(HMAC-SHA256(secret, timestamp + METHOD + path[?query] + body))``."""

    __slots__ = ("_mac", "_passphrase")

    def __init__(self, secret: Secret, passphrase: Secret | None) -> None:
        self._mac = HmacSha256Base64Signer(secret)
        self._passphrase = None if passphrase is None else held(passphrase, "passphrase")

    def sign(self, payload: bytes) -> str:
        return self._mac.sign(payload)

    def sign_request(
        self, timestamp: str, method: str, request_path: str, body: bytes | str = b""
    ) -> str:
        """The signature header for one request; ``request_path`` includes any query."""
        if not isinstance(timestamp, str) or not timestamp.isascii() or not timestamp.isprintable():
            raise InvalidRequest("timestamp must be printable ASCII text (iso_timestamp(ms))")
        return self._mac.sign(
            timestamp.encode("ascii") + _method_path(method, request_path) + _text(body)
        )

    def _need_passphrase(self) -> Secret:
        if self._passphrase is None:
            raise InvalidRequest(f"{type(self).__name__} needs the key's passphrase")
        return self._passphrase


class OkxSigner(_MethodPathSigner):
    """OKX v5: ``OK-ACCESS-SIGN`` over ISO timestamp + METHOD + path + body.

    The timestamp is :func:`iso_timestamp` of venue time; OKX rejects one more than 30 s
    away from its clock, and order endpoints also take an ``expTime`` deadline.
    """

    __slots__ = ()

    def __init__(self, secret: Secret, passphrase: Secret | None = None) -> None:
        super().__init__(secret, passphrase)

    def passphrase_header(self) -> str:
        """``OK-ACCESS-PASSPHRASE``: OKX takes the passphrase itself (it stores a hash)."""
        return self._need_passphrase().expose().decode("utf-8")


class KucoinSigner(_MethodPathSigner):
    """KuCoin: ``KC-API-SIGN`` over millisecond timestamp + METHOD + path + body.

    With key version 2 (the default) the passphrase header is itself an HMAC of the
    passphrase under the secret, computed once here.
    """

    __slots__ = ("_passphrase_header", "key_version")

    def __init__(
        self, secret: Secret, passphrase: Secret | None = None, *, key_version: int = 2
    ) -> None:
        if key_version not in (1, 2):
            raise InvalidRequest("KuCoin key_version is 1 or 2")
        super().__init__(secret, passphrase)
        self.key_version = key_version
        self._passphrase_header: str | None = None
        if passphrase is not None:
            self._passphrase_header = (
                self._mac.sign(passphrase.expose())
                if key_version == 2
                else passphrase.expose().decode("utf-8")
            )

    def passphrase_header(self) -> str:
        """``KC-API-PASSPHRASE`` (send ``KC-API-KEY-VERSION`` = :attr:`key_version` too)."""
        self._need_passphrase()
        assert self._passphrase_header is not None
        return self._passphrase_header


class BybitSigner(SecretHolder):
    """Bybit v5: ``X-BAPI-SIGN`` over timestamp + api key + recv window + payload.

    HMAC keys give lowercase hex, RSA keys base64. ``payload`` is the query string (no
    ``?``) for GET and the exact JSON body for POST. Bybit accepts a timestamp only when
    ``server_time - recv_window <= timestamp < server_time + 1000``.
    """

    __slots__ = ("_inner",)

    def __init__(self, secret: Secret, kind: KeyKind = KeyKind.HMAC) -> None:
        inner: Signer
        if kind is KeyKind.HMAC:
            inner = HmacSha256Signer(secret)
        elif kind is KeyKind.RSA:
            inner = RsaSigner(secret)
        else:
            raise InvalidRequest(f"Bybit signs with HMAC or RSA keys, not {kind.value}")
        self._inner = inner

    def sign(self, payload: bytes) -> str:
        """The signature of Bybit's pre-sign string: lowercase hex (HMAC), base64 (RSA)."""
        return self._inner.sign(payload)

    def sign_request(
        self, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: bytes | str = b""
    ) -> str:
        """The signature header for one request."""
        if not isinstance(api_key, str) or not api_key.isascii() or not api_key.isprintable():
            raise InvalidRequest("a Bybit api key is printable ASCII")
        whole("timestamp_ms (epoch milliseconds)", timestamp_ms, 0)
        whole("recv_window_ms", recv_window_ms, 1)
        prefix = f"{timestamp_ms}{api_key}{recv_window_ms}".encode("ascii")
        return self._inner.sign(prefix + _text(payload))
