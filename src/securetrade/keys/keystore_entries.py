"""The keystore's entries: how each stored thing is written inside the ciphertext.

A named key ring (its current, next and previous keys and their rotation times), a key's
record (scopes, limits, secret, second factor), a gateway's inbound keys, and the names
kept apart from the keys (``@inbound``, ``@oauth``, ``@otp``). Above ``keystore_file``
(whose masked :class:`_Plain` holds every decrypted record); the
:class:`~securetrade.keys.keystore.KeyStore` reads and writes through these.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._checks import as_text, is_text, own_methods, shown
from ..errors import InvalidRequest, KeyNotFound, KeystoreTampered
from .apikey import ApiKey
from .keystore_file import _b64, _Plain
from .otp import OtpSource, StaticOtp, TotpOtp
from .ring import DEFAULT_OVERLAP, KeyRing
from .secret import Secret

__all__ = ["InboundEntry"]

_INBOUND_ID = re.compile(r"[A-Za-z0-9_.:/-]{1,128}").fullmatch


def _inbound_id(value: object) -> bool:
    """Whether ``value`` is an inbound key id or tenant: 1-128 of ``[A-Za-z0-9_.:/-]``
    (a str subclass of its own ``==``, hash or repr is not one: see :func:`as_text`)."""
    plain = as_text(value)
    return plain is not None and _INBOUND_ID(plain) is not None


def _check_inbound_id(key_id: object) -> str:
    """``key_id`` as a plain str: the table is looked up and keyed with it, never with the
    caller's object."""
    plain = as_text(key_id)
    if plain is None or _INBOUND_ID(plain) is None:
        raise InvalidRequest(
            f"an inbound key id is 1-128 characters of [A-Za-z0-9_.:/-]{own_methods(key_id)}"
        )
    return plain


# --- records ---------------------------------------------------------------------------------

_INBOUND = "@inbound"  # not a valid key name, so it never collides with one
_OAUTH = "@oauth"  # OAuth credentials (securetrade.oauth)
_OTP = "@otp"  # TOTP seeds, each its own entry (securetrade.mfa)


def _key_names(entries: _Plain) -> list[str]:
    return sorted(name for name in entries if not name.startswith("@"))


