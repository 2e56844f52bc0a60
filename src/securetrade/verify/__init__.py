"""Verify signed inbound messages (trade signals, webhooks), and sign outbound ones.

The header scheme is documented in :mod:`securetrade.verify.scheme` and docs/signing.md.
A receiver builds a :class:`Verifier` from the senders' :class:`InboundKey` s and a replay
store (:class:`MemoryReplayStore`, :class:`SqliteReplayStore` or :class:`RedisReplayStore`);
a sender signs with :class:`MessageSigner`.
"""

from .replay import MemoryReplayStore, RedisReplayStore, ReplayStore, SqliteReplayStore
from .scheme import (
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MessageSigner,
    canonical_message,
)
from .verifier import InboundKey, Principal, Verifier

__all__ = [
    "HEADER_KEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "InboundKey",
    "MemoryReplayStore",
    "MessageSigner",
    "Principal",
    "RedisReplayStore",
    "ReplayStore",
    "SqliteReplayStore",
    "Verifier",
    "canonical_message",
]
