"""``signer_for``: the one place that maps a key (venue and kind) to its signer."""

from __future__ import annotations

from .._checks import instance
from ..errors import InvalidRequest
from ..keys import ApiKey, KeyKind
from .dialects import BybitSigner, KucoinSigner, OkxSigner
from .jwt import JwtSigner
from .kraken import KrakenSigner
from .signers import Ed25519Signer, HmacSha256Signer, RsaSigner, Signer

__all__ = ["signer_for"]


def signer_for(key: ApiKey) -> Signer:
    """The signer for ``key``, with its secret parsed once.

    HMAC secrets mean different algorithms at different venues (hex SHA-256 at Binance and
    Bybit, base64 at OKX and KuCoin, SHA-512 over a nonce hash at Kraken), so the venue
    decides among them; the asymmetric kinds decide by themselves. Venues not named here
    (Binance, the simulator) use the plain primitives.
    """
    instance("key", key, ApiKey, optional=False)
    venue, kind = key.venue, key.kind
    if kind is KeyKind.HMAC:
        if venue == "kraken":
            return KrakenSigner(key.secret, otp=key.otp)
        if venue == "okx":
            return OkxSigner(key.secret, key.passphrase)
        if venue == "kucoin":
            return KucoinSigner(key.secret, key.passphrase)
        if venue == "bybit":
            return BybitSigner(key.secret, KeyKind.HMAC)
        return HmacSha256Signer(key.secret)
    if kind is KeyKind.ED25519:
        if venue == "coinbase":
            return JwtSigner(key.key_id, key.secret, kind)
        return Ed25519Signer(key.secret)
    if kind is KeyKind.RSA:
        if venue == "bybit":
            return BybitSigner(key.secret, KeyKind.RSA)
        return RsaSigner(key.secret)
    if kind is KeyKind.EC_P256:
        return JwtSigner(key.key_id, key.secret, kind)
    raise InvalidRequest(f"no signer for key kind {kind.value}")
