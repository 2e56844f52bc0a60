"""``securetrade mfa``: operators' one-time codes for dangerous operations.

``enroll OPERATOR`` makes a TOTP seed and prints the ``otpauth://`` URI to load into an
authenticator (the one time the seed is shown). ``release-kill-switch``, ``widen-key`` and
``export`` do what their names say, each only on an unused code of an enrolled operator:
asked for without echo, or ``--otp CODE`` for scripts (a code is good for one use and at
most 90 s, so having it on a command line gives little away). ``--audit`` records every
attempt in an audit trail.

Exit status: 0 done, 1 refused or failed (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .keys import _as_secret, _key_options, _new_key, _open, _prompt, _read_file, _say

if TYPE_CHECKING:
    from ..keys import KeyStore
    from ..mfa import Confirmation, Confirmer

__all__ = ["register"]


def _confirmation(args: argparse.Namespace) -> Confirmation:
    from ..errors import InvalidRequest
    from ..mfa import Confirmation

    code = args.otp
    if code is None:
        if not sys.stdin.isatty():
            raise InvalidRequest("no one-time code: pass --otp CODE or run in a terminal")
        code = _prompt(f"One-time code of {args.operator}: ", "--otp")
    return Confirmation(args.operator, code)


def _confirmer(args: argparse.Namespace, store: KeyStore) -> Confirmer:
    from ..mfa import Confirmer

    audit = None
    if args.audit:
        from ..errors import InvalidRequest
        from ..record.trail import AuditKey, AuditTrail

        if not args.audit_key_file:
            raise InvalidRequest("--audit needs --audit-key-file (the trail's Ed25519 PEM)")
        audit = AuditTrail(args.audit, AuditKey.from_pem(_read_file(args.audit_key_file)))
    return Confirmer(store, audit=audit)


def _enroll(args: argparse.Namespace) -> int:
    from ..mfa import Confirmer

    uri = Confirmer.enroll(_open(args), args.operator)
    _say(f"enrolled {args.operator}; load this URI into the authenticator now:", err=True)
    print(uri.expose().decode("ascii"))  # the seed, shown this once, unredacted on purpose
    return 0


def _release(args: argparse.Namespace) -> int:
    from ..policy import KillSwitch

    switch = KillSwitch.from_url(
        args.store, name=args.name, confirmer=_confirmer(args, _open(args))
    )
    switch.release(confirmation=_confirmation(args))
    _say(f"kill switch {args.name!r} released by {args.operator}")
    return 0


def _widen(args: argparse.Namespace) -> int:
    from ..keys.guarded import rotate_wider

    store = _open(args)
    confirmer = _confirmer(args, store)
    key = _new_key(args, like=store.ring(args.name).current)
    ring = rotate_wider(
        store, args.name, key, confirmer=confirmer, confirmation=_confirmation(args)
    )
    _say(f"{args.name}: now signing with {ring.current.key_id_hint} (widened by {args.operator})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..errors import InvalidRequest
    from ..keys.guarded import export_keys

    store = _open(args)
    confirmer = _confirmer(args, store)
    target_pass = _as_secret(_read_file(args.to_passphrase_file).rstrip(b"\r\n"))
    if target_pass is None:
        raise InvalidRequest("the new keystore's passphrase file is empty")
    export_keys(
        store,
        args.names,
        Path(args.to),
        target_pass,
        confirmer=confirmer,
        confirmation=_confirmation(args),
    )
    _say(f"exported {', '.join(args.names)} to {args.to}")
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``mfa`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--keystore", help="keystore holding the operators' seeds")
    source = common.add_mutually_exclusive_group()
    source.add_argument("--passphrase-file", help="read the keystore passphrase from a file")
    source.add_argument("--keyring", action="store_true", help="open it with the OS keyring")
    confirm = argparse.ArgumentParser(add_help=False, parents=[common])
    confirm.add_argument("--operator", required=True, help="who confirms")
    confirm.add_argument("--otp", help="the code now on their authenticator (else prompted)")
    confirm.add_argument("--audit", help="audit trail (SQLite) to record the attempt in")
    confirm.add_argument("--audit-key-file", help="the trail's Ed25519 private key (PEM)")

    mfa = commands.add_parser(
        "mfa",
        help="one-time codes for dangerous operations",
        description=(
            "One-time codes from an operator's authenticator for dangerous operations; each code "
            "works once."
        ),
    )
    sub = mfa.add_subparsers(dest="mfa_command", required=True)

    enroll = sub.add_parser(
        "enroll",
        parents=[common],
        help="enroll an operator (TOTP)",
        description=(
            "Enroll an operator: make a TOTP seed and print the otpauth:// URI to load into an "
            "authenticator, the only time it is shown."
        ),
    )
    enroll.add_argument("operator")
    enroll.set_defaults(run=_enroll)

    release = sub.add_parser(
        "release-kill-switch",
        parents=[confirm],
        help="release a kill switch",
        description="Release an engaged kill switch with a fresh one-time code.",
    )
    release.add_argument("--store", required=True, help="sqlite:///path, a path or redis://")
    release.add_argument("--name", default="default", help="which switch of the store")
    release.set_defaults(run=_release)

    widen = sub.add_parser(
        "widen-key",
        parents=[confirm],
        help="rotate to a wider key",
        description="Rotate a key to one with wider scopes with a fresh one-time code.",
    )
    widen.add_argument("name")
    _key_options(widen, new=False)
    widen.set_defaults(run=_widen)

    export = sub.add_parser(
        "export",
        parents=[confirm],
        help="copy keys to a new keystore",
        description="Copy keys into a new keystore with a fresh one-time code.",
    )
    export.add_argument("names", nargs="+")
    export.add_argument("--to", required=True, help="the new keystore file")
    export.add_argument(
        "--to-passphrase-file", required=True, help="the new keystore's passphrase, from a file"
    )
    export.set_defaults(run=_export)
