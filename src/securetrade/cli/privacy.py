"""``securetrade privacy``: keygen, erase, sweep, export and report, over a deployment's files.

``erase`` and ``sweep`` append signed records, so they need the audit key (``--audit-key``);
``export`` and ``report`` only read. Every command prints JSON (``erase`` its certificate).
``--now`` (ISO-8601 or epoch seconds) replays a step at another time. Exit status: 0 done,
2 refused or unreadable input (the message says what to change).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _now(text: str | None) -> float | None:
    from ..errors import InvalidRequest

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            "--now is ISO-8601 (2031-01-02T00:00:00+00:00) or epoch seconds"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def open_privacy(args: argparse.Namespace, *, write: bool) -> Any:
    """The :class:`~securetrade.privacy.Privacy` the arguments describe."""
    from ..copy import model as _copy_models  # noqa: F401  tags the copy engine's fields
    from ..errors import InvalidRequest
    from ..privacy import DataKeys, PersonalData, Privacy, PrivacyKeys, RetentionPolicy
    from ..privacy.service import TrailReader
    from ..record.trail import AuditKey, AuditTrail

    keys = PrivacyKeys.from_file(args.master_key)
    retention = RetentionPolicy.load(args.retention) if args.retention else RetentionPolicy()
    personal = PersonalData(DataKeys(args.vault, keys), retention=retention)
    trail: Any
    if write:
        if not args.audit_key:
            raise InvalidRequest("this command appends a signed record: give --audit-key PEM")
        audit_key = AuditKey.from_pem(Path(args.audit_key).read_bytes())
        trail = AuditTrail(args.trail, audit_key, personal=personal)
    else:
        if not Path(args.trail).is_file():
            raise InvalidRequest(f"{args.trail}: no such audit trail")
        trail = TrailReader(args.trail, personal)
    return Privacy(
        trail,
        outbox=getattr(args, "outbox", None),
        journal=getattr(args, "journal", None),
        replay=getattr(args, "replay", None),
    )


def _guard(run: Any) -> Any:
    def guarded(args: argparse.Namespace) -> int:
        from ..errors import SecureTradeError

        try:
            return int(run(args))
        except (SecureTradeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return guarded


def _keygen(args: argparse.Namespace) -> int:
    from ..privacy import PrivacyKeys

    PrivacyKeys.generate(args.path)
    print(f"wrote a privacy master key to {args.path} (mode 0600): keep it in your secret store")
    return 0


def _erase(args: argparse.Namespace) -> int:
    privacy = open_privacy(args, write=True)
    certificate = privacy.erase(args.subject, reason=args.reason, now=_now(args.now))
    print(json.dumps(certificate, sort_keys=True))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    print(json.dumps(open_privacy(args, write=True).sweep(now=_now(args.now)), sort_keys=True))
    return 0


def _export(args: argparse.Namespace) -> int:
    privacy = open_privacy(args, write=False)
    if args.output in (None, "-"):
        count = privacy.export(args.subject, sys.stdout, now=_now(args.now))
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            count = privacy.export(args.subject, out, now=_now(args.now))
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    print(json.dumps(open_privacy(args, write=False).report(now=_now(args.now)), sort_keys=True))
    return 0


def store_options(parser: argparse.ArgumentParser) -> None:
    """The options that locate a deployment's trail, vault and master key."""
    parser.add_argument("--trail", required=True, help="the audit trail (SQLite file)")
    parser.add_argument("--vault", required=True, help="the data-key vault (SQLite file)")
    parser.add_argument(
        "--master-key", required=True, help="the privacy master key file (privacy keygen)"
    )
    parser.add_argument("--retention", help="retention policy JSON (default: docs/privacy.md)")
    parser.add_argument("--now", help="the time to act at (ISO-8601 or epoch seconds)")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``privacy keygen|erase|sweep|export|report``."""
    privacy = commands.add_parser(
        "privacy",
        help="personal data: erase, export, sweep by retention, report",
        description=(
            "Answer personal-data duties from the SDK: report what is held and for how long, "
            "export one person's records, erase them by destroying their data keys, and enforce "
            "retention."
        ),
    )
    actions = privacy.add_subparsers(dest="privacy_command", required=True)

    keygen = actions.add_parser(
        "keygen",
        help="write a new privacy master key (0600)",
        description=(
            "Write a new privacy master key to a file only its owner can read (it derives the "
            "pseudonym pepper and wraps the data keys)."
        ),
    )
    keygen.add_argument("path")
    keygen.set_defaults(run=_guard(_keygen))

    def files(parser: argparse.ArgumentParser, *, write: bool) -> None:
        store_options(parser)
        parser.add_argument("--outbox", help="the copy engine's outbox (SQLite file)")
        parser.add_argument("--journal", help="the order journal (SQLite file)")
        if write:
            parser.add_argument("--replay", help="the gateway's SQLite replay store")
            parser.add_argument("--audit-key", help="the audit key (PEM) that signs the trail")

    erase = actions.add_parser(
        "erase",
        help="erase a subject: shred keys past retention, restrict the rest, print a certificate",
        description=(
            "Erase a subject: shred the data keys past their retention, restrict the rest until "
            "their date, remove journal rows, outbox rows and keystore entries, and print a "
            "signed certificate."
        ),
    )
    erase.add_argument("--subject", required=True, help="the follower or account id")
    erase.add_argument("--reason", default="", help="a ticket reference (stored in the clear)")
    files(erase, write=True)
    erase.set_defaults(run=_guard(_erase))

    sweep = actions.add_parser(
        "sweep",
        help="enforce the retention policy now",
        description=(
            "Enforce the retention policy now: shred data keys and delete stored rows whose "
            "period has passed."
        ),
    )
    files(sweep, write=True)
    sweep.set_defaults(run=_guard(_sweep))

    export = actions.add_parser(
        "export",
        help="write a subject's records, decrypted, as JSON lines",
        description=(
            "Write one subject's records, decrypted, as JSON lines (access and portability)."
        ),
    )
    export.add_argument("--subject", required=True)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    files(export, write=False)
    export.set_defaults(run=_guard(_export))

    report = actions.add_parser(
        "report",
        help="categories of personal data held and their periods",
        description="List the categories of personal data held and the retention period of each.",
    )
    files(report, write=False)
    report.set_defaults(run=_guard(_report))
