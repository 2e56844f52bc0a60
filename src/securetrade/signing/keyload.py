"""Parse private keys once, from the text forms venues hand out, with typed errors."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from ..keys import Secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["load_ec_p256", "load_ed25519", "load_rsa"]


def _load_any(secret: Secret, what: str) -> Any:
    """A private key from PEM (PKCS#8 or the traditional forms) or base64 DER.

    The secret's bytes are never bound to a local here, and the error is raised outside
    the ``except`` block: no frame or exception context of a failed load holds them.
    """
    key = _parse_private(secret)
    if key is None:
        raise InvalidRequest(f"the {what} secret is not a readable private key")
    return key


def _parse_private(secret: Secret) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import (
        load_der_private_key,
        load_pem_private_key,
    )

    try:
        if secret.expose().lstrip().startswith(b"-----BEGIN"):
            return load_pem_private_key(secret.expose(), password=None)
        return load_der_private_key(base64.b64decode(secret.expose(), validate=True), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # binascii.Error is a ValueError
        return None


def _seed_and_public(secret: Secret) -> Secret | None:
    """Coinbase's base64 ``seed || public`` (64 bytes) as a Secret, else None."""
    if secret.expose().lstrip().startswith(b"-----BEGIN"):
        return None
    try:
        decoded = base64.b64decode(secret.expose(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Secret(decoded) if len(decoded) == 64 else None


def load_ed25519(secret: Secret) -> Ed25519PrivateKey:
    """Ed25519 from PKCS#8 (PEM or base64 DER), or Coinbase's base64 ``seed || public``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pair = _seed_and_public(secret)
    if pair is not None:  # Coinbase CDP: 32-byte seed, then its 32-byte public key
        seeded = Ed25519PrivateKey.from_private_bytes(pair.expose()[:32])
        matches = hmac.compare_digest(
            seeded.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw), pair.expose()[32:]
        )
        if not matches:
            raise InvalidRequest("the Ed25519 secret's public half does not match its seed")
        return seeded
    key = _load_any(secret, "Ed25519")
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidRequest("the secret is a private key, but not an Ed25519 one")
    return key


def load_rsa(secret: Secret) -> RSAPrivateKey:
    """RSA (PKCS#8 or PKCS#1), at least 2048 bits as Binance and Bybit require."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    key = _load_any(secret, "RSA")
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

    key = _load_any(secret, "EC P-256")
    if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
        raise InvalidRequest("the secret is a private key, but not an EC P-256 one")
    return key
