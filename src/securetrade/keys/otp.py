"""A key's second factor: a static password or a TOTP seed, giving the ``otp`` of a request.

Kraken keys with 2FA need ``otp`` in the signed POST data of every private call: the
static password set on the key, or the current code of an authenticator (TOTP, RFC 6238,
30 s steps). A TOTP seed stored beside the API secret is a second secret, not a second
factor, unless it lives in another protection domain: the keystore keeps it as an entry
of its own (``KeyStore.put_otp_seed``), and a seed may come from anywhere a
:class:`~securetrade.keys.Secret` can.

Codes are computed per request from *venue* time (the client's synced clock), never
cached across a step.
"""

from __future__ import annotations

import base64
import binascii
from typing import NoReturn

from ..errors import InvalidRequest
from .secret import Secret

__all__ = ["OtpSource", "StaticOtp", "TotpOtp"]


class StaticOtp:
    """The static password of a key (Kraken's least secure 2FA method)."""

    __slots__ = ("_password",)
    kind = "static"

    def __init__(self, password: Secret) -> None:
        if not isinstance(password, Secret):
            raise InvalidRequest("a static OTP password must be a securetrade.keys.Secret")
        self._password = password

    @property
    def password(self) -> Secret:
        return self._password

    def code(self, at: float) -> str:
        """The password (the same at any time)."""
        return self._password.expose().decode("utf-8")

    def __repr__(self) -> str:
        return "StaticOtp(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an OTP source cannot be pickled")


class TotpOtp:
    """Codes of an authenticator app from its base32 seed (6 digits, 30 s, SHA-1).

    ``seed_name`` is the keystore entry the seed is kept under (its own entry, never in
    the key's record).
    """

    __slots__ = ("_seed", "seed_name")
    kind = "totp"

    def __init__(self, seed: Secret, *, seed_name: str) -> None:
        if not isinstance(seed, Secret):
            raise InvalidRequest("a TOTP seed must be a securetrade.keys.Secret")
        if not _is_base32(seed):
            raise InvalidRequest("a TOTP seed is base32 text (as authenticator apps show it)")
        self._seed = Secret(seed.expose().upper().replace(b" ", b""))
        self.seed_name = seed_name

    @property
    def seed(self) -> Secret:
        return self._seed

    def code(self, at: float) -> str:
        """The code for the 30 s step holding ``at`` (seconds since the epoch)."""
        import pyotp

        return pyotp.TOTP(self._seed.expose().decode("ascii")).at(int(at))

    def __repr__(self) -> str:
        return f"TotpOtp(seed_name={self.seed_name!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an OTP source cannot be pickled")


OtpSource = StaticOtp | TotpOtp


def _is_base32(seed: Secret) -> bool:
    text = seed.expose().upper().replace(b" ", b"")
    if len(text) < 16:
        return False
    try:
        base64.b32decode(text + b"=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return False
    return True
