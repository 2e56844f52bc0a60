"""Data keys per (subject, retention class), wrapped by one master key, shredded on demand.

The master key (32 random bytes in a 0600 file, or given as a :class:`Secret`) yields, by
HKDF, the pepper of the keyed pseudonyms (``subject_ref``) and the key-encryption key that
wraps every data key. The vault stores only ``subject_ref``, never the subject's id, and
each data key wrapped (AES-GCM, bound to its subject and class). Shredding deletes the row
with SQLite's ``secure_delete`` on, checkpoints the WAL to zero bytes and vacuums, so the
wrapped key is left in no page, free list or log: without it the audit ciphertext sealed
under it can never be read again, while its bytes (and so the hash chain) stay unchanged.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .. import _fork
from .._checks import epoch, instance, safe_repr, text
from .._checks import path as checked_path
from .._sqlite import retry_locked, wal
from ..errors import InvalidRequest
from ..keys.secret import Secret
from .tags import pseudonym

__all__ = ["DataKey", "DataKeys", "PrivacyKeys"]


class PrivacyKeys:
    """The pepper of ``subject_ref`` and the key that wraps data keys, from one master key.

    Keep the master key in the platform's secret store; losing it loses every personal
    field in the trail (the trading facts stay readable and the chain still verifies).
    """

    __slots__ = ("_kek", "_pepper")

    def __init__(self, master: Secret) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not isinstance(master, Secret) or len(master) < 32:
            raise InvalidRequest("the privacy master key is a Secret of at least 32 bytes")

        def derive(label: bytes) -> Secret:
            return Secret(
                HKDF(hashes.SHA256(), 32, salt=None, info=b"securetrade-privacy/" + label).derive(
                    master.expose()
                )
            )

        self._pepper = derive(b"pepper")
        self._kek = derive(b"kek")

    @classmethod
    def generate(cls, path: str | os.PathLike[str]) -> PrivacyKeys:
        """Write a new master key to ``path`` (mode 0600; refuses to overwrite)."""
        target = Path(checked_path("the privacy master key path", path))
        material = secrets.token_bytes(32)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise InvalidRequest(
                f"{target} already exists: keep it, or remove it on purpose"
            ) from None
        except OSError as exc:
            raise InvalidRequest(
                f"cannot create the privacy master key {target}: {exc.strerror}; give a path "
                "in a directory you can write"
            ) from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(material.hex().encode("ascii") + b"\n")
        return cls(Secret(material))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PrivacyKeys:
        """Read a master key written by :meth:`generate` (refused if others may read it)."""
        target = Path(checked_path("the privacy master key path", path))
        try:
            info = target.stat()
            raw = Secret(target.read_bytes().strip())
        except OSError as exc:
            raise InvalidRequest(
                f"cannot read the privacy master key {target}: {exc.strerror}"
            ) from None
        if os.name == "posix" and info.st_mode & 0o077:
            raise InvalidRequest(
                f"{target} has mode {stat.filemode(info.st_mode)}: run chmod 600 {target}"
            )
        material = _unhex(raw)
        if material is None:
            raise InvalidRequest(f"{target} is not a privacy master key (64 hex digits)")
        return cls(material)

    def subject_ref(self, subject: str) -> str:
        """The keyed pseudonym that stands for ``subject`` in the trail, logs and spans."""
        if not isinstance(subject, str) or not subject:
            raise InvalidRequest("a subject is a non-empty string (a follower or account id)")
        return pseudonym(self._pepper.expose(), subject)

    @property
    def pepper(self) -> bytes:
        """The key of the subject pseudonyms (``subject_ref``), derived from the master key."""
        return self._pepper.expose()

    def wrap(self, dek: Secret, aad: bytes) -> tuple[bytes, bytes]:
        """A data key sealed for storage: AES-GCM under the derived key, with ``aad``
        binding it to its row; returns the nonce and the ciphertext."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        instance("dek", dek, Secret, optional=False)
        instance("aad", aad, bytes, optional=False)
        nonce = secrets.token_bytes(12)
        return nonce, AESGCM(self._kek.expose()).encrypt(nonce, dek.expose(), aad)

    def unwrap(self, nonce: bytes, wrapped: bytes, aad: bytes) -> Secret | None:
        """A data key from its AES-GCM wrapping under the derived key; None if it does not
        open (another key, or altered)."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        for name, value in (("nonce", nonce), ("wrapped", wrapped), ("aad", aad)):
            instance(name, value, bytes, optional=False)
        try:
            return Secret(AESGCM(self._kek.expose()).decrypt(nonce, wrapped, aad))
        except (InvalidTag, ValueError):
            return None

    def __repr__(self) -> str:
        return "PrivacyKeys(<master key>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("PrivacyKeys cannot be pickled")


def _unhex(raw: Secret) -> Secret | None:
    try:
        material = bytes.fromhex(raw.expose().decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return Secret(material) if len(material) >= 32 else None


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key's public facts (never the key): whose, which class, until when."""

    subject_ref: str
    retention_class: str
    created_at: float
    retain_until: float  # when the class's retention ends: shredded by the sweep after it
    restricted_at: float | None  # an erasure was asked: held only for the legal duty

    @property
    def restricted(self) -> bool:
        """Whether the key is kept only until its date (its subject asked for erasure)."""
        return self.restricted_at is not None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS data_keys (
    subject_ref TEXT NOT NULL,
    retention_class TEXT NOT NULL,
    nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL,
    created_at REAL NOT NULL,
    retain_until REAL NOT NULL,
    restricted_at REAL,
    PRIMARY KEY (subject_ref, retention_class)
);
"""


class DataKeys:
    """The vault of data keys: a SQLite file (WAL) with ``secure_delete`` on."""

    def __init__(self, path: str | Path, keys: PrivacyKeys) -> None:
        if not isinstance(keys, PrivacyKeys):
            raise InvalidRequest("DataKeys needs the PrivacyKeys that wrap its data keys")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            with self._lock:
                self._db.execute("PRAGMA secure_delete=ON")
                wal(self._db)
                retry_locked(self._db, lambda: self._db.executescript(_SCHEMA), 30.0)
        except sqlite3.DatabaseError as exc:
            raise InvalidRequest(
                f"{self.path} cannot hold a data-key vault ({exc}): give a new path or the "
                "vault file itself"
            ) from None
        _fork.watch(self)  # a forked child refuses to use it

    _inherited = False  # set in a child forked while it was open

    def _after_fork(self) -> None:
        """In a child forked while this was open (see :mod:`securetrade._fork`): every call
        raises :class:`~securetrade.errors.InheritedAcrossFork` before touching the file,
        and the parent's SQLite connection is parked, never used or closed. Refused, not
        reopened: it goes with the audit trail, which refuses too, and a vault in memory
        reopened would hand out new data keys the parent never sees."""
        _fork.disown(self, "data-key vault (DataKeys)")

    @staticmethod
    def _aad(subject_ref: str, retention_class: str) -> bytes:
        return f"securetrade-dek|{subject_ref}|{retention_class}".encode()

    def key_for(self, subject_ref: str, retention_class: str, retain_until: float) -> Secret:
        """The data key of (subject, class), made on first use; ``retain_until`` only ever
        moves later (a new record extends its class's retention)."""
        _pair(subject_ref, retention_class)
        epoch("retain_until", retain_until)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT nonce, wrapped, retain_until FROM data_keys "
                    "WHERE subject_ref = ? AND retention_class = ?",
                    (subject_ref, retention_class),
                ).fetchone()
                if row is None:
                    dek = Secret(secrets.token_bytes(32))
                    nonce, wrapped = self.keys.wrap(dek, self._aad(subject_ref, retention_class))
                    self._db.execute(
                        "INSERT INTO data_keys (subject_ref, retention_class, nonce, wrapped, "
                        "created_at, retain_until) VALUES (?, ?, ?, ?, ?, ?)",
                        (subject_ref, retention_class, nonce, wrapped, time.time(), retain_until),
                    )
                else:
                    found = self.keys.unwrap(
                        bytes(row[0]), bytes(row[1]), self._aad(subject_ref, retention_class)
                    )
                    if found is None:
                        raise InvalidRequest(
                            "a data key does not open with this master key: wrong "
                            "--master-key, or the vault was altered"
                        )
                    dek = found
                    if retain_until > float(row[2]):
                        self._db.execute(
                            "UPDATE data_keys SET retain_until = ? "
                            "WHERE subject_ref = ? AND retention_class = ?",
                            (retain_until, subject_ref, retention_class),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dek

    def get(self, subject_ref: str, retention_class: str) -> Secret | None:
        """The data key, or None once shredded (or never made)."""
        _pair(subject_ref, retention_class)
        with self._lock:
            row = self._db.execute(
                "SELECT nonce, wrapped FROM data_keys "
                "WHERE subject_ref = ? AND retention_class = ?",
                (subject_ref, retention_class),
            ).fetchone()
        if row is None:
            return None
        return self.keys.unwrap(
            bytes(row[0]), bytes(row[1]), self._aad(subject_ref, retention_class)
        )

    def entries(self, subject_ref: str | None = None) -> list[DataKey]:
        """Every data key's subject reference, class and dates (never the key)."""
        query = (
            "SELECT subject_ref, retention_class, created_at, retain_until, restricted_at "
            "FROM data_keys"
        )
        params: tuple[str, ...] = ()
        if subject_ref is not None:
            text("subject_ref", subject_ref)
            query += " WHERE subject_ref = ?"
            params = (subject_ref,)
        with self._lock:
            rows = self._db.execute(
                query + " ORDER BY subject_ref, retention_class", params
            ).fetchall()
        return [
            DataKey(
                str(r[0]),
                str(r[1]),
                float(r[2]),
                float(r[3]),
                None if r[4] is None else float(r[4]),
            )
            for r in rows
        ]

    def restrict(self, subject_ref: str, retention_class: str, at: float) -> None:
        """Mark a subject's keys as restricted: kept until their date, then shredded."""
        _pair(subject_ref, retention_class)
        epoch("at", at)
        with self._lock:
            self._db.execute(
                "UPDATE data_keys SET restricted_at = COALESCE(restricted_at, ?) "
                "WHERE subject_ref = ? AND retention_class = ?",
                (at, subject_ref, retention_class),
            )

    def shred(self, pairs: list[tuple[str, str]]) -> int:
        """Destroy these data keys, leaving no copy in the file, its free pages or its WAL."""
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
            raise InvalidRequest("pairs must be a list of (subject_ref, retention_class)")
        pairs = list(pairs)
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise InvalidRequest("each pair must be a (subject_ref, retention_class) tuple")
            _pair(*pair)
        if not pairs:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = 0
                for subject_ref, retention_class in pairs:
                    gone += self._db.execute(
                        "DELETE FROM data_keys WHERE subject_ref = ? AND retention_class = ?",
                        (subject_ref, retention_class),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            compact(self._db)
        return gone

    def close(self) -> None:
        """Close the vault's database; in a forked child, nothing (it is the parent's)."""
        if self._inherited:
            return
        with self._lock:
            self._db.close()

    def __iter__(self) -> Iterator[DataKey]:
        return iter(self.entries())

    @safe_repr
    def __repr__(self) -> str:
        return f"DataKeys(path={self.path!r})"


def compact(db: sqlite3.Connection) -> None:
    """Leave no deleted bytes behind: WAL copied back and truncated, free pages dropped."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _pair(subject_ref: object, retention_class: object) -> None:
    """A data key's name: the subject's pseudonym and the retention class, both text."""
    text("subject_ref", subject_ref)
    text("retention_class", retention_class)
