"""Signers and canonical encoders: serialise once, sign those bytes, send those bytes.

Primitives (``HmacSha256Signer``, ``HmacSha256Base64Signer``, ``Ed25519Signer``,
``RsaSigner``) sign a payload; the venue signers (``KrakenSigner``, ``OkxSigner``,
``KucoinSigner``, ``BybitSigner``, ``JwtSigner``) also build their venue's message from the
parts of a request. :func:`signer_for` picks the right one for an :class:`~securetrade.keys.ApiKey`.
"""

from .dialects import BybitSigner, KucoinSigner, OkxSigner, iso_timestamp
from .encoding import encode_json, encode_query, is_plain, with_query
from .factory import signer_for
from .jwt import JwtSigner
from .kraken import KrakenSigner
from .signers import (
    Ed25519Signer,
    HmacSha256Base64Signer,
    HmacSha256Signer,
    RsaSigner,
    Signer,
)

__all__ = [
    "BybitSigner",
    "Ed25519Signer",
    "HmacSha256Base64Signer",
    "HmacSha256Signer",
    "JwtSigner",
    "KrakenSigner",
    "KucoinSigner",
    "OkxSigner",
    "RsaSigner",
    "Signer",
    "encode_json",
    "encode_query",
    "is_plain",
    "iso_timestamp",
    "signer_for",
    "with_query",
]
