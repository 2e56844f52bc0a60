"""Audit record layout 2: trading facts in the clear, a person's fields sealed (AES-GCM).

A record that names a subject and carries personal fields is stored as::

    {"layout": 2, "facts": {...}, "subject_ref": "...",
     "sealed": {"class": "trade_record", "nonce": "...", "ct": "..."}}

The ciphertext is bound (associated data) to the record's sequence number, the hash of the
record before it, the subject_ref, the class and the kind, so it cannot be moved to
another record. The chain hashes and signs this body, ciphertext included: ``audit verify``
needs no data key, and shredding a key changes no stored byte. Records without personal
fields keep layout 1 (fields as they are), so trails written before stay as they were.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._checks import epoch, instance, safe_repr
from ..errors import InvalidRequest
from ..keys.secret import Secret
from .retention import RetentionPolicy
from .tags import PersonalDataPolicy
from .vault import DataKeys

if TYPE_CHECKING:
    from ..record.trail import Record

__all__ = ["ERASED", "OpenedRecord", "PersonalData"]

ERASED = "<erased>"
LAYOUT = 2


def _aad(seq: int, prev: str, subject_ref: str, retention_class: str, kind: str) -> bytes:
    return json.dumps(
        ["securetrade-audit-pii", seq, prev, subject_ref, retention_class, kind],
        separators=(",", ":"),
    ).encode()


class PersonalData:
    """What an :class:`~securetrade.record.trail.AuditTrail` needs to seal personal fields:
    the tag policy, the data-key vault (with its master key) and the retention policy."""

    def __init__(
        self,
        vault: DataKeys,
        *,
        policy: PersonalDataPolicy | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.vault = instance("vault", vault, DataKeys, optional=False)
        self.keys = vault.keys
        self.policy = instance("policy", policy, PersonalDataPolicy) or PersonalDataPolicy.default()
        self.retention = instance("retention", retention, RetentionPolicy) or RetentionPolicy()

    def minimise(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The fields as a log line or a span may carry them (pseudonyms, truncated IPs)."""
        return self.policy.minimise(fields, self.keys.pepper)

    def prepare(
        self, kind: str, fields: Mapping[str, Any], at: float
    ) -> Callable[[int, str], dict[str, Any]] | None:
        """None when ``fields`` hold nothing personal (layout 1); else a function that,
        given the record's seq and previous hash, returns the layout-2 body. Personal
        fields without a subject are reduced to pseudonyms: nobody could erase them."""
        clear, private = self.policy.split(fields)
        if not private:
            return None
        subject = self.policy.subject_of(fields)
        if subject is None:
            minimised = self.minimise(fields)
            return lambda seq, prev: minimised
        subject_ref = self.keys.subject_ref(subject)
        retention_class = self.retention.class_of(kind)
        dek = self.vault.key_for(
            subject_ref, retention_class, at + self.retention.seconds(retention_class)
        )
        plaintext = Secret(
            json.dumps(private, sort_keys=True, separators=(",", ":"), default=str).encode()
        )
        del private, fields, subject

        def seal(seq: int, prev: str) -> dict[str, Any]:
            import secrets

            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = secrets.token_bytes(12)
            ct = AESGCM(dek.expose()).encrypt(
                nonce, plaintext.expose(), _aad(seq, prev, subject_ref, retention_class, kind)
            )
            return {
                "layout": LAYOUT,
                "facts": clear,
                "subject_ref": subject_ref,
                "sealed": {
                    "class": retention_class,
                    "nonce": base64.b64encode(nonce).decode("ascii"),
                    "ct": base64.b64encode(ct).decode("ascii"),
                },
            }

        return seal

    def open(self, record: Record, *, now: float) -> OpenedRecord:
        """A record as ``audit read`` and ``privacy export`` show it."""
        if not isinstance(getattr(record, "body", None), str) or not isinstance(
            getattr(record, "seq", None), int
        ):
            raise InvalidRequest("open() takes an audit Record (from trail.records())")
        epoch("now", now)
        fields = record.fields
        if fields.get("layout") != LAYOUT or not isinstance(fields.get("sealed"), dict):
            return OpenedRecord(record.seq, record.at, record.kind, fields, None, None, "clear")
        subject_ref = str(fields.get("subject_ref"))
        sealed = fields["sealed"]
        facts = dict(fields.get("facts") or {})
        retention_class = str(sealed.get("class"))
        entry = next(
            (e for e in self.vault.entries(subject_ref) if e.retention_class == retention_class),
            None,
        )
        dek = self.vault.get(subject_ref, retention_class) if entry is not None else None
        if dek is None or entry is None:
            return OpenedRecord(
                record.seq, record.at, record.kind, facts, subject_ref, None, "erased"
            )
        if now >= entry.retain_until:  # the period ended: not shown, the next sweep shreds it
            return OpenedRecord(
                record.seq,
                record.at,
                record.kind,
                facts,
                subject_ref,
                None,
                "expired",
                retention_class,
                entry.retain_until,
            )
        personal = _decrypt(
            dek, sealed, _aad(record.seq, record.prev, subject_ref, retention_class, record.kind)
        )
        if personal is None:
            return OpenedRecord(
                record.seq, record.at, record.kind, facts, subject_ref, None, "unreadable"
            )
        status = "restricted" if entry.restricted else "readable"
        return OpenedRecord(
            record.seq,
            record.at,
            record.kind,
            facts,
            subject_ref,
            personal,
            status,
            retention_class,
            entry.retain_until,
        )

    @safe_repr
    def __repr__(self) -> str:
        return f"PersonalData(vault={self.vault!r})"


def _decrypt(dek: Secret, sealed: Mapping[str, Any], aad: bytes) -> dict[str, Any] | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        nonce = base64.b64decode(str(sealed.get("nonce")), validate=True)
        ct = base64.b64decode(str(sealed.get("ct")), validate=True)
        value = json.loads(AESGCM(dek.expose()).decrypt(nonce, ct, aad))
    except (InvalidTag, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """One audit record with its personal fields opened where a key still allows.

    ``status``: ``clear`` (layout 1, nothing sealed), ``readable``, ``restricted`` (an
    erasure was asked; held until ``retain_until`` for a legal duty only), ``expired``
    (past ``retain_until``, awaiting the sweep: never shown), ``erased`` (the key was
    shredded) or ``unreadable`` (the ciphertext does not open: altered).
    """

    seq: int
    at: str
    kind: str
    facts: dict[str, Any]
    subject_ref: str | None
    personal: dict[str, Any] | None
    status: str
    retention_class: str | None = None
    retain_until: float | None = None

    def to_json(self, *, include_restricted: bool = True) -> dict[str, Any]:
        """The record as exported: facts, and personal fields where still readable."""
        shown: Any = self.personal
        if self.status in ("erased", "expired"):
            shown = ERASED
        elif self.status == "restricted" and not include_restricted:
            shown = {"restricted_until": self.retain_until}
        out: dict[str, Any] = {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "facts": self.facts,
            "status": self.status,
        }
        if self.subject_ref is not None:
            out["subject_ref"] = self.subject_ref
            out["personal"] = shown
            out["retention_class"] = self.retention_class
            out["retain_until"] = self.retain_until
        return out