@dataclass(frozen=True, slots=True)
class InboundEntry:
    """A sender's key as a gateway holds it (see :meth:`KeyStore.add_inbound`)."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    networks: tuple[str, ...]
    secret: Secret | None  # HMAC-SHA256
    public_key: bytes | None  # Ed25519, raw 32 bytes


def _scope_list(scopes: Iterable[str]) -> list[str]:
    if isinstance(scopes, (str, bytes)) or not isinstance(scopes, Iterable):
        raise InvalidRequest("scopes must be a list of strings, such as ['read', 'trade']")
    listed = list(scopes)
    if not all(isinstance(s, str) and s and s.isprintable() for s in listed):
        raise InvalidRequest("each scope must be a non-empty printable string")
    return sorted(set(listed))


def _networks(networks: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(networks, (str, bytes)) or not isinstance(networks, Iterable):
        raise InvalidRequest("networks must be a list of CIDR strings, such as ['192.0.2.0/24']")
    try:
        return [ipaddress.ip_network(n) for n in networks]
    except (TypeError, ValueError):
        raise InvalidRequest("networks must be CIDR blocks like 192.0.2.0/24") from None


def _within(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    among: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    """Whether ``net`` lies inside one of ``among`` (anything lies inside no limit at all)."""
    return not among or any(
        net.version == o.version and net.subnet_of(o)  # type: ignore[arg-type]
        for o in among
    )


def _inbound_record(
    key_id: str,
    tenant: str,
    scopes: Iterable[str],
    secret: Secret | None,
    public_key: bytes | None,
    networks: Iterable[str],
) -> _Plain:
    if not _inbound_id(key_id) or not _inbound_id(tenant):
        wrong = tenant if _inbound_id(key_id) else key_id
        raise InvalidRequest(
            f"key id and tenant must be 1-128 characters of [A-Za-z0-9_.:/-]{own_methods(wrong)}"
        )
    if (secret is None) == (public_key is None):
        raise InvalidRequest("give an inbound key either secret= (HMAC) or public_key= (Ed25519)")
    if secret is not None and not isinstance(secret, Secret):
        raise InvalidRequest("secret= must be a securetrade.keys.Secret")
    if secret is not None and len(secret) < 16:
        raise InvalidRequest("an HMAC secret needs at least 16 bytes")
    if public_key is not None and (not isinstance(public_key, bytes) or len(public_key) != 32):
        raise InvalidRequest("public_key= must be the raw 32-byte Ed25519 public key")
    return _Plain(
        tenant=as_text(tenant),
        scopes=_scope_list(scopes),
        networks=[str(n) for n in _networks(networks)],
        kind="hmac" if secret is not None else "ed25519",
        secret=None if secret is None else _b64(secret.expose()),
        public_key=None if public_key is None else _b64(public_key),
    )


def _inbound_entries(table: _Plain) -> list[InboundEntry] | None:
    try:
        return [
            InboundEntry(
                key_id=key_id,
                tenant=str(record["tenant"]),
                scopes=tuple(record["scopes"]),
                networks=tuple(record["networks"]),
                secret=None
                if record["secret"] is None
                else Secret(base64.b64decode(record["secret"], validate=True)),
                public_key=None
                if record["public_key"] is None
                else base64.b64decode(record["public_key"], validate=True),
            )
            for key_id, record in sorted(table.items())
        ]
    except (KeyError, TypeError, ValueError):
        return None


def _otp_record(key: ApiKey, entries: _Plain) -> _Plain | None:
    """A key's second factor as stored: a static password inline (encrypted with the key),
    a TOTP seed by the name of its own entry, which is written here."""
    otp = key.otp
    if otp is None:
        return None
    if isinstance(otp, StaticOtp):
        return _Plain(kind="static", password=_b64(otp.password.expose()))
    _check_name(otp.seed_name)
    entries.setdefault(_OTP, _Plain())[otp.seed_name] = _b64(otp.seed.expose())
    return _Plain(kind="totp", seed=otp.seed_name)


def _otp_from(record: Any, entries: _Plain) -> OtpSource | None:
    if record is None:
        return None
    if record["kind"] == "static":
        return StaticOtp(Secret(base64.b64decode(record["password"], validate=True)))
    seeds = entries[_OTP]
    name = record["seed"]
    return TotpOtp(Secret(base64.b64decode(seeds[name], validate=True)), seed_name=name)


def _record(key: ApiKey, entries: _Plain) -> _Plain:
    return _Plain(
        venue=key.venue,
        key_id=key.key_id,
        kind=key.kind.value,
        environment=key.environment.value,
        scopes=sorted(s.value for s in key.scopes),
        symbols=None if key.symbols is None else sorted(key.symbols),
        max_notional=None if key.max_notional is None else str(key.max_notional),
        max_quantity=None if key.max_quantity is None else str(key.max_quantity),
        expires_at=None if key.expires_at is None else key.expires_at.isoformat(),
        withdraw_addresses=sorted(key.withdraw_addresses),
        secret=_b64(key.secret.expose()),
        passphrase=None if key.passphrase is None else _b64(key.passphrase.expose()),
        otp=_otp_record(key, entries),
    )


def _key_from(record: _Plain, entries: _Plain) -> ApiKey:
    return ApiKey(
        record["venue"],
        record["key_id"],
        Secret(base64.b64decode(record["secret"], validate=True)),
        kind=record["kind"],
        environment=record["environment"],
        scopes=record["scopes"],
        symbols=record["symbols"],
        max_notional=record["max_notional"],
        max_quantity=record["max_quantity"],
        expires_at=_time(record["expires_at"]),
        withdraw_addresses=record["withdraw_addresses"],
        passphrase=None
        if record["passphrase"] is None
        else Secret(base64.b64decode(record["passphrase"], validate=True)),
        otp=_otp_from(record.get("otp"), entries),
    )


def _entry_in(entries: _Plain, name: str, path: Path) -> _Plain:
    _name_text(name)
    entry = entries.get(name) if not name.startswith("@") else None
    if not isinstance(entry, _Plain):
        raise KeyNotFound(f"no key named {shown(name)} in {path}")
    return entry


def _ring_from(entry: _Plain, options: dict[str, Any], entries: _Plain) -> KeyRing:
    """The ring an entry describes. A malformed entry is reported as tampering, raised
    outside the ``except`` block so that the error holds no decrypted field."""
    ring = _try_ring_from(entry, options, entries)
    if ring is None:
        raise KeystoreTampered("a stored key is malformed: the keystore was altered")
    return ring


def _try_ring_from(entry: _Plain, options: dict[str, Any], entries: _Plain) -> KeyRing | None:
    try:
        return KeyRing(
            _key_from(entry["current"], entries),
            next=None if entry.get("next") is None else _key_from(entry["next"], entries),
            activate_at=_time(entry.get("activate_at")),
            previous=None
            if entry.get("previous") is None
            else _key_from(entry["previous"], entries),
            retire_at=_time(entry.get("retire_at")),
            overlap=timedelta(
                seconds=float(entry.get("overlap_s", DEFAULT_OVERLAP.total_seconds()))
            ),
            account=entry.get("account"),
            **options,
        )
    except (KeyError, TypeError, ValueError, OverflowError):  # binascii.Error and
        return None  # InvalidRequest are ValueErrors: a field the store never writes


def _entry_from(ring: KeyRing, entries: _Plain) -> _Plain:
    previous, next_key = ring.previous, ring.next
    activate_at, retire_at = ring.activate_at, ring.retire_at
    return _Plain(
        account=ring.account,
        overlap_s=ring.overlap.total_seconds(),
        current=_record(ring.current, entries),
        next=None if next_key is None else _record(next_key, entries),
        activate_at=None if activate_at is None else activate_at.isoformat(),
        previous=None if previous is None else _record(previous, entries),
        retire_at=None if retire_at is None else retire_at.isoformat(),
    )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _check_name(name: str) -> None:
    if (
        not is_text(name)  # a str subclass redefining == or hash is refused here too
        or len(name) > 64
        or not all(c.isalnum() or c in "-_." for c in name)
    ):
        raise InvalidRequest("a key name is 1-64 characters of letters, digits, - _ .")


def _name_text(name: object) -> str:
    """A name to look up: text (a name of the wrong form is simply not found)."""
    if not isinstance(name, str) or (type(name) is not str and not is_text(name, empty=True)):
        raise InvalidRequest("a key name is text: 1-64 characters of letters, digits, - _ .")
    return str.__str__(name)  # a plain str: the lookup hashes and compares it
