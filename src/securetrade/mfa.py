"""Local confirmation of dangerous operations by an operator's authenticator (TOTP).

Withdrawing, widening a key on rotation, releasing the kill switch and exporting from the
keystore each need a one-time code from a seed the operator enrolled
(:meth:`Confirmer.enroll`). The code is verified here, on this machine, with one 30 s
step of tolerance either side; each code is usable once, across processes (the step it
belongs to is remembered in a shared replay store: SQLite beside the keystore, or Redis),
and every attempt, accepted or refused, goes into the audit trail when one is given.

The seed is a keystore entry of its own (``confirm-<operator>``), so a bot that only holds
API keys in another keystore cannot confirm anything itself: point ``store`` at a keystore
whose passphrase the bot does not have.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._checks import safe_repr, shown
from .errors import ConfirmationRequired, InvalidRequest, KeyNotFound
from .keys.secret import Secret

if TYPE_CHECKING:
    from .keys.keystore import KeyStore
    from .record.trail import AuditTrail
    from .verify.replay import ReplayStore

__all__ = ["ACTIONS", "Confirmation", "Confirmer"]

# The operations that need a confirmation, by the names the audit trail records.
ACTIONS = frozenset({"withdraw", "key.widen", "kill_switch.release", "keystore.export"})
_STEP = 30
_OPERATOR = re.compile(r"[A-Za-z0-9_.-]{1,40}").fullmatch
_CODE = re.compile(r"[0-9]{6}").fullmatch


@dataclass(frozen=True, slots=True, init=False)
class Confirmation:
    """Who confirms, and the code their authenticator shows now."""

    operator: str
    code: Secret

    def __init__(self, operator: str, code: str | Secret) -> None:
        wrapped = code if isinstance(code, Secret) else Secret(str(code).strip() or "-")
        del code
        if not isinstance(operator, str) or not _OPERATOR(operator):
            raise InvalidRequest("operator is 1-40 characters of letters, digits, - _ .")
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "code", wrapped)

    @safe_repr
    def __repr__(self) -> str:
        return f"Confirmation(operator={self.operator!r}, code=<secret>)"


def _seed_name(operator: str) -> str:
    return f"confirm-{operator}"


class Confirmer:
    """Verifies :class:`Confirmation` codes against the operators' enrolled seeds.

    ``replay`` is where used codes are remembered: a :class:`~securetrade.verify.replay.
    ReplayStore` shared by every process that confirms (default: a SQLite file beside the
    keystore). ``audit`` records each attempt.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        replay: ReplayStore | None = None,
        audit: AuditTrail | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from .keys.keystore import KeyStore
        from .verify.replay import SqliteReplayStore

        if not isinstance(store, KeyStore):
            raise InvalidRequest("Confirmer needs an open securetrade.keys.KeyStore")
        self._store = store
        self._replay: Any = replay or SqliteReplayStore(
            store.path.with_name(store.path.name + ".confirmations.sqlite")
        )
        self._audit = audit
        self._clock = clock

    @staticmethod
    def enroll(store: KeyStore, operator: str, *, issuer: str = "securetrade") -> Secret:
        """Make a new seed for ``operator``, store it, and return the ``otpauth://`` URI to
        load into their authenticator (shown once; it holds the seed). Re-enrolling
        replaces the seed: codes of the old one stop working."""
        import pyotp

        Confirmation(operator, "000000")  # validates the name
        seed = Secret(pyotp.random_base32(32))
        store.put_otp_seed(_seed_name(operator), seed)
        uri = pyotp.TOTP(seed.expose().decode("ascii")).provisioning_uri(
            name=operator, issuer_name=issuer
        )
        return Secret(uri)

    def confirm(self, confirmation: Confirmation | None, action: str, **detail: str) -> None:
        """Return if ``confirmation`` is a fresh, unused code of its operator; else raise
        :class:`~securetrade.errors.ConfirmationRequired`. ``detail`` (public values:
        asset, amount, key name) goes into the audit record."""
        if action not in ACTIONS:
            raise InvalidRequest(
                f"unknown action {shown(action)}: one of {', '.join(sorted(ACTIONS))}"
            )
        if confirmation is None:
            self._record(None, action, "missing", detail)
            raise ConfirmationRequired(
                f"{action} needs a one-time code from an enrolled operator's authenticator: "
                "pass confirmation=Confirmation(operator, code) (CLI: --operator and --otp)"
            )
        if not isinstance(confirmation, Confirmation):
            raise InvalidRequest("confirmation must be a securetrade.mfa.Confirmation")
        operator = confirmation.operator
        try:
            seed = self._store.otp_seed(_seed_name(operator))
        except KeyNotFound:
            seed = None
        if seed is None:
            self._record(operator, action, "not_enrolled", detail)
            raise ConfirmationRequired(
                f"operator {shown(operator)} is not enrolled: "
                f"run `securetrade mfa enroll {operator}`"
            )
        now = self._clock()
        step = _matching_step(seed, confirmation.code, now)
        if step is None:
            self._record(operator, action, "wrong_code", detail)
            raise ConfirmationRequired(
                f"the code for {shown(operator)} is wrong or expired; {action} was not done: enter "
                "the code your authenticator shows now (check this machine's clock)"
            )
        token = hashlib.sha256(f"confirm\x00{operator}\x00{step}".encode()).hexdigest()[:32]
        expires_ms = (step + 2) * _STEP * 1000  # past the last moment the code verifies
        try:
            fresh = bool(self._replay.remember(token, expires_ms, int(now * 1000)))
        except Exception as exc:  # a store that cannot say "unused" refuses (fail closed)
            failure = type(exc).__name__
            fresh = None
        if fresh is None:
            self._record(operator, action, "replay_store_failed", detail)
            raise ConfirmationRequired(
                f"the store of used codes could not be read ({failure}); {action} was not "
                "done: check the confirmations file or Redis and try again"
            )
        if not fresh:
            self._record(operator, action, "reused", detail)
            raise ConfirmationRequired(
                f"this code of {shown(operator)} was already used; {action} was not done: wait "
                "for the next code"
            )
        self._record(operator, action, "confirmed", detail)

    def _record(
        self, operator: str | None, action: str, outcome: str, detail: dict[str, str]
    ) -> None:
        if self._audit is None:
            return
        fields: dict[str, Any] = {"action": action, "outcome": outcome, "operator": operator}
        fields.update({k: str(v) for k, v in detail.items()})
        fields["pid"] = os.getpid()
        self._audit.append("confirmation", fields)

    def __repr__(self) -> str:
        return f"Confirmer(store={self._store!r})"


def _matching_step(seed: Secret, code: Secret, now: float) -> int | None:
    """The 30 s step (now, one before or one after) whose code is ``code``, if any."""
    import pyotp

    given = code.expose()
    if not _CODE(given.decode("ascii", "replace")):
        return None
    totp = pyotp.TOTP(seed.expose().decode("ascii"))
    current = int(now // _STEP)
    found: int | None = None
    for step in (current, current - 1, current + 1):  # every one compared: constant work
        if hmac.compare_digest(totp.at(step * _STEP).encode("ascii"), given):
            found = step if found is None else found
    return found
