"""Erase, sweep, export and report: the subject's rights, answered from the SDK's own files.

:class:`Privacy` ties together the audit trail (with its :class:`PersonalData`), the
data-key vault and the operational files a deployment uses. ``now`` is a parameter of
every step (epoch seconds, default the wall clock), so retention can be tested and
replayed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from .._checks import epoch, texts
from ..errors import InvalidRequest, KeyNotFound
from .retention import RetentionPolicy
from .sealed import OpenedRecord, PersonalData
from .stores import CopyOutboxFile, JournalFile, ReplayFile

if TYPE_CHECKING:
    from ..keys.keystore import KeyStore
    from ..record.trail import AuditTrail, Record

__all__ = ["Privacy", "TrailReader"]

CERTIFICATE = "securetrade-erasure/1"
_REASON = re.compile(r"^[A-Za-z0-9_.:/#-]{0,64}$")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")


class TrailReader:
    """A trail opened to read (``audit read``, ``privacy export``, ``privacy report``):
    no audit key needed, and nothing can be appended."""

    def __init__(self, path: str, personal: PersonalData) -> None:
        self.path = path
        self.personal = personal

    def records(self) -> list[Record]:
        from ..record.trail import read_sqlite

        return list(read_sqlite(self.path))

    def append(self, kind: str, fields: Any, *, at: float | None = None) -> Record:
        raise InvalidRequest(f"{kind} needs the audit key: give --audit-key (the trail's signer)")


class Privacy:
    """The personal-data duties over one deployment's files.

    ``trail`` must have been opened with ``personal=PersonalData(...)``; ``outbox``,
    ``journal`` and ``replay`` are the paths of the copy outbox, the order journal and the
    gateway's SQLite replay store, when the deployment has them; ``keystore`` an open
    :class:`~securetrade.keys.KeyStore` holding followers' keys.
    """

    def __init__(
        self,
        trail: AuditTrail | TrailReader,
        *,
        outbox: str | None = None,
        journal: str | None = None,
        replay: str | None = None,
        keystore: KeyStore | None = None,
    ) -> None:
        personal = getattr(trail, "personal", None)
        if not isinstance(personal, PersonalData):
            raise InvalidRequest(
                "the audit trail must be opened with personal=PersonalData(...) to erase, "
                "sweep or export personal data"
            )
        self.trail = trail
        self.personal: PersonalData = personal
        self.retention: RetentionPolicy = personal.retention
        self.outbox = None if outbox is None else CopyOutboxFile(outbox)
        self.journal = None if journal is None else JournalFile(journal)
        self.replay = None if replay is None else ReplayFile(replay)
        self.keystore = keystore

    # --- erasure (GDPR Art. 17, CCPA 1798.105) -------------------------------------------------

    def erase(
        self,
        subject: str,
        *,
        reason: str = "",
        keystore_names: Iterable[str] = (),
        now: float | None = None,
    ) -> dict[str, Any]:
        """Erase ``subject``: shred its data keys past retention, restrict the others until
        their date, delete its rows in the outbox and journal and its keystore entries,
        append a signed ``privacy.erasure`` record; returns the certificate."""
        if not isinstance(reason, str) or not _REASON.match(reason):
            raise InvalidRequest(
                "reason is a short reference (a ticket id: letters, digits, _.:/#-, at most "
                "64), never free text: it is stored in the clear"
            )
        names = texts("keystore_names", keystore_names)
        if names and self.keystore is None:
            raise InvalidRequest("keystore_names given but no keystore: pass keystore=")
        at = _moment(now)
        vault = self.personal.vault
        subject_ref = self.personal.keys.subject_ref(subject)
        # Each step can be run again: the journal's rows go before the outbox rows that
        # name them, and the keys before the record that says so.
        stores: dict[str, Any] = {}
        order_ids = [] if self.outbox is None else self.outbox.order_ids(subject)
        if self.journal is not None:
            stores["journal"] = {"rows": self.journal.forget(order_ids)}
        if self.outbox is not None:
            stores["copy_outbox"] = {
                "outcomes": self.outbox.forget(subject),
                "orders": len(order_ids),
            }
        removed: list[str] = []
        for name in names:
            assert self.keystore is not None  # checked above
            try:
                self.keystore.remove(name)
            except KeyNotFound:
                continue
            removed.append(name)
        if removed:
            stores["keystore"] = {"entries": len(removed)}
        entries = vault.entries(subject_ref)
        due = [e for e in entries if e.retain_until <= at]
        held = [e for e in entries if e.retain_until > at]
        vault.shred([(e.subject_ref, e.retention_class) for e in due])
        for entry in held:
            vault.restrict(entry.subject_ref, entry.retention_class, at)
        shredded = sorted(e.retention_class for e in due)
        restricted = [
            {"class": e.retention_class, "retain_until": _iso(e.retain_until)} for e in held
        ]
        record = self.trail.append(
            "privacy.erasure",
            {
                "subject_ref": subject_ref,
                "shredded": shredded,
                "restricted": restricted,
                "stores": stores,
                "reason": reason,
            },
            at=at,
        )
        return {
            "certificate": CERTIFICATE,
            "subject_ref": subject_ref,
            "erased_at": _iso(at),
            "shredded": shredded,
            "restricted": restricted,
            "stores": stores,
            "not_tied_to_subject": {
                "gateway_nonces": "hashed (key id, nonce) tokens; deleted by the sweep "
                "once past the signature window"
            },
            "audit_record": {
                "seq": record.seq,
                "hash": record.hash,
                "key_id": record.key_id,
                "signature": record.signature,
            },
            "reason": reason,
        }

    # --- retention (GDPR Art. 5(1)(e)) -----------------------------------------------------------

    def sweep(self, *, now: float | None = None) -> dict[str, Any]:
        """Shred every data key past its retention date, and apply each store's period."""
        at = _moment(now)
        vault = self.personal.vault
        due = [e for e in vault.entries() if e.retain_until <= at]
        vault.shred([(e.subject_ref, e.retention_class) for e in due])
        result: dict[str, Any] = {
            "swept_at": _iso(at),
            "audit_keys_shredded": len(due),
            "restricted_shredded": sum(1 for e in due if e.restricted),
        }
        policy = self.retention
        if self.outbox is not None:
            result["copy_outbox"] = self.outbox.sweep(at, policy.store_seconds("copy.outbox"))
        if self.journal is not None:
            result["journal"] = self.journal.sweep(
                at,
                policy.store_seconds("journal.terminal"),
                policy.store_seconds("journal.tombstone"),
            )
        if self.replay is not None:
            result["gateway_nonces"] = self.replay.sweep(at)
        if due:
            self.trail.append(
                "privacy.sweep",
                {
                    "shredded": [[e.subject_ref, e.retention_class] for e in due],
                },
                at=at,
            )
        return result

    # --- access and portability (GDPR Art. 15, 20; CCPA right to know) ---------------------------

    def read(self, *, now: float | None = None) -> list[OpenedRecord]:
        """Every record, personal fields opened where a key still allows."""
        at = _moment(now)
        return [self.personal.open(r, now=at) for r in self.trail.records()]

    def export(self, subject: str, out: IO[str], *, now: float | None = None) -> int:
        """Write ``subject``'s records as JSON lines; returns how many. Records restricted
        by an erasure show only their retention date, shredded ones show ``<erased>``."""
        if not callable(getattr(out, "write", None)):
            raise InvalidRequest("out must be a text file open for writing (or io.StringIO)")
        at = _moment(now)
        subject_ref = self.personal.keys.subject_ref(subject)
        count = 0
        for opened in self.read(now=at):
            if opened.subject_ref != subject_ref:
                continue
            line = {"source": "audit_trail", **opened.to_json(include_restricted=False)}
            out.write(json.dumps(line, sort_keys=True, default=str) + "\n")
            count += 1
        if self.outbox is not None:
            for row in self.outbox.history(subject):
                out.write(
                    json.dumps(
                        {"source": "copy_outbox", "follower": subject, **row}, sort_keys=True
                    )
                    + "\n"
                )
                count += 1
        return count

    # --- records of processing (GDPR Art. 30; CCPA notice at collection) -------------------------

    def report(self, *, now: float | None = None) -> dict[str, Any]:
        """What categories of personal data are held, where, and for how long."""
        at = _moment(now)
        entries = self.personal.vault.entries()
        policy = self.personal.policy
        return {
            "generated_at": _iso(at),
            "categories": policy.categories,
            "tagged_fields": {
                name: {"category": tag.category.value, "subject": tag.subject}
                for name, tag in sorted(policy.tags.items())
            },
            "retention": self.retention.report(),
            "audit_data_keys": {
                "subjects": len({e.subject_ref for e in entries}),
                "keys": len(entries),
                "restricted": sum(1 for e in entries if e.restricted),
                "by_class": {
                    c: sum(1 for e in entries if e.retention_class == c)
                    for c in sorted({e.retention_class for e in entries})
                },
            },
            "stores": sorted(
                name
                for name, store in (
                    ("copy_outbox", self.outbox),
                    ("journal", self.journal),
                    ("gateway_nonces", self.replay),
                    ("keystore", self.keystore),
                )
                if store is not None
            ),
        }


def _moment(now: float | None) -> float:
    """The time a duty runs at: now, or the epoch seconds given (tests, a replayed run)."""
    return time.time() if now is None else epoch("now", now)
