"""Keystore backups that expire, so that a restore cannot bring back an erased key.

A backup is the sealed keystore document (still encrypted) with its creation and expiry
dates, authenticated by an HMAC under a key derived from the keystore's own keys: moving
the expiry invalidates the backup. :func:`restore_backup` refuses one past its expiry with
:class:`~securetrade.errors.BackupExpired`. Pick ``max_age`` shorter than the erasure
deadline (GDPR Art. 12(3): one month), so no backup outlives an erasure for long.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import BackupExpired, InvalidRequest, KeystoreError, KeystoreTampered
from .keystore import KeyStore, _passphrase
from .keystore_file import (
    _atomic_write,
    _b64,
    _decrypt,
    _derive_from_passphrase,
    _Keys,
    _read_document,
    _unb64,
)
from .secret import Secret

__all__ = ["backup_keystore", "restore_backup"]

BACKUP_FORMAT = "securetrade-keystore-backup"


def _mac(keys: _Keys, created: str, expires: str, document: dict[str, Any]) -> str:
    label = hmac.new(keys.check.expose(), b"securetrade-keystore-backup", hashlib.sha256).digest()
    material = json.dumps(
        [created, expires, document], sort_keys=True, separators=(",", ":")
    ).encode()
    return _b64(hmac.new(label, material, hashlib.sha256).digest())


def backup_keystore(
    store: KeyStore,
    path: str | os.PathLike[str],
    *,
    max_age: timedelta,
    now: datetime | None = None,
) -> datetime:
    """Write a backup of ``store`` to ``path`` (0600) that expires after ``max_age``;
    returns the expiry."""
    if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
        raise InvalidRequest("max_age is a positive timedelta (e.g. timedelta(days=30))")
    at = now or datetime.now(timezone.utc)
    expires = at + max_age
    document = _read_document(store.path)
    keys: _Keys = store._keys  # the backup is part of the keystore
    _decrypt(document, keys)  # the file on disk is still ours
    created_text, expires_text = at.isoformat(), expires.isoformat()
    backup = {
        "format": BACKUP_FORMAT,
        "version": 1,
        "created_at": created_text,
        "expires_at": expires_text,
        "keystore": document,
        "mac": _mac(keys, created_text, expires_text, document),
    }
    _atomic_write(Path(path), json.dumps(backup, indent=1).encode() + b"\n")
    return expires


def restore_backup(
    path: str | os.PathLike[str],
    target: str | os.PathLike[str],
    passphrase: str | bytes | Secret,
    *,
    now: datetime | None = None,
) -> KeyStore:
    """Restore the backup at ``path`` to ``target`` (which must not exist) and open it.

    Raises :class:`BackupExpired` past its expiry, :class:`KeystoreTampered` when the
    backup was altered, :class:`WrongPassphrase` when the passphrase does not open it.
    """
    secret = _passphrase(passphrase)
    del passphrase  # only the Secret stays in this frame
    try:
        backup: Any = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot read the keystore backup {path}: {exc}") from None
    if not isinstance(backup, dict) or backup.get("format") != BACKUP_FORMAT:
        raise KeystoreTampered(f"{path} is not a securetrade keystore backup")
    document, created, expires = (
        backup.get("keystore"),
        backup.get("created_at"),
        backup.get("expires_at"),
    )
    if not (isinstance(document, dict) and isinstance(created, str) and isinstance(expires, str)):
        raise KeystoreTampered(f"{path}: the backup is malformed")
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") == "keyring":
        raise KeystoreTampered(f"{path}: only passphrase keystores are restored from a backup")
    keys = _derive_from_passphrase(secret, kdf)
    _decrypt(document, keys)  # WrongPassphrase / KeystoreTampered
    expected = _mac(keys, created, expires, document)
    if not hmac.compare_digest(expected, str(backup.get("mac", ""))):
        raise KeystoreTampered(f"{path}: the backup's dates or content were altered")
    _unb64(document.get("nonce"), "nonce")
    try:
        deadline = datetime.fromisoformat(expires)
    except ValueError:
        raise KeystoreTampered(f"{path}: the backup's expiry is malformed") from None
    at = now or datetime.now(timezone.utc)
    if at >= deadline:
        raise BackupExpired(
            f"{path} expired at {expires}: restoring it could undo an erasure; restore a "
            "newer backup or re-create the keys"
        )
    destination = Path(target)
    if destination.exists():
        raise KeystoreError(f"{destination} exists: restore to a new path, then replace it")
    _atomic_write(destination, json.dumps(document, indent=1).encode() + b"\n")
    return KeyStore.open(destination, secret)
