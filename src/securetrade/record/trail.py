"""The tamper-evident audit trail: a hash chain of records, each signed with an Ed25519 key.

Record *n* stores the SHA-256 hash of its own content together with the hash of record
*n-1*, and an Ed25519 signature over its hash by the audit key. So:

* editing a record changes its hash (and, if the hash is recomputed, breaks the signature);
* removing, reordering or inserting records breaks the sequence and the chain of hashes;
* rewriting the whole chain needs the private audit key, which the verifier does not
  trust unless it was given the matching public key;
* cutting records off the end is the one change a chain cannot show by itself: keep the
  head hash somewhere else (a log shipper, a ticket) and pass it as the anchor.

The records live in SQLite (WAL mode) and several processes may append to one file: each
append takes the write lock, reads the head and links to it in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn, Protocol

from .. import _fork
from .._checks import epoch, instance, safe_repr, text, whole
from .._checks import path as checked_path
from .._sqlite import connect, retry_locked, wal
from ..errors import InvalidRequest
from ..keys.secret import Secret


class Sealer(Protocol):
    """What seals a record's personal fields (:class:`securetrade.privacy.PersonalData`):
    for ``fields`` of ``kind`` at ``at``, None when nothing is personal, else a function
    that, given the record's seq and previous hash, returns the body to store."""

    def prepare(
        self, kind: str, fields: Mapping[str, Any], at: float
    ) -> Callable[[int, str], dict[str, Any]] | None: ...


__all__ = [
    "GENESIS",
    "AuditKey",
    "AuditTrail",
    "Problem",
    "Record",
    "VerifyReport",
    "canonical",
    "read_jsonl",
    "verify_records",
]

GENESIS = "0" * 64  # the "previous hash" of the first record


def canonical(fields: Mapping[str, Any]) -> str:
    """The one text form of a record's fields: sorted keys, no spaces, Decimal as text."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_text_of
    )


def _text_of(value: Any) -> str:
    """A value JSON has no form for, as its text (a Decimal, a date): refused with a typed
    error when even that fails, rather than the value's own exception."""
    try:
        return str(value)
    except Exception:
        raise InvalidRequest(
            f"a record field holds a {type(value).__name__} with no text form: give "
            "strings, numbers, Decimals, lists or mappings of them"
        ) from None


