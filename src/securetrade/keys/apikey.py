"""``ApiKey``: a credential that can do only what it was granted, and can only be narrowed."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from .._checks import Choice, instance, shown, text, texts
from ..errors import InvalidRequest, ScopeError
from ..models import to_decimal
from .otp import OtpSource, StaticOtp, TotpOtp
from .secret import Secret

__all__ = ["ApiKey", "Environment", "KeyKind", "Scope"]


class Scope(str, Choice):
    """What a key may do. Each venue operation declares the one it needs.

    ``MARGIN``, ``FUTURES`` and ``OPTIONS`` are the separate switches venues offer for
    borrowing and derivatives; a spot bot should hold none of them.
    """

    READ = "read"
    TRADE = "trade"
    CANCEL = "cancel"
    WITHDRAW = "withdraw"
    TRANSFER = "transfer"
    MARGIN = "margin"
    FUTURES = "futures"
    OPTIONS = "options"


class Environment(str, Choice):
    """Where a key is valid; live keys and test keys are never interchangeable."""

    LIVE = "live"
    TESTNET = "testnet"
    PAPER = "paper"
    SIMULATED = "simulated"


class KeyKind(str, Choice):
    """The kind of secret, which decides the signature algorithm."""

    HMAC = "hmac"
    ED25519 = "ed25519"
    RSA = "rsa"
    EC_P256 = "ec-p256"


#: Brokers whose keys are paper (practice) keys unless ``environment="live"`` says otherwise,
#: as their own SDKs default (alpaca-py ``paper=True``); the exchanges' keys default to live.
PAPER_FIRST = frozenset({"alpaca", "oanda"})


class ApiKey:
    """One venue credential with its scopes and limits.

    ``secret`` is an HMAC secret (text) for :attr:`KeyKind.HMAC`, or a PEM (PKCS#8) private
    key for the asymmetric kinds; ``passphrase`` is the extra secret some venues (OKX,
    KuCoin) issue with a key. ``symbols``, ``max_notional`` and ``max_quantity`` bound
    what the key may trade; ``expires_at`` ends its use. A key is immutable:
    :meth:`restrict` returns a narrower copy, and nothing returns a wider one.
    """

    __slots__ = (
        "environment",
        "expires_at",
        "key_id",
        "kind",
        "max_notional",
        "max_quantity",
        "otp",
        "passphrase",
        "scopes",
        "secret",
        "symbols",
        "venue",
        "withdraw_addresses",
    )

    venue: str
    key_id: str
    secret: Secret
    kind: KeyKind
    scopes: frozenset[Scope]
    environment: Environment
    symbols: frozenset[str] | None
    max_notional: Decimal | None
    max_quantity: Decimal | None
    expires_at: datetime | None
    withdraw_addresses: frozenset[str]
    passphrase: Secret | None
    otp: OtpSource | None

    def __init__(
        self,
        venue: str,
        key_id: str,
        secret: str | bytes | Secret,
        *,
        scopes: Iterable[Scope | str] = (Scope.READ,),
        kind: KeyKind | str = KeyKind.HMAC,
        environment: Environment | str | None = None,
        symbols: Iterable[str] | None = None,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        expires_at: datetime | None = None,
        withdraw_addresses: Iterable[str] = (),
        passphrase: str | bytes | Secret | None = None,
        otp: OtpSource | None = None,
    ) -> None:
        # First, before anything can raise: only Secrets stay in this frame, so a traceback
        # rendered with its locals (Sentry, Rich, capture_locals) shows no secret.
        had_passphrase = passphrase is not None
        wrapped, wrapped_passphrase = _wrap(secret), _wrap(passphrase)
        del secret, passphrase
        if wrapped is None:
            raise InvalidRequest("secret must be non-empty text, bytes or a Secret")
        if had_passphrase and wrapped_passphrase is None:
            raise InvalidRequest("passphrase must be non-empty text, bytes or a Secret")
        text("venue", venue)
        if any(c.isspace() for c in text("key_id", key_id)):
            raise InvalidRequest("key_id must be non-empty printable text without spaces")
        expires_at = instance("expires_at", expires_at, datetime)
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidRequest("expires_at must be timezone-aware")
        values: dict[str, Any] = {
            "venue": venue,
            "key_id": key_id,
            "secret": wrapped,
            "kind": _member(KeyKind, kind),
            "scopes": _scopes(scopes),
            "environment": _member(Environment, environment)
            if environment is not None
            else (Environment.PAPER if venue in PAPER_FIRST else Environment.LIVE),
            "symbols": None if symbols is None else _text_set("symbols", symbols),
            "max_notional": None
            if max_notional is None
            else to_decimal(max_notional, field="max_notional"),
            "max_quantity": None
            if max_quantity is None
            else to_decimal(max_quantity, field="max_quantity"),
            "expires_at": expires_at,
            "withdraw_addresses": _text_set("withdraw_addresses", withdraw_addresses),
            "passphrase": wrapped_passphrase,
            "otp": _otp(otp),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("ApiKey is immutable; use restrict() to derive a narrower key")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("ApiKey is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("an ApiKey cannot be pickled; store keys with the encrypted keystore")

    def __repr__(self) -> str:
        if not hasattr(self, "environment"):  # the last field set: still being built
            return "ApiKey(<incomplete>)"  # a traceback rendering locals shows this
        scopes = ",".join(sorted(s.value for s in self.scopes))
        return (
            f"ApiKey(venue={self.venue!r}, key_id={self.key_id_hint!r}, kind={self.kind.value}, "
            f"environment={self.environment.value}, scopes=[{scopes}])"
        )

    @property
    def key_id_hint(self) -> str:
        """The key id with its middle hidden: enough to recognise it, not to use it."""
        if len(self.key_id) <= 8:
            return self.key_id[:2] + "…"
        return f"{self.key_id[:4]}…{self.key_id[-4:]}"

    def restrict(
        self,
        *,
        scopes: Iterable[Scope | str] | None = None,
        symbols: Iterable[str] | None = None,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKey:
        """Return a copy that can do at most what this key can. Widening raises ScopeError."""
        new_scopes = self.scopes if scopes is None else _scopes(scopes)
        if not new_scopes <= self.scopes:
            extra = ", ".join(sorted(s.value for s in new_scopes - self.scopes))
            raise ScopeError(f"restrict() cannot add scopes this key lacks: {extra}")
        new_symbols = self.symbols
        if symbols is not None:
            wanted = _text_set("symbols", symbols)
            if self.symbols is not None and not wanted <= self.symbols:
                raise ScopeError("restrict() cannot allow symbols this key may not trade")
            new_symbols = wanted
        return ApiKey(
            self.venue,
            self.key_id,
            self.secret,
            scopes=new_scopes,
            kind=self.kind,
            environment=self.environment,
            symbols=new_symbols,
            max_notional=_narrow("max_notional", self.max_notional, max_notional),
            max_quantity=_narrow("max_quantity", self.max_quantity, max_quantity),
            expires_at=_narrow_time(self.expires_at, expires_at),
            withdraw_addresses=self.withdraw_addresses,
            passphrase=self.passphrase,
            otp=self.otp,
        )

    def public_parts(self) -> dict[str, str]:
        """What may be shown about this key: everything but its secrets.

        The key id appears as its hint only. For asymmetric kinds the public key (PEM) is
        included, since that is what gets registered at the venue.
        """
        parts = {
            "venue": self.venue,
            "environment": self.environment.value,
            "key id": self.key_id_hint,
            "kind": self.kind.value,
            "scopes": ", ".join(sorted(s.value for s in self.scopes)) or "none",
            "symbols": "any" if self.symbols is None else ", ".join(sorted(self.symbols)),
            "max notional": "none" if self.max_notional is None else str(self.max_notional),
            "max quantity": "none" if self.max_quantity is None else str(self.max_quantity),
            "expires": "never" if self.expires_at is None else self.expires_at.isoformat(),
            "withdraw to": ", ".join(sorted(self.withdraw_addresses)) or "nowhere",
            "passphrase": "set" if self.passphrase is not None else "none",
            "otp": "none" if self.otp is None else self.otp.kind,
        }
        if self.kind is not KeyKind.HMAC:
            parts["public key"] = _public_pem(self.secret)
        return parts

    def covers(self, other: ApiKey) -> bool:
        """True when ``other`` can do nothing this key cannot (same venue and environment).

        A key ring uses it so that a rotation can replace a key but never widen it.
        """
        instance("other", other, ApiKey, optional=False)
        return (
            other.venue == self.venue
            and other.environment is self.environment
            and other.scopes <= self.scopes
            and (
                self.symbols is None
                or (other.symbols is not None and other.symbols <= self.symbols)
            )
            and _at_most(other.max_notional, self.max_notional)
            and _at_most(other.max_quantity, self.max_quantity)
            and other.withdraw_addresses <= self.withdraw_addresses
        )

    def require(
        self,
        scope: Scope,
        *,
        symbol: str | None = None,
        quantity: Decimal | None = None,
        notional: Decimal | None = None,
        address: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Raise :class:`ScopeError` unless this key may do ``scope`` with these values."""
        if type(scope) is not Scope:  # its value ("read") is taken; anything else refused
            scope = Scope(scope)
        moment = datetime.now(timezone.utc) if now is None else instance("now", now, datetime)
        if self.expires_at is not None and moment >= self.expires_at:
            raise ScopeError(f"key {self.key_id_hint} expired at {self.expires_at.isoformat()}")
        if scope not in self.scopes:
            granted = ", ".join(sorted(s.value for s in self.scopes)) or "nothing"
            raise ScopeError(
                f"key {self.key_id_hint} lacks the '{scope.value}' scope (granted: {granted})"
            )
        if symbol is not None and self.symbols is not None and symbol not in self.symbols:
            raise ScopeError(f"key {self.key_id_hint} may not trade {symbol}")
        if quantity is not None and self.max_quantity is not None and quantity > self.max_quantity:
            raise ScopeError(f"quantity {quantity} exceeds the key's limit {self.max_quantity}")
        if notional is not None and self.max_notional is not None and notional > self.max_notional:
            raise ScopeError(f"notional {notional} exceeds the key's limit {self.max_notional}")
        if scope is Scope.WITHDRAW and address not in self.withdraw_addresses:
            raise ScopeError("withdrawal address is not on this key's allowlist")


_E = TypeVar("_E", bound=enum.Enum)


def _otp(value: object) -> OtpSource | None:
    """The key's second factor (``otp=``): a StaticOtp, a TotpOtp, or none."""
    if value is not None and not isinstance(value, (StaticOtp, TotpOtp)):
        raise InvalidRequest("otp= takes a securetrade.keys.otp.StaticOtp or TotpOtp")
    return value


def _wrap(value: object) -> Secret | None:
    """``value`` as a :class:`Secret`, or None when it cannot be one. It never raises, so
    the caller can wrap every secret argument before reporting a bad one."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, (str, bytes)) and value:
        try:
            return Secret(value)
        except (InvalidRequest, UnicodeEncodeError):  # text no encoding can carry
            return None
    return None


def _member(kind: type[_E], value: Any) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidRequest(f"{shown(value)} is not a {kind.__name__} ({allowed})") from None


def _scopes(values: Iterable[Scope | str]) -> frozenset[Scope]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidRequest("scopes must be a list of scopes, not one string")
    return frozenset(_member(Scope, v) for v in values)


def _text_set(name: str, values: Iterable[str]) -> frozenset[str]:
    """A set of names; one bare string would otherwise become a set of its characters."""
    return frozenset(texts(name, values))


def _narrow(name: str, current: Decimal | None, wanted: Any) -> Decimal | None:
    if wanted is None:
        return current
    value = to_decimal(wanted, field=name)
    if current is not None and value > current:
        raise ScopeError(f"restrict() cannot raise {name} above {current}")
    return value


def _public_pem(secret: Secret) -> str:
    """The PEM public key of an asymmetric secret, or a note when it does not parse."""
    import base64

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        if secret.expose().lstrip().startswith(b"-----BEGIN"):
            private = serialization.load_pem_private_key(secret.expose(), password=None)
        else:
            private = serialization.load_der_private_key(
                base64.b64decode(secret.expose(), validate=True), password=None
            )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "(the secret is not a PKCS#8 private key)"
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
        .strip()
    )


def _at_most(value: Decimal | None, bound: Decimal | None) -> bool:
    return bound is None or (value is not None and value <= bound)


def _narrow_time(current: datetime | None, wanted: datetime | None) -> datetime | None:
    if wanted is None:
        return current
    if not isinstance(wanted, datetime):
        raise InvalidRequest("expires_at must be a timezone-aware datetime")
    if wanted.tzinfo is None:
        raise InvalidRequest("expires_at must be timezone-aware")
    if current is not None and wanted > current:
        raise ScopeError("restrict() cannot extend a key's expiry")
    return wanted
