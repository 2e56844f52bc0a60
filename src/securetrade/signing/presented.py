"""Credentials presented as they are, not signatures: the brokers' request authentication.

Alpaca checks a key id and its secret sent in two headers on every request; OANDA checks a
bearer token. Nothing is signed, so there is no payload to cover: the credential itself
travels, over pinned TLS only, and the headers that carry it are on the redaction list
(``transport/redaction.py``: ``APCA-API-KEY-ID``, ``APCA-API-SECRET-KEY``,
``Authorization``).

Both hold the secret as a :class:`~securetrade.keys.Secret` and render it only into the
header tuple of the request being written.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..keys import Secret
from .signers import SecretHolder

__all__ = ["BearerToken", "HeaderAuth", "KeyHeaders"]

Headers = tuple[tuple[str, str], ...]


@runtime_checkable
class HeaderAuth(Protocol):
    """What a broker adapter asks of its request authentication: the headers to add. Any
    object with these methods will do (an OAuth bearer token that refreshes itself)."""

    def headers(self, key_id: str) -> Headers: ...

    def sign(self, payload: bytes) -> str: ...


class KeyHeaders(SecretHolder):
    """A key id and its secret, each in its own header (Alpaca's ``APCA-API-*``)."""

    __slots__ = ("_id_header", "_secret", "_secret_header")

    def __init__(self, secret: Secret, *, id_header: str, secret_header: str) -> None:
        self._secret = secret
        self._id_header = id_header
        self._secret_header = secret_header

    def sign(self, payload: bytes) -> str:
        """The value of the secret's header: the venue checks the secret, not a signature
        over ``payload``, so every payload gets the same value."""
        return self._secret.expose().decode("utf-8")

    def headers(self, key_id: str) -> Headers:
        return ((self._id_header, key_id), (self._secret_header, self.sign(b"")))


class BearerToken(SecretHolder):
    """A bearer token in ``Authorization`` (OANDA's personal access token, an OAuth
    access token); the key id is not sent, the token names the user."""

    __slots__ = ("_secret",)

    def __init__(self, secret: Secret) -> None:
        self._secret = secret

    def sign(self, payload: bytes) -> str:
        """The ``Authorization`` value; the same for every payload (nothing is signed)."""
        return "Bearer " + self._secret.expose().decode("utf-8")

    def headers(self, key_id: str) -> Headers:
        return (("Authorization", self.sign(b"")),)
