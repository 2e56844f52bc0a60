"""What Kraken's ``EAPI:Invalid signature`` means for a key with or without 2FA.

Kraken answers a missing or wrong one-time password as it answers a bad signature. Both
the native adapter and ``ccxt:kraken`` read it here, so a 2FA key gets
:class:`~securetrade.errors.InvalidOTP` with the same hint whichever path sent it.
"""

from __future__ import annotations

from dataclasses import replace

from ...errors import AuthenticationRejected, InvalidOTP
from ...keys import ApiKey
from ..base import Outcome

__all__ = ["BAD_SIGNATURE", "refine_signature_refusal"]

BAD_SIGNATURE = "EAPI:Invalid signature"  # also the answer to a wrong or missing OTP


def refine_signature_refusal(outcome: Outcome, key: ApiKey, venue: str) -> Outcome:
    """``EAPI:Invalid signature`` on a key with 2FA configured becomes
    :class:`InvalidOTP`; on one without, the message says to check whether the key has
    2FA at Kraken. Any other outcome is returned as it is."""
    error = outcome.error
    if not isinstance(error, AuthenticationRejected) or error.code != BAD_SIGNATURE:
        return outcome
    if key.otp is not None:
        hint = (
            f"{error}: Kraken refused the one-time password of this 2FA key "
            f"({key.otp.kind}): check the {key.otp.kind} OTP set on the key at Kraken "
            "(a TOTP seed that is the key's, and a clock within 30 s)"
        )
        refined: AuthenticationRejected = InvalidOTP(hint, venue=venue, code=error.code)
    else:
        hint = (
            f"{error}: if this key has two-factor authentication at Kraken, give it "
            "its OTP (ApiKey(otp=StaticOtp(...) or TotpOtp(...))); else check the secret"
        )
        refined = AuthenticationRejected(hint, venue=venue, code=error.code)
    return replace(outcome, error=refined)
