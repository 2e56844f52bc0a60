"""The securetrade message-signing scheme, version 1: headers and canonical string.

A sender (a leader bot publishing trade signals, a platform sending a webhook) adds four
headers to an HTTP request::

    X-ST-Key:        the key id, which names the sender's key at the receiver
    X-ST-Timestamp:  milliseconds since the Unix epoch, when the message was signed
    X-ST-Nonce:      16-64 characters [A-Za-z0-9_-], unique per message (its message id)
    X-ST-Signature:  base64 signature of the canonical string below

The canonical string is seven lines joined by ``\\n`` (no trailing newline)::

    ST1
    <METHOD>                 upper case
    <path?query>             the request target exactly as sent
    <timestamp>
    <nonce>
    <key id>
    <sha256(body), hex>      lower case; the hash of the empty string for no body

HMAC-SHA256 keys sign it with the shared secret; Ed25519 keys with the sender's private
key (the receiver holds only the public key). Every field that decides the meaning of the
message is covered: method, target, body, time, identity. The receiver checks the time
window and remembers each nonce until the message would be stale anyway, so a captured
message cannot be sent again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable

from .._checks import function, shown, whole
from ..errors import InvalidRequest
from ..keys import KeyKind, Secret
from ..signing import Ed25519Signer, HmacSha256Base64Signer, Signer
from ..signing.signers import SecretHolder

__all__ = [
    "HEADER_KEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MessageSigner",
    "canonical_message",
]

VERSION = "ST1"
HEADER_KEY = "X-ST-Key"
HEADER_TIMESTAMP = "X-ST-Timestamp"
HEADER_NONCE = "X-ST-Nonce"
HEADER_SIGNATURE = "X-ST-Signature"

NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}").fullmatch
KEY_ID = re.compile(r"[A-Za-z0-9_.:/-]{1,128}").fullmatch
METHOD = re.compile(r"[A-Z]{1,16}").fullmatch
TARGET = re.compile(r"/[!-~]{0,4095}").fullmatch  # printable ASCII, no spaces
TIMESTAMP = re.compile(r"[0-9]{1,16}").fullmatch


def canonical_message(
    method: str, target: str, timestamp_ms: int, nonce: str, key_id: str, body: bytes
) -> bytes:
    """The exact bytes signed for one message (see the module docstring)."""
    if not all(isinstance(part, str) for part in (method, target, nonce, key_id)):
        raise InvalidRequest("method, target, nonce and key_id must be text")
    whole("timestamp_ms (epoch milliseconds)", timestamp_ms, 0, 10**16 - 1)
    if not isinstance(body, bytes):
        raise InvalidRequest("body must be the exact bytes sent (b'' for none)")
    if not METHOD(method):
        raise InvalidRequest("method must be an upper-case HTTP method")
    if not TARGET(target):
        raise InvalidRequest("target must be the request path (and query), printable ASCII")
    if not NONCE(nonce):
        raise InvalidRequest("nonce must be 16-64 characters of [A-Za-z0-9_-]")
    if not KEY_ID(key_id):
        raise InvalidRequest("key id must be 1-128 characters of [A-Za-z0-9_.:/-]")
    if not 0 <= timestamp_ms < 10**16:
        raise InvalidRequest("timestamp must be epoch milliseconds")
    return _unchecked_message(method, target, timestamp_ms, nonce, key_id, body)


def _unchecked_message(
    method: str, target: str, timestamp_ms: int, nonce: str, key_id: str, body: bytes
) -> bytes:
    """:func:`canonical_message` for fields already checked against the grammars above
    (the gateway checks each header as it reads it)."""
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join((VERSION, method, target, str(timestamp_ms), nonce, key_id, digest))
    return text.encode("ascii")


class MessageSigner(SecretHolder):
    """The sending side: signs outgoing messages under the scheme above.

    ``kind`` is :attr:`KeyKind.HMAC` (``secret`` is the shared secret) or
    :attr:`KeyKind.ED25519` (``secret`` is the private key; give the receiver its public
    key). ``now_ms`` reads the clock; pass a venue-synchronised one if hosts disagree.
    """

    __slots__ = ("_now_ms", "_signer", "key_id")

    def __init__(
        self,
        key_id: str,
        secret: Secret,
        kind: KeyKind = KeyKind.HMAC,
        *,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if not isinstance(key_id, str) or not KEY_ID(key_id):
            raise InvalidRequest("key id must be 1-128 characters of [A-Za-z0-9_.:/-]")
        function("now_ms", now_ms)
        signer: Signer
        if kind is KeyKind.HMAC:
            signer = HmacSha256Base64Signer(secret)
        elif kind is KeyKind.ED25519:
            signer = Ed25519Signer(secret)
        else:
            raise InvalidRequest(
                f"messages are signed with HMAC or Ed25519 keys, not {shown(kind)}"
            )
        self.key_id = key_id
        self._signer = signer
        self._now_ms = now_ms

    def headers(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The four ``X-ST-*`` headers for one message; send ``body`` and ``target`` as given."""
        stamp = self._now_ms() if timestamp_ms is None else timestamp_ms
        nonce = secrets.token_urlsafe(18) if nonce is None else nonce
        message = canonical_message(method, target, stamp, nonce, self.key_id, body)
        return {
            HEADER_KEY: self.key_id,
            HEADER_TIMESTAMP: str(stamp),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: self._signer.sign(message),
        }
