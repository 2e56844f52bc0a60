"""Keystore changes that need an operator's one-time code (:mod:`securetrade.mfa`).

* :func:`rotate_wider`: a rotation may only keep or narrow what a key can do
  (:meth:`KeyStore.rotate`); giving the name a key that can do *more* is a decision a
  person confirms, and the audit trail records who.
* :func:`export_keys`: copying keys out of the store (into a new keystore file under
  another passphrase, to move them to another machine) hands their secrets to whoever
  holds that passphrase; it is confirmed the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .._checks import shown
from ..errors import InvalidRequest, KeyNotFound
from .apikey import ApiKey
from .keystore import KdfParams, KeyStore
from .keystore_entries import _OTP, _entry_from, _entry_in, _ring_from
from .keystore_file import _Plain
from .ring import KeyRing
from .secret import Secret

if TYPE_CHECKING:
    from ..mfa import Confirmation, Confirmer

__all__ = ["export_keys", "rotate_wider"]


def rotate_wider(
    store: KeyStore,
    name: str,
    key: ApiKey,
    *,
    confirmer: Confirmer,
    confirmation: Confirmation | None,
    overlap: timedelta | None = None,
) -> KeyRing:
    """Replace the key under ``name`` at once by ``key``, which may do more than it, on an
    operator's unused code; the old key stays as ``previous`` for the overlap."""
    if not isinstance(key, ApiKey):
        raise InvalidRequest("rotate_wider() takes the new key as a securetrade.keys.ApiKey")
    with store._locked() as entries:
        ring = _ring_from(_entry_in(entries, name, store.path), {}, entries)
        current = ring.current
        if current.covers(key):
            raise InvalidRequest(
                f"the new key for {shown(name)} is not wider: use KeyStore.rotate()"
            )
        if (key.venue, key.environment) != (current.venue, current.environment):
            raise InvalidRequest("a rotation keeps the venue and the environment of the key")
        gained = sorted(s.value for s in key.scopes - current.scopes)
        confirmer.confirm(confirmation, "key.widen", key=name, gained=",".join(gained) or "limits")
        window = ring.overlap if overlap is None else overlap
        widened = KeyRing(
            key,
            previous=current,
            retire_at=datetime.now(timezone.utc) + window,
            overlap=window,
            account=ring.account,
        )
        entries[name] = _entry_from(widened, entries)
        store._write(entries)
        return widened


def export_keys(
    store: KeyStore,
    names: Iterable[str],
    path: str | os.PathLike[str],
    passphrase: Secret,
    *,
    confirmer: Confirmer,
    confirmation: Confirmation | None,
    kdf: KdfParams | None = None,
) -> KeyStore:
    """Copy the keys ``names`` (with their rotation state and TOTP seeds) into a new
    keystore at ``path`` under ``passphrase``, on an operator's unused code."""
    wanted = sorted(set(names))
    if not wanted:
        raise InvalidRequest("name at least one key to export")
    with store._locked() as entries:
        missing = [n for n in wanted if n.startswith("@") or n not in entries]
        if missing:
            raise KeyNotFound(f"no key named {', '.join(map(repr, missing))} in {store.path}")
        copied = _Plain()
        for name in wanted:  # a deep copy, as the store's own reader would make it
            copied[name] = json.loads(json.dumps(entries[name]), object_hook=_Plain)
        seeds = entries.get(_OTP)
        used = {
            seed
            for n in wanted
            for slot in ("current", "next", "previous")
            if (seed := _seed_of(copied[n].get(slot))) is not None
        }
        if used and isinstance(seeds, _Plain):
            copied[_OTP] = _Plain({s: seeds[s] for s in used if s in seeds})
    confirmer.confirm(confirmation, "keystore.export", keys=",".join(wanted), to=str(path))
    target = KeyStore.create(path, passphrase, kdf=kdf)
    with target._locked() as fresh:
        fresh.update(copied)
        target._write(fresh)
    return target


def _seed_of(record: object) -> str | None:
    """The TOTP seed entry a stored key refers to, if any."""
    if not isinstance(record, dict):
        return None
    otp = record.get("otp")
    if isinstance(otp, dict) and otp.get("kind") == "totp" and isinstance(otp.get("seed"), str):
        return str(otp["seed"])
    return None
