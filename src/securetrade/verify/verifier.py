"""Verify inbound signed messages: who sent it, is it intact, fresh and new."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._checks import instance, text, texts, whole
from ..errors import InboundRejected, InvalidRequest
from ..keys import Secret
from ..signing.signers import held
from .replay import MemoryReplayStore, ReplayStore, replay_token
from .scheme import (
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KEY_ID,
    TIMESTAMP,
    canonical_message,
)

__all__ = ["InboundKey", "Principal", "Verifier"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified message is from, and what the receiver lets them do."""

    name: str
    key_id: str
    scopes: frozenset[str]


class _Check(Protocol):
    def __call__(self, message: bytes, signature: bytes) -> bool: ...


class InboundKey:
    """A sender's key as the receiver holds it. Build with :meth:`hmac` or :meth:`ed25519`."""

    __slots__ = ("_check", "principal")

    def __init__(self, principal: Principal, check: _Check) -> None:
        self.principal = principal
        self._check = check

    @classmethod
    def hmac(
        cls, key_id: str, secret: Secret, *, name: str, scopes: Iterable[str] = ()
    ) -> InboundKey:
        """A shared-secret key: the signature is base64 HMAC-SHA256."""
        keyed = hmac.new(held(secret).expose(), digestmod=hashlib.sha256)

        def check(message: bytes, signature: bytes) -> bool:
            mac = keyed.copy()
            mac.update(message)
            return hmac.compare_digest(mac.digest(), signature)

        return cls(_principal(key_id, name, scopes), check)

    @classmethod
    def ed25519(
        cls, key_id: str, public_key: bytes, *, name: str, scopes: Iterable[str] = ()
    ) -> InboundKey:
        """A public key (raw 32 bytes or PEM): the receiver can verify but never sign."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        instance("public_key", public_key, bytes, optional=False)
        try:
            if public_key.lstrip().startswith(b"-----BEGIN"):
                key: Any = load_pem_public_key(public_key)
            else:
                key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            raise InvalidRequest("not an Ed25519 public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidRequest("the public key is not an Ed25519 key")

        def check(message: bytes, signature: bytes) -> bool:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                return False
            return True

        return cls(_principal(key_id, name, scopes), check)

    def __repr__(self) -> str:
        return f"InboundKey({self.principal.name!r}, {self.principal.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("an InboundKey cannot be pickled")


def _principal(key_id: str, name: str, scopes: Iterable[str]) -> Principal:
    if not isinstance(key_id, str) or not KEY_ID(key_id):
        raise InvalidRequest("key id must be 1-128 characters of [A-Za-z0-9_.:/-]")
    return Principal(text("name", name), key_id, frozenset(texts("scopes", scopes)))


class Verifier:
    """Checks signed inbound messages (scheme: :mod:`securetrade.verify.scheme`).

    In order: the headers are well formed, the key is known, the timestamp is within
    ``window_ms`` in the past (or ``max_ahead_ms`` in the future) of the receiver's clock,
    the signature is valid (compared in constant time), and the nonce is new: it is
    recorded in ``replay`` until the message would be stale anyway. The replay store is
    written only after the signature verified, so forged messages cannot fill it.
    """

    def __init__(
        self,
        keys: Iterable[InboundKey],
        *,
        replay: ReplayStore | None = None,
        window_ms: int = 30_000,
        max_ahead_ms: int = 5_000,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        whole("window_ms", window_ms, 1, 3_600_000)
        whole("max_ahead_ms", max_ahead_ms, 0, window_ms)
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            raise InvalidRequest("keys must be a list of InboundKey")
        self._keys: dict[str, InboundKey] = {}
        for key in keys:
            instance("each of keys", key, InboundKey, optional=False)
            if key.principal.key_id in self._keys:
                raise InvalidRequest(f"two keys share the id {key.principal.key_id!r}")
            self._keys[key.principal.key_id] = key
        self.replay: ReplayStore = replay if replay is not None else MemoryReplayStore()
        self.window_ms = window_ms
        self.max_ahead_ms = max_ahead_ms
        self._now_ms = now_ms

    def verify(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
    ) -> Principal:
        """The sender of a valid, fresh, first-seen message, or :class:`InboundRejected`.

        ``target`` is the request target exactly as received (path and query), ``headers``
        the request headers (any case; a repeated ``X-ST-*`` header is refused).
        """
        fields = _st_headers(headers)
        key_id = fields.get(HEADER_KEY.lower(), "")
        stamp = fields.get(HEADER_TIMESTAMP.lower(), "")
        nonce = fields.get(HEADER_NONCE.lower(), "")
        signature = fields.get(HEADER_SIGNATURE.lower(), "")
        if not (KEY_ID(key_id) and TIMESTAMP(stamp) and nonce and signature):
            raise InboundRejected("missing or malformed X-ST-* headers", reason="malformed")
        try:
            message = canonical_message(method, target, int(stamp), nonce, key_id, body)
            raw = base64.b64decode(signature, validate=True)
        except (InvalidRequest, binascii.Error, ValueError):
            raise InboundRejected("malformed signed message", reason="malformed") from None
        key = self._keys.get(key_id)
        if key is None:
            raise InboundRejected("unknown key", reason="unknown_key")
        now = self._now_ms()
        timestamp = int(stamp)
        if timestamp < now - self.window_ms or timestamp > now + self.max_ahead_ms:
            raise InboundRejected(
                f"timestamp outside the window ({timestamp - now:+d} ms from now)",
                reason="stale",
            )
        if not key._check(message, raw):
            raise InboundRejected("signature does not verify", reason="bad_signature")
        if not self.replay.remember(
            replay_token(key_id, nonce), timestamp + self.window_ms + 1, now
        ):
            raise InboundRejected("this message id was already used", reason="replayed")
        return key.principal


_HEADERS = "headers must be a mapping of header names to values, or (name, value) pairs, as text"


def _st_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``X-ST-*`` headers by lower-case name; a repeated one is malformed."""
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, Iterable) and not isinstance(headers, (str, bytes)):
        items = headers
    else:
        raise InvalidRequest(_HEADERS)
    found: dict[str, str] = {}
    for pair in items:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidRequest(_HEADERS)
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest(_HEADERS + " (decode bytes as latin-1 first)")
        lowered = name.lower()
        if lowered.startswith("x-st-"):
            if lowered in found:
                raise InboundRejected(f"repeated header {name}", reason="malformed")
            found[lowered] = value.strip()
    return found
