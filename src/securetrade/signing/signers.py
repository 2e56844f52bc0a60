"""Signers built once per key: the secret is parsed here and never leaves the signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NoReturn, Protocol

from ..errors import InvalidRequest
from ..keys import ApiKey, KeyKind, Secret

__all__ = ["Ed25519Signer", "HmacSha256Signer", "Signer", "signer_for"]


class Signer(Protocol):
    """Turns the exact payload bytes into the signature text the venue expects."""

    def sign(self, payload: bytes) -> str: ...


class HmacSha256Signer:
    """HMAC-SHA256, lowercase hex (Binance, Bybit). The keyed state is built once."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: Secret) -> None:
        self._keyed = hmac.new(secret.expose(), digestmod=hashlib.sha256)

    def sign(self, payload: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "HmacSha256Signer(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a signer cannot be pickled")


class Ed25519Signer:
    """Ed25519, standard base64 (Binance). The private key is parsed once."""

    __slots__ = ("_key",)

    def __init__(self, secret: Secret) -> None:
        # Imported here: an HMAC-only bot never pays for loading cryptography.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            load_der_private_key,
            load_pem_private_key,
        )

        raw = secret.expose()
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                key = load_pem_private_key(raw, password=None)
            else:
                key = load_der_private_key(base64.b64decode(raw, validate=True), password=None)
        except (ValueError, TypeError):
            raise InvalidRequest("the Ed25519 secret is not a PKCS#8 private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidRequest("the secret is a private key, but not an Ed25519 one")
        self._key = key

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload)).decode("ascii")

    def __repr__(self) -> str:
        return "Ed25519Signer(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a signer cannot be pickled")


def signer_for(key: ApiKey) -> Signer:
    """The signer matching ``key.kind``."""
    if key.kind is KeyKind.HMAC:
        return HmacSha256Signer(key.secret)
    if key.kind is KeyKind.ED25519:
        return Ed25519Signer(key.secret)
    raise InvalidRequest(f"no signer for key kind {key.kind.value}")