class AuditKey:
    """The Ed25519 key that signs audit records: whoever holds it wrote the records.

    Keep it apart from trading keys (a leaked trading key must not be able to rewrite the
    trail). The private half is never printed or pickled; ``key_id`` names the public half.
    Both halves are exported the same way, by a method: :meth:`public_key_pem` (give it to
    whoever verifies) and :meth:`private_key_pem` (keep it secret).
    """

    __slots__ = ("_private", "_public_pem", "key_id")

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidRequest(
                "an AuditKey holds an Ed25519 private key: use AuditKey.generate() or "
                "AuditKey.from_pem(...)"
            )
        self._private = private_key
        public = private_key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        self._public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @classmethod
    def generate(cls) -> AuditKey:
        """A fresh key. Save it with :meth:`private_key_pem` or the trail cannot be extended later
        by the same signer (a new key is fine too: each record names its signer)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes | str | Secret, *, password: bytes | None = None) -> AuditKey:
        """Load a PKCS#8 PEM Ed25519 private key (optionally encrypted with ``password``)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        # Secrets first: no frame that can raise holds the PEM or its password bare.
        wrapped = pem if isinstance(pem, Secret) else _secret_or_none(pem)
        wrapped_password = None if password is None else _secret_or_none(password)
        del pem, password
        key = _private_or_none(wrapped, wrapped_password)
        if key is None:
            raise InvalidRequest("not a readable PEM private key (or a wrong password)")
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidRequest("the audit key must be an Ed25519 private key")
        return cls(key)

    def public_key_pem(self) -> str:
        """The public half as SubjectPublicKeyInfo PEM text: what ``securetrade audit verify
        --public-key`` and ``AuditTrail.verify(public_keys=...)`` take."""
        return self._public_pem

    @property
    def public_pem(self) -> str:
        """Deprecated: use :meth:`public_key_pem` (a method, like :meth:`private_key_pem`)."""
        warnings.warn(
            "AuditKey.public_pem is deprecated; call AuditKey.public_key_pem()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._public_pem

    def private_pem(self, *, password: bytes | None = None) -> Secret:
        """Deprecated: use :meth:`private_key_pem` (same arguments)."""
        warnings.warn(
            "AuditKey.private_pem() is deprecated; call AuditKey.private_key_pem()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.private_key_pem(password=password)

    def private_key_pem(self, *, password: bytes | None = None) -> Secret:
        """The private key as PKCS#8 PEM, encrypted when ``password`` is given."""
        from cryptography.hazmat.primitives import serialization

        empty = password is None or (type(password) is bytes and not password)
        wrapped = None if empty else _secret_or_none(password)  # no caller's __bool__
        del password
        if wrapped is not None and len(wrapped.expose()) > 1023:  # the PKCS#8 backend's limit
            raise InvalidRequest("password must be at most 1023 bytes")
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(wrapped.expose())
            if wrapped is not None
            else serialization.NoEncryption()
        )
        return Secret(
            self._private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )

    def sign(self, digest: bytes) -> str:
        """The Ed25519 signature of ``digest``, base64 (of a record's chain hash)."""
        if not isinstance(digest, bytes):
            raise InvalidRequest("digest must be bytes (a record's chain hash)")
        return base64.b64encode(self._private.sign(digest)).decode("ascii")

    @safe_repr
    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an AuditKey cannot be pickled")


def _secret_or_none(value: object) -> Secret | None:
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return Secret(value) if isinstance(value, bytes) and value else None


def _private_or_none(pem: Secret | None, password: Secret | None) -> Any:
    """The private key a PEM holds, or None; the error stays inside this frame."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if pem is None:
        return None
    try:
        return serialization.load_pem_private_key(
            pem.expose(), password=None if password is None else password.expose()
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


@dataclass(frozen=True, slots=True)
class Record:
    """One link of the chain, exactly as stored."""

    seq: int
    at: str  # ISO-8601 UTC with microseconds
    kind: str
    body: str  # canonical JSON of the fields
    prev: str
    hash: str
    key_id: str
    signature: str

    @property
    def fields(self) -> dict[str, Any]:
        """The record's body as a dict (public values only)."""
        return dict(json.loads(self.body))

    def digest(self) -> str:
        """The hash this record's content must have."""
        material = json.dumps(
            [self.seq, self.at, self.kind, self.body, self.prev, self.key_id],
            separators=(",", ":"),
            ensure_ascii=True,
        )
        return hashlib.sha256(material.encode("ascii")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The export form: fields as an object, everything needed to verify again."""
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "fields": self.fields,
            "prev": self.prev,
            "hash": self.hash,
            "key_id": self.key_id,
            "signature": self.signature,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_keys (
    key_id TEXT PRIMARY KEY,
    public_pem TEXT NOT NULL
);
"""

_COLUMNS = "seq, at, kind, body, prev, hash, key_id, signature"


class AuditTrail:
    """Append-only, hash-chained, signed records in a SQLite file (WAL).

    ``synchronous="NORMAL"`` (the default) survives a crash of the process; ``"FULL"``
    also survives a power cut, at one disk flush per record. ``personal`` (a
    :class:`~securetrade.privacy.PersonalData`) seals the personal fields of each record
    under its subject's data key (record layout 2, :mod:`securetrade.privacy.sealed`).
    """

    def __init__(
        self,
        path: str | Path,
        key: AuditKey,
        *,
        synchronous: str = "NORMAL",
        personal: Sealer | None = None,
    ) -> None:
        self.personal = personal
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise InvalidRequest("synchronous must be NORMAL, FULL or EXTRA")
        instance("key", key, AuditKey, optional=False)
        self._db = connect(path, what="audit trail", timeout=30.0)
        self.path = str(path)
        self.key = key
        self._lock = threading.Lock()
        with self._lock:
            wal(self._db, synchronous=synchronous)

            def schema() -> None:
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO audit_keys (key_id, public_pem) VALUES (?, ?)",
                    (key.key_id, key.public_key_pem()),
                )

            retry_locked(self._db, schema, 30.0)
        _fork.watch(self)  # a forked child refuses to use it

    def append(self, kind: str, fields: Mapping[str, Any], *, at: float | None = None) -> Record:
        """Link one record to the head of the chain, sign it, and store it."""
        text("kind", kind)
        if not isinstance(fields, Mapping):
            raise InvalidRequest("fields must map field names to values (a dict)")
        if at is not None:
            epoch("at", at)
        stamp = (
            datetime.now(timezone.utc) if at is None else datetime.fromtimestamp(at, timezone.utc)
        )
        seal = (
            None
            if self.personal is None
            else self.personal.prepare(kind, fields, stamp.timestamp())
        )
        body = canonical(fields)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                head = self._db.execute(
                    "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (1, GENESIS) if head is None else (int(head[0]) + 1, str(head[1]))
                if seal is not None:
                    body = canonical(seal(seq, prev))
                draft = Record(
                    seq,
                    stamp.isoformat(timespec="microseconds"),
                    kind,
                    body,
                    prev,
                    "",
                    self.key.key_id,
                    "",
                )
                digest = draft.digest()
                record = Record(
                    seq,
                    draft.at,
                    kind,
                    body,
                    prev,
                    digest,
                    self.key.key_id,
                    self.key.sign(bytes.fromhex(digest)),
                )
                self._db.execute(
                    f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608  # nosec B608
                    (
                        record.seq,
                        record.at,
                        record.kind,
                        record.body,
                        record.prev,
                        record.hash,
                        record.key_id,
                        record.signature,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return record

    def head(self) -> str:
        """The hash of the last record (the anchor to keep elsewhere); GENESIS when empty."""
        with self._lock:
            row = self._db.execute("SELECT hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return GENESIS if row is None else str(row[0])

    def records(self) -> list[Record]:
        """Every record, in chain order."""
        return list(read_sqlite(self.path))

    _inherited = False  # set in a child forked while it was open

    def _after_fork(self) -> None:
        """In a child forked while this was open (see :mod:`securetrade._fork`): every call
        raises :class:`~securetrade.errors.InheritedAcrossFork` before touching the file,
        and the parent's SQLite connection is parked, never used or closed."""
        _fork.disown(self, "AuditTrail")

    def verify(self, **options: Any) -> VerifyReport:
        """Check the whole chain; see :func:`verify_records` for the options."""
        return verify_path(self.path, **options)

    def close(self) -> None:
        """Close the trail's database; records written so far stay, chained and signed. In
        a child forked while it was open it does nothing: the database is the parent's."""
        if self._inherited:
            return
        with self._lock:
            self._db.close()

    @safe_repr
    def __repr__(self) -> str:
        return f"AuditTrail(path={self.path!r}, key={self.key!r})"


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the chain: where (``seq``), what (``kind``), in words."""

    seq: int | None
    kind: (
        str  # edited, bad_signature, unknown_signer, missing, out_of_order, broken_link, truncated
    )
    message: str

    def __str__(self) -> str:
        where = "" if self.seq is None else f"record {self.seq}: "
        return f"{self.kind}: {where}{self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The verdict on a chain: ``ok`` only when no problem at all was found."""

    records: int
    head: str
    problems: tuple[Problem, ...] = ()
    trusted_keys: bool = False  # False: signer keys were read from the file itself
    signers: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the chain and every signature verified."""
        return not self.problems


def load_public_keys(pems: Iterable[str | bytes]) -> dict[str, Any]:
    """Public keys by key id, from PEM text (a private key PEM gives its public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    keys: dict[str, Any] = {}
    for pem in pems:
        raw = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key: Any = serialization.load_pem_public_key(raw)
        except ValueError:
            try:
                key = serialization.load_pem_private_key(raw, password=None).public_key()
            except (ValueError, TypeError):
                raise InvalidRequest("not a readable PEM Ed25519 key") from None
        if isinstance(key, Ed25519PrivateKey):
            key = key.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidRequest("audit keys are Ed25519 keys")
        material = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys[hashlib.sha256(material).hexdigest()[:16]] = key
    return keys


def verify_records(
    records: Iterable[Record],
    *,
    public_keys: Mapping[str, Any],
    trusted: bool,
    anchor: str | None = None,
    min_records: int | None = None,
) -> VerifyReport:
    """Walk the chain in the order given and report every break.

    ``public_keys`` maps key ids to the Ed25519 keys allowed to sign; ``trusted`` says
    whether they came from the verifier (True) or from the file being checked. ``anchor``
    is a head hash recorded earlier: it must still be in the chain, else the tail was cut
    or the chain rewritten. ``min_records`` does the same with a count.
    """
    from cryptography.exceptions import InvalidSignature

    problems: list[Problem] = []
    expected_seq, expected_prev = 1, GENESIS
    count, head, seen_anchor = 0, GENESIS, anchor is None
    signers: set[str] = set()
    for record in records:
        count += 1
        if record.seq != expected_seq:
            if record.seq > expected_seq:
                problems.append(
                    Problem(
                        record.seq,
                        "missing",
                        f"records {expected_seq}..{record.seq - 1} are missing",
                    )
                )
            else:
                problems.append(
                    Problem(
                        record.seq,
                        "out_of_order",
                        f"sequence goes back (expected {expected_seq}): reordered or inserted",
                    )
                )
        if record.prev != expected_prev:
            problems.append(
                Problem(
                    record.seq,
                    "broken_link",
                    "does not link to the record before it (removed, reordered or inserted)",
                )
            )
        if record.digest() != record.hash:
            problems.append(Problem(record.seq, "edited", "content does not match its hash"))
        key = public_keys.get(record.key_id)
        if key is None:
            problems.append(
                Problem(record.seq, "unknown_signer", f"signed by unknown key {record.key_id}")
            )
        else:
            signers.add(record.key_id)
            try:
                key.verify(
                    base64.b64decode(record.signature, validate=True), bytes.fromhex(record.hash)
                )
            except (InvalidSignature, ValueError):
                problems.append(Problem(record.seq, "bad_signature", "signature does not verify"))
        if anchor is not None and record.hash == anchor:
            seen_anchor = True
        expected_seq, expected_prev, head = record.seq + 1, record.hash, record.hash
    if not seen_anchor:
        problems.append(
            Problem(None, "truncated", "the anchor hash is not in the chain: tail cut or rewritten")
        )
    if min_records is not None and count < min_records:
        problems.append(
            Problem(None, "truncated", f"{count} records, fewer than the {min_records} expected")
        )
    return VerifyReport(count, head, tuple(problems), trusted, tuple(sorted(signers)))


def _read_only(path: str | Path) -> sqlite3.Connection:
    """The trail file opened read-only. Its name goes into the URI percent-encoded: a
    ``?`` or ``#`` in it was read as the URI's query (``mode=rw`` from a file name)."""
    file = Path(path)
    if not file.is_file():  # a directory: sqlite3's "unable to open database file" before
        raise InvalidRequest(f"{path}: no such audit trail file; check the path (the audit= file)")
    try:
        return sqlite3.connect(file.absolute().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InvalidRequest(f"{path}: the audit trail did not open ({exc}); check it") from None


def read_sqlite(path: str | Path) -> Iterator[Record]:
    """The records of a trail file, in sequence order, read-only."""
    db = _read_only(path)
    try:
        rows = db.execute(f"SELECT {_COLUMNS} FROM records ORDER BY seq").fetchall()  # noqa: S608  # nosec B608
    except sqlite3.DatabaseError as exc:
        raise InvalidRequest(f"{path}: not an audit trail ({exc})") from None
    finally:
        db.close()
    for row in rows:
        yield Record(
            int(row[0]),
            str(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            str(row[5]),
            str(row[6]),
            str(row[7]),
        )


def stored_public_keys(path: str | Path) -> dict[str, Any]:
    """The signer keys a trail file carries (trust them only as far as the file itself)."""
    db = _read_only(path)
    try:
        rows = db.execute("SELECT public_pem FROM audit_keys").fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        db.close()
    return load_public_keys(str(r[0]) for r in rows)


def read_jsonl(lines: Iterable[str]) -> Iterator[Record]:
    """Records from an export (one JSON object per line), in line order."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            yield Record(
                int(data["seq"]),
                str(data["at"]),
                str(data["kind"]),
                canonical(data["fields"]),
                str(data["prev"]),
                str(data["hash"]),
                str(data["key_id"]),
                str(data["signature"]),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest(f"line {number} is not an audit record") from None


def verify_path(
    path: str | Path,
    *,
    public_keys: Iterable[str | bytes] | None = None,
    anchor: str | None = None,
    min_records: int | None = None,
) -> VerifyReport:
    """Verify a trail file (SQLite) or an export (``.jsonl``).

    Without ``public_keys`` the signer keys stored in a SQLite trail are used, which proves
    integrity against anyone without the audit key but not who signed (the report's
    ``trusted_keys`` is False, and ``securetrade audit verify`` exits 3); pass the public
    key(s) you trust to prove that too. An export carries no keys, so it needs them.
    """
    if not Path(checked_path("path", path)).is_file():
        raise InvalidRequest(f"{path}: no such audit trail; check the path (the audit= file)")
    if public_keys is not None and (
        isinstance(public_keys, (str, bytes)) or not isinstance(public_keys, Iterable)
    ):
        raise InvalidRequest("public_keys must be a list of PEM public keys, not one")
    if anchor is not None:
        text("anchor (a record hash)", anchor)
    if min_records is not None:
        whole("min_records", min_records, 0)
    is_export = str(path).endswith((".jsonl", ".json"))
    if public_keys is not None:
        keys, trusted = load_public_keys(public_keys), True
    elif is_export:
        raise InvalidRequest("an export carries no keys: give the trusted public key")
    else:
        keys, trusted = stored_public_keys(path), False
    if is_export:
        with open(path, encoding="utf-8") as handle:
            return verify_records(
                read_jsonl(handle),
                public_keys=keys,
                trusted=trusted,
                anchor=anchor,
                min_records=min_records,
            )
    return verify_records(
        read_sqlite(path),
        public_keys=keys,
        trusted=trusted,
        anchor=anchor,
        min_records=min_records,
    )
