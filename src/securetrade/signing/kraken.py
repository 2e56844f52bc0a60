"""Kraken's request signature: HMAC-SHA512 over the URI path and a hash of nonce + body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from ..errors import InvalidRequest
from ..keys import Secret
from ..keys.otp import OtpSource
from .signers import SecretHolder, _payload, body_bytes, held

__all__ = ["KrakenSigner"]


class KrakenSigner(SecretHolder):
    """``API-Sign`` for Kraken spot REST.

    ``API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path + SHA256(nonce + postdata)))``

    The secret is base64-decoded and keyed once, here; each request only copies the keyed
    state. A key with 2FA carries its ``otp`` source; the venue adapter writes the code
    into the body before it is signed. ``postdata`` must be the exact body that is sent
    (form or JSON), and ``nonce`` the nonce written inside it: Kraken recomputes the hash
    from what it receives.
    """

    __slots__ = ("_keyed", "otp")

    def __init__(self, secret: Secret, *, otp: OtpSource | None = None) -> None:
        decoded = _decoded(held(secret))
        if decoded is None:  # raised here, outside the except: no context holds the text
            raise InvalidRequest("a Kraken secret must be non-empty base64 text")
        self._keyed = hmac.new(decoded.expose(), digestmod=hashlib.sha512)
        self.otp = otp  # the key's second factor: its code goes into the signed body

    def sign(self, payload: bytes) -> str:
        """Base64 HMAC-SHA512 of an already built message (``path + sha256 digest``)."""
        if type(payload) is not bytes:
            payload = _payload(payload)
        mac = self._keyed.copy()
        mac.update(payload)
        return base64.b64encode(mac.digest()).decode("ascii")

    def sign_request(self, uri_path: str, nonce: int | str, postdata: bytes | str) -> str:
        """The ``API-Sign`` header for one request.

        ``uri_path`` starts at ``/0/private/...`` and includes the query string if one is
        sent; ``postdata`` is the body exactly as sent.
        """
        if type(nonce) is int:  # not bool, and not an object whose str() is anything
            # Within uint64, as Kraken reads it: a 5,000-digit int has no str() either.
            nonce_text = str(nonce) if 0 <= nonce < 2**64 else ""
        elif isinstance(nonce, str):
            nonce_text = nonce
        else:
            nonce_text = ""
        if not (nonce_text.isascii() and nonce_text.isdigit()):
            raise InvalidRequest(
                "a Kraken nonce must be an unsigned 64-bit integer (or its digits): take it "
                "from the key's nonce source"
            )
        if not isinstance(uri_path, str) or not uri_path.startswith("/"):
            raise InvalidRequest("uri_path must be text starting with '/' (/0/private/...)")
        body = body_bytes("postdata", postdata)
        inner = hashlib.sha256(nonce_text.encode("ascii") + body).digest()
        return self.sign(uri_path.encode("utf-8", "surrogatepass") + inner)


def _decoded(secret: Secret) -> Secret | None:
    """The bytes a base64 secret stands for, as a Secret; None when it is not base64."""
    try:
        raw = base64.b64decode(secret.expose(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Secret(raw) if raw else None
