"""Signature primitives, built once per key: the secret is parsed here and never leaves.

Each primitive turns the exact payload bytes into the signature text a venue expects. The
per-venue message layouts (what goes into the payload) live in ``dialects``, ``kraken``
and ``jwt``; :func:`~securetrade.signing.signer_for` picks the right one for a key.
"""

from __future__ import annotations

import hashlib
import hmac
from binascii import b2a_base64  # base64.b64encode's own step, without its Python call
from typing import TYPE_CHECKING, NoReturn, Protocol

from .._checks import instance
from ..errors import InvalidRequest
from ..keys import Secret
from .keyload import load_ed25519, load_rsa

try:  # OpenSSL's HMAC object itself: copy, update and digest in C, not hmac.HMAC's Python
    from _hashlib import hmac_new as _openssl_hmac
except ImportError:  # a Python built without OpenSSL: hmac.new is what there is
    _openssl_hmac = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = [
    "Ed25519Signer",
    "HmacSha256Base64Signer",
    "HmacSha256Signer",
    "RsaSigner",
    "SecretHolder",
    "Signer",
]


class Signer(Protocol):
    """Turns the exact payload bytes into the signature text the venue expects."""

    def sign(self, payload: bytes) -> str:
        """The signature of exactly ``payload`` (the bytes sent), as the venue expects it."""


def _payload(payload: object) -> bytes:
    """A payload that is not ``bytes``: a ``bytearray`` or ``memoryview`` is taken as its
    bytes; anything else (a str, which would need an encoding) is refused."""
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise InvalidRequest("a payload to sign is the exact bytes sent (encode text first)")


def body_bytes(name: str, value: object) -> bytes:
    """A body or message part given as ``bytes`` or ``str`` (sent as UTF-8), as bytes;
    anything else is refused (it was a TypeError from the concatenation)."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidRequest(f"{name} must be the bytes sent, or text (sent as UTF-8)")


def held(secret: object, name: str = "secret") -> Secret:
    """``secret`` as a :class:`~securetrade.keys.Secret`: a signer takes nothing else, so
    that no plain text key reaches a frame, a log or a traceback."""
    checked: Secret = instance(
        f"{name} (a securetrade.keys.Secret)", secret, Secret, optional=False
    )
    return checked


def keyed_sha256(key: bytes) -> _Mac:
    """The keyed HMAC-SHA256 state, copied for each payload (the key is hashed once).
    OpenSSL's object where it can be had: hmac.HMAC wraps that same object in three Python
    calls per signature (copy, update, digest), on every signed request."""
    if _openssl_hmac is not None:
        return _openssl_hmac(key, digestmod="sha256")
    return hmac.new(key, digestmod=hashlib.sha256)


class _Mac(Protocol):
    """What both kinds of keyed HMAC state offer."""

    def copy(self) -> _Mac: ...

    def update(self, payload: bytes, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


class SecretHolder:
    """Base of every signer: no repr of the key, no pickling, no copying."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a signer cannot be pickled")


class HmacSha256Signer(SecretHolder):
    """HMAC-SHA256, lowercase hex (Binance, Bybit). The keyed state is built once."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: Secret) -> None:
        self._keyed = keyed_sha256(held(secret).expose())

    def sign(self, payload: bytes) -> str:
        if type(payload) is not bytes:
            payload = _payload(payload)
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.hexdigest()


class HmacSha256Base64Signer(SecretHolder):
    """HMAC-SHA256, standard base64 (OKX, KuCoin). The keyed state is built once."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: Secret) -> None:
        self._keyed = keyed_sha256(held(secret).expose())

    def sign(self, payload: bytes) -> str:
        if type(payload) is not bytes:
            payload = _payload(payload)
        mac = self._keyed.copy()
        mac.update(payload)
        return b2a_base64(mac.digest(), newline=False).decode("ascii")


class Ed25519Signer(SecretHolder):
    """Ed25519, standard base64 (Binance). The private key is parsed once.

    Accepts PKCS#8 (PEM or base64 DER) and Coinbase's base64 ``seed || public`` form.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: Secret) -> None:
        self._key: Ed25519PrivateKey = load_ed25519(held(secret))

    def sign(self, payload: bytes) -> str:
        if type(payload) is not bytes:
            payload = _payload(payload)
        return b2a_base64(self._key.sign(payload), newline=False).decode("ascii")


class RsaSigner(SecretHolder):
    """RSASSA-PKCS1-v1_5 with SHA-256, standard base64 (Binance and Bybit RSA keys)."""

    __slots__ = ("_hash", "_key", "_padding")

    def __init__(self, secret: Secret) -> None:
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        self._key: RSAPrivateKey = load_rsa(held(secret))
        self._padding = PKCS1v15()
        self._hash = SHA256()

    def sign(self, payload: bytes) -> str:
        if type(payload) is not bytes:
            payload = _payload(payload)
        return b2a_base64(self._key.sign(payload, self._padding, self._hash), newline=False).decode(
            "ascii"
        )
