"""JSON Web Tokens signed with ES256 or EdDSA, built with ``cryptography`` alone.

Coinbase Advanced Trade authenticates each REST request with a fresh token in
``Authorization: Bearer``: header ``{alg, kid, nonce, typ}``, claims
``{sub, iss: "cdp", nbf, exp, uri}`` with ``exp = nbf + 120`` at most and
``uri = "<METHOD> <host><path>"`` (no query string). The random header nonce makes every
token unique, so a captured token is good for one request window only.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from .._checks import LAST_SECOND, as_text, own_methods, shown, whole
from ..errors import InvalidRequest
from ..keys import KeyKind, Secret
from .keyload import load_ec_p256, load_ed25519
from .signers import SecretHolder, _payload, held

__all__ = ["COINBASE_MAX_LIFETIME_S", "JwtSigner", "b64url"]

COINBASE_MAX_LIFETIME_S = 120
_NONCE = re.compile(r"[0-9a-f]{16,64}").fullmatch
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Mapping[str, Any]) -> bytes:
    """The claims as JSON: whether a value serialises is known by serialising it, so the
    encoder's refusal is the check (a NaN, bytes, a key that is not text)."""
    if not isinstance(value, Mapping):
        raise InvalidRequest("claims must be a mapping of text to JSON values")
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequest(
            "claims must be a mapping of text to JSON values (text, whole or finite "
            "numbers, booleans, None, lists and mappings of them)"
        ) from None
    return text.encode()


class JwtSigner(SecretHolder):
    """Signs JWS compact tokens for one key (``key_name`` is the JWT ``kid`` and ``sub``).

    :attr:`KeyKind.EC_P256` keys sign ES256 (raw 64-byte ``r || s``, not DER);
    :attr:`KeyKind.ED25519` keys sign EdDSA. The key is parsed once.
    """

    __slots__ = ("_ec", "_ed", "alg", "key_name")

    def __init__(self, key_name: str, secret: Secret, kind: KeyKind) -> None:
        held(secret)
        if not isinstance(key_name, str) or not key_name or not key_name.isprintable():
            raise InvalidRequest("a JWT key name must be printable, non-empty text")
        self.key_name = key_name
        self._ec: Any = None
        self._ed: Any = None
        if kind is KeyKind.EC_P256:
            self.alg = "ES256"
            self._ec = load_ec_p256(secret)
        elif kind is KeyKind.ED25519:
            self.alg = "EdDSA"
            self._ed = load_ed25519(secret)
        else:
            raise InvalidRequest(f"JWTs are signed with EC P-256 or Ed25519 keys, not {kind.value}")

    def sign(self, payload: bytes) -> str:
        """The base64url signature segment over a JWS signing input."""
        if type(payload) is not bytes:
            payload = _payload(payload)
        if self._ed is not None:
            return b64url(self._ed.sign(payload))
        from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.hazmat.primitives.hashes import SHA256

        r, s = decode_dss_signature(self._ec.sign(payload, ECDSA(SHA256())))
        return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def token(self, claims: Mapping[str, Any], *, nonce: str | None = None) -> str:
        """A compact JWS over ``claims`` (their order is kept), with a random header nonce."""
        nonce = secrets.token_hex(16) if nonce is None else nonce
        if not isinstance(nonce, str) or _NONCE(nonce) is None:
            raise InvalidRequest("a JWT nonce is 16 to 64 lowercase hex digits")
        header = {"alg": self.alg, "kid": self.key_name, "nonce": nonce, "typ": "JWT"}
        signing_input = b64url(_json(header)) + "." + b64url(_json(claims))
        return signing_input + "." + self.sign(signing_input.encode("ascii"))

    def coinbase_token(
        self,
        method: str | None,
        path: str | None,
        now_s: int,
        *,
        host: str = "api.coinbase.com",
        lifetime_s: int = COINBASE_MAX_LIFETIME_S,
        nonce: str | None = None,
    ) -> str:
        """A token for one Coinbase REST request (``method``/``path``) or, with both
        ``None``, a WebSocket token. ``now_s`` is venue time in seconds; the token is
        valid for ``lifetime_s`` (at most 120) from then.
        """
        whole("lifetime_s", lifetime_s, 1, COINBASE_MAX_LIFETIME_S)
        whole("now_s (epoch seconds)", now_s, 0, LAST_SECOND)
        claims: dict[str, Any] = {
            "sub": self.key_name,
            "iss": "cdp",
            "nbf": int(now_s),
            "exp": int(now_s) + lifetime_s,
        }
        if (method is None) != (path is None):
            raise InvalidRequest("give both method and path (REST) or neither (WebSocket)")
        if method is not None and path is not None:
            verb = as_text(method)  # the caller's str subclass is neither hashed nor sent
            if verb is None or verb not in _METHODS:
                raise InvalidRequest(
                    f"method {shown(method)}{own_methods(method)} is not an HTTP method "
                    f"Coinbase uses: one of {', '.join(sorted(_METHODS))}"
                )
            method = verb
            if not isinstance(path, str) or not isinstance(host, str):
                raise InvalidRequest("path and host must be text")
            bare = path.split("?", 1)[0]
            if not re.fullmatch(r"/[!-~]*", bare) or not re.fullmatch(r"[A-Za-z0-9.-]+", host):
                raise InvalidRequest("path must start with '/' and host be a plain host name")
            claims["uri"] = f"{method} {host}{bare}"
        return self.token(claims, nonce=nonce)
