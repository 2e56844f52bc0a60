"""Parse private keys once, from the text forms venues hand out, with typed errors."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from ..keys import Secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["load_ec_p256", "load_ed25519", "load_rsa"]


def _load_any(raw: bytes, what: str) -> Any:
    """A private key from PEM (PKCS#8 or the traditional forms) or base64 DER."""
    from cryptography.hazmat.primitives.serialization import (
        load_der_private_key,
        load_pem_private_key,
    )

    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return load_pem_private_key(raw, password=None)
        return load_der_private_key(base64.b64decode(raw, validate=True), password=None)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest(f"the {what} secret is not a readable private key") from None


def load_ed25519(secret: Secret) -> Ed25519PrivateKey:
    """Ed25519 from PKCS#8 (PEM or base64 DER), or Coinbase's base64 ``seed || public``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = secret.expose()
    if not raw.lstrip().startswith(b"-----BEGIN"):
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == 64:  # Coinbase CDP: 32-byte seed, then its 32-byte public key
            key = Ed25519PrivateKey.from_private_bytes(decoded[:32])
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            if public != decoded[32:]:
                raise InvalidRequest("the Ed25519 secret's public half does not match its seed")
            return key
    key = _load_any(raw, "Ed25519")
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidRequest("the secret is a private key, but not an Ed25519 one")
    return key


def load_rsa(secret: Secret) -> RSAPrivateKey:
    """RSA (PKCS#8 or PKCS#1), at least 2048 bits as Binance and Bybit require."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    key = _load_any(secret.expose(), "RSA")
    if not isinstance(key, RSAPrivateKey):
        raise InvalidRequest("the secret is a private key, but not an RSA one")
    if key.key_size < 2048:
        raise InvalidRequest(f"RSA keys need at least 2048 bits (this one has {key.key_size})")
    return key


def load_ec_p256(secret: Secret) -> EllipticCurvePrivateKey:
    """ECDSA on P-256 (SEC1 ``EC PRIVATE KEY`` as Coinbase issues it, or PKCS#8)."""
    from cryptography.hazmat.primitives.asymmetric.ec import (
        SECP256R1,
        EllipticCurvePrivateKey,
    )

    key = _load_any(secret.expose(), "EC P-256")
    if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
        raise InvalidRequest("the secret is a private key, but not an EC P-256 one")
    return key
