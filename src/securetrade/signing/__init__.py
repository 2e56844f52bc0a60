"""Signers and canonical encoders: serialise once, sign those bytes, send those bytes."""

from .encoding import encode_query, is_plain
from .kraken import KrakenSigner
from .signers import Ed25519Signer, HmacSha256Signer, Signer, signer_for

__all__ = [
    "Ed25519Signer",
    "HmacSha256Signer",
    "KrakenSigner",
    "Signer",
    "encode_query",
    "is_plain",
    "signer_for",
]
