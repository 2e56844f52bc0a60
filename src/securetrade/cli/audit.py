"""``securetrade audit``: verify a tamper-evident audit trail, export it, print its head.

``verify`` exits 0 when the chain is intact and signed by a key the caller trusts
(``--public-key``), 1 when any record was edited, removed, reordered or inserted (or the
tail was cut, given an anchor), 2 when the file cannot be read at all, and 3 when the chain
is intact but no trusted key was given: the keys stored in the file prove only that nobody
without them changed it, not who signed, since whoever rewrites the whole file re-signs
it with a key of their own. Scripts and CI can act on each case.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._guard import say_error

__all__ = ["register"]


EXIT_OK, EXIT_TAMPERED, EXIT_UNREADABLE, EXIT_UNTRUSTED = 0, 1, 2, 3
PROG = "securetrade audit verify"


def _verify(args: argparse.Namespace) -> int:
    from ..errors import InvalidRequest
    from ..record.trail import verify_path

    keys = []
    for name in args.public_key or ():
        try:
            keys.append(Path(name).read_text(encoding="ascii"))
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
            say_error(PROG, f"error: --public-key {name}: {reason}; pass the audit key's PEM file")
            return EXIT_UNREADABLE
    try:
        report = verify_path(
            args.path,
            public_keys=keys or None,
            anchor=args.anchor,
            min_records=args.min_records,
        )
    except (InvalidRequest, OSError, UnicodeError) as exc:
        if isinstance(exc, InvalidRequest):
            say_error(PROG, f"error: {exc}")
        else:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            say_error(PROG, f"error: {args.path}: {why}; check the path and its permissions")
        return EXIT_UNREADABLE
    status = EXIT_TAMPERED if not report.ok else EXIT_OK if report.trusted_keys else EXIT_UNTRUSTED
    if args.json:
        print(
            json.dumps(
                {
                    "ok": status == EXIT_OK,
                    "intact": report.ok,
                    "records": report.records,
                    "head": report.head,
                    "signers": list(report.signers),
                    "trusted_keys": report.trusted_keys,
                    "problems": [
                        {"seq": p.seq, "kind": p.kind, "message": p.message}
                        for p in report.problems
                    ],
                }
            )
        )
        return status
    if status == EXIT_TAMPERED:
        print(f"TAMPERED: {len(report.problems)} problem(s) in {report.records} records")
        for problem in report.problems:
            print(f"  {problem}")
        return status
    if status == EXIT_UNTRUSTED:
        print(
            f"UNVERIFIED: {report.records} records, chain intact against the keys stored in "
            "the file itself, but no trusted key was given: a chain rewritten and re-signed "
            "with another key passes that check too"
        )
        print(f"head {report.head}")
        print(
            "pass the audit public key you keep apart from the trail: --public-key FILE "
            "(see docs/audit.md)"
        )
        return status
    print(f"OK: {report.records} records, chain intact, every signature valid (trusted keys)")
    print(f"head {report.head}")
    return status


def _export(args: argparse.Namespace) -> int:
    from ..errors import InvalidRequest
    from ..record.trail import read_sqlite

    try:
        records = list(read_sqlite(args.path))
    except InvalidRequest as exc:
        say_error("securetrade audit export", f"error: {exc}")
        return EXIT_UNREADABLE
    try:
        out = (
            sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
        )
    except OSError as exc:
        say_error(
            "securetrade audit export",
            f"error: cannot write {args.output} ({exc.strerror or exc}); "
            "pass -o a file in a folder you can write to, or - for standard output",
        )
        return EXIT_UNREADABLE
    try:
        for record in records:
            out.write(json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if out is not sys.stdout:
        print(f"exported {len(records)} records to {args.output}", file=sys.stderr)
    return 0


def _head(args: argparse.Namespace) -> int:
    from ..errors import InvalidRequest
    from ..record.trail import GENESIS, read_sqlite

    try:
        head = GENESIS
        for record in read_sqlite(args.path):
            head = record.hash
    except InvalidRequest as exc:
        say_error("securetrade audit head", f"error: {exc}")
        return EXIT_UNREADABLE
    print(head)
    return 0


def _read(args: argparse.Namespace) -> int:
    """Each record as JSON, personal fields opened where a data key still allows."""
    from ..errors import SecureTradeError
    from .privacy import _now, open_privacy

    try:
        opened = open_privacy(args, write=False).read(now=_now(args.now))
    except (SecureTradeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for record in opened:
        print(json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True, default=str))
    return EXIT_OK


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``audit verify``, ``audit export``, ``audit head`` and ``audit read``."""
    audit = commands.add_parser(
        "audit",
        help="verify or export a tamper-evident audit trail",
        description=(
            "Check, export or anchor the hash-chained, Ed25519-signed audit trail a client "
            "writes (audit=FILE)."
        ),
    )
    actions = audit.add_subparsers(dest="audit_command", required=True)

    verify = actions.add_parser(
        "verify",
        help="check the hash chain and every signature against a trusted public key",
        description=(
            "Exit status: 0 intact and signed by a trusted key, 1 tampered, 2 unreadable, "
            "3 intact but no --public-key given (nothing proves who signed)."
        ),
    )
    verify.add_argument("path", help="the trail (SQLite file) or an export (.jsonl)")
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="PEM",
        help="the audit key's Ed25519 public key (PEM file), kept apart from the trail; "
        "repeat for rotated keys. Without it verify exits 3",
    )
    verify.add_argument(
        "--anchor", metavar="HASH", help="a head hash kept elsewhere: detects a cut tail"
    )
    verify.add_argument("--min-records", type=int, metavar="N", help="expect at least N records")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=_verify)

    export = actions.add_parser(
        "export",
        help="write every record as JSON lines",
        description=(
            "Write every record of a trail as one JSON object per line; `audit verify` checks "
            "the export as strictly as the file."
        ),
    )
    export.add_argument("path", help="the trail (SQLite file)")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(run=_export)

    head = actions.add_parser(
        "head",
        help="print the hash of the last record (the anchor)",
        description=(
            "Print the hash of the trail's last record. Keep it elsewhere and pass it to "
            "`audit verify --anchor` later: a cut tail is then detected."
        ),
    )
    head.add_argument("path", help="the trail (SQLite file)")
    head.set_defaults(run=_head)

    from .privacy import store_options

    read = actions.add_parser(
        "read",
        help="print records with personal fields decrypted; erased ones marked <erased>",
        description=(
            "Print an audit trail's records with their personal fields decrypted where the data "
            "key still exists; erased, restricted and expired ones are marked as such."
        ),
    )
    store_options(read)
    read.set_defaults(run=_read)
