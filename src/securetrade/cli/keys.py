"""``securetrade keys``: the encrypted keystore from the command line.

``add | list | show | rotate | remove | check``. Secrets are never taken from the command
line (other users can read it in the process list) and never printed: they come from a
no-echo prompt, a file (``-`` for stdin) or a named environment variable. The keystore
passphrase comes from ``--passphrase-file``, ``$SECURETRADE_KEYSTORE_PASSPHRASE``, the OS
keyring (``--keyring``) or a no-echo prompt. Every line printed goes through the one
redaction policy.

Exit status: 0 done, 1 refused or failed (the reason on stderr), 3 ``check`` found the key
can do more than it declares.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._checks import LONGEST

if TYPE_CHECKING:
    from ..keys import ApiKey, KeyStore, Secret
    from ..keys.otp import OtpSource

__all__ = ["register"]

PASSPHRASE_ENV = "SECURETRADE_KEYSTORE_PASSPHRASE"  # noqa: S105 - a variable name  # nosec B105
EXIT_FAILED, EXIT_OVER_PERMISSIONED = 1, 3


def _say(text: str = "", *, err: bool = False) -> None:
    from ..transport.redaction import redact_text

    print(redact_text(text), file=sys.stderr if err else sys.stdout)


def _prompt(label: str, flag: str) -> str:
    """Ask at the terminal without echo; without one, say which flag gives the value."""
    import getpass

    if not sys.stdin.isatty():
        from ._guard import fail

        what = label.rstrip(": ")
        what = what[0].lower() + what[1:] if what[1:2].islower() else what
        fail(f"no terminal to ask for the {what}: pass {flag}")
    return getpass.getpass(label)


# --- where secrets come from -----------------------------------------------------------------


def _read_file(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _as_secret(value: bytes) -> Secret | None:
    """``value`` wrapped at once (no bare secret in a frame that can raise); None if empty."""
    from ..keys import Secret

    return Secret(value) if value else None


def _passphrase(args: argparse.Namespace, *, new: bool) -> Secret:
    from ..errors import InvalidRequest

    if args.passphrase_file:
        value = _as_secret(_read_file(args.passphrase_file).rstrip(b"\r\n"))
    elif os.environ.get(PASSPHRASE_ENV):
        value = _as_secret(os.environ[PASSPHRASE_ENV].encode())
    elif sys.stdin.isatty():
        value = _as_secret(_prompt("Keystore passphrase: ", "--passphrase-file").encode())
        repeat = "Repeat the passphrase: "
        if new and _as_secret(_prompt(repeat, "--passphrase-file").encode()) != value:
            raise InvalidRequest("the two passphrases differ")
    else:
        raise InvalidRequest(
            f"no keystore passphrase: set {PASSPHRASE_ENV}, pass --passphrase-file, "
            "use --keyring, or run in a terminal"
        )
    if value is None:
        raise InvalidRequest("the keystore passphrase is empty")
    return value


def _secret(args: argparse.Namespace, label: str) -> Secret:
    from ..errors import InvalidRequest

    if args.secret_file:
        value = _as_secret(_read_file(args.secret_file).strip())
    elif args.secret_env:
        value = _as_secret(os.environ.get(args.secret_env, "").encode())
        if value is None:
            raise InvalidRequest(f"{args.secret_env} is not set")
    elif sys.stdin.isatty():
        value = _as_secret(
            _prompt(f"{label}: ", "--secret-file PATH or --secret-env NAME").encode()
        )
    else:
        raise InvalidRequest("no secret: pass --secret-file PATH (or -) or --secret-env NAME")
    if value is None:
        raise InvalidRequest(f"the {label.lower()} is empty")
    return value


def _store_path(args: argparse.Namespace) -> Path:
    from ..keys import default_keystore_path

    return Path(args.keystore) if args.keystore else default_keystore_path()


def _open(
    args: argparse.Namespace, *, create: bool = False, passphrase: Secret | None = None
) -> KeyStore:
    """Open the keystore; with ``create``, make it first if missing (with ``passphrase``,
    when already asked for)."""
    from ..keys import KeyStore

    path = _store_path(args)
    if create and not path.exists():
        if args.keyring:
            return KeyStore.create_with_keyring(path)
        store = KeyStore.create(path, passphrase or _passphrase(args, new=True))
        _say(f"created keystore {path}")
        return store
    if args.keyring:
        return KeyStore.open_with_keyring(path)
    return KeyStore.open(path, _passphrase(args, new=False))


# --- the commands ------------------------------------------------------------------------------


def _new_key(args: argparse.Namespace, *, like: ApiKey | None = None) -> ApiKey:
    from ..keys import ApiKey

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(args, name, None)
        return fallback if value is None else value

    key_id = args.key_id or _prompt("API key id: ", "--key-id")
    venue_passphrase = None
    if args.venue_passphrase_file:
        venue_passphrase = _as_secret(_read_file(args.venue_passphrase_file).rstrip(b"\r\n"))
    return ApiKey(
        like.venue if like else args.venue,
        key_id,
        _secret(args, "API secret"),
        kind=pick("kind", like.kind if like else "hmac"),
        environment=like.environment if like else args.environment,
        scopes=_split(args.scopes) if args.scopes else (like.scopes if like else ["read"]),
        symbols=_split(args.symbols) if args.symbols else (like.symbols if like else None),
        max_notional=pick("max_notional", like.max_notional if like else None),
        max_quantity=pick("max_quantity", like.max_quantity if like else None),
        withdraw_addresses=args.withdraw_address or (like.withdraw_addresses if like else ()),
        passphrase=venue_passphrase or (like.passphrase if like else None),
        otp=_otp(args) or (like.otp if like else None),
    )


def _otp(args: argparse.Namespace) -> OtpSource | None:
    """A Kraken 2FA key's second factor: ``--otp-password-file`` (static) or
    ``--totp-seed-file`` (the seed, kept as its own keystore entry ``--totp-seed-name``)."""
    from ..errors import InvalidRequest
    from ..keys.otp import StaticOtp, TotpOtp

    password_file = getattr(args, "otp_password_file", None)
    seed_file = getattr(args, "totp_seed_file", None)
    if password_file and seed_file:
        raise InvalidRequest("a key has a static OTP password or a TOTP seed, not both")
    if password_file:
        password = _as_secret(_read_file(password_file).strip())
        if password is None:
            raise InvalidRequest("the OTP password file is empty")
        return StaticOtp(password)
    if seed_file:
        seed = _as_secret(_read_file(seed_file).strip())
        if seed is None:
            raise InvalidRequest("the TOTP seed file is empty")
        return TotpOtp(seed, seed_name=args.totp_seed_name or f"otp-{args.name}")
    return None


def _check_flags(args: argparse.Namespace) -> None:
    """The key's options, refused in the flags' own names before anything is read or stored."""
    from decimal import Decimal, InvalidOperation

    from ..keys import Scope
    from ._guard import fail

    known = [scope.value for scope in Scope]
    for scope in _split(args.scopes or ""):
        if scope not in known:
            fail(f"--scopes: {scope!r} is not a scope; pick from {', '.join(known)}")
    for flag, value in (
        ("--max-notional", args.max_notional),
        ("--max-quantity", args.max_quantity),
    ):
        if value is None:
            continue
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number <= 0:
            fail(f"{flag} {value!r} is not a positive decimal number; pass one like 5000")


def _check_secret(key: ApiKey) -> None:
    """The secret must parse as the declared kind now, not at the first signed request."""
    from ..errors import SecureTradeError
    from ..signing import signer_for
    from ._guard import fail

    try:
        signer_for(key)
    except SecureTradeError as exc:
        fail(f"the secret does not fit --kind {key.kind.value} at {key.venue}: {exc}")


def _check_venue(name: str) -> None:
    """Refuse a misspelt venue before anything is stored, naming the ones there are."""
    import difflib

    from ..errors import SecureTradeError
    from ..venues import available_venues, get_venue
    from ._guard import fail

    try:
        get_venue(name)
    except SecureTradeError as exc:
        known = [v.replace(":*", ":<exchange id>") for v in available_venues()]
        near = difflib.get_close_matches(name, [v for v in known if "<" not in v], n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        what = str(exc) if ":" in name else f"unknown venue {name!r}"
        fail(f"{what}{hint}; pass --venue with one of: {', '.join(known)}")


def _add(args: argparse.Namespace) -> int:
    _check_venue(args.venue)
    _check_flags(args)
    overlap = _duration(args.overlap)
    if _store_path(args).exists():
        store = _open(args)
        key = _new_key(args)
        _check_secret(key)
    else:  # asked in the usual order, but the keystore is created only for a usable key
        passphrase = None if args.keyring else _passphrase(args, new=True)
        key = _new_key(args)
        _check_secret(key)
        store = _open(args, create=True, passphrase=passphrase)
    store.add(args.name, key, overlap=overlap)
    _say(f"added {args.name}: {key!r}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _open(args)
    names = store.names()
    if not names:
        _say("no keys")
    for name in names:
        ring = store.ring(name)
        key = ring.active()
        state = []
        if ring.next is not None:
            when = ring.activate_at.isoformat() if ring.activate_at else "on promote"
            state.append(f"next {ring.next.key_id_hint} ({when})")
        if ring.previous is not None and ring.retire_at is not None:
            state.append(
                f"previous {ring.previous.key_id_hint} until {ring.retire_at:%Y-%m-%d %H:%M}"
            )
        scopes = ",".join(sorted(s.value for s in key.scopes))
        extra = f"  [{'; '.join(state)}]" if state else ""
        _say(
            f"{name:<20} {key.venue:<10} {key.environment.value:<9} {key.key_id_hint:<12} "
            f"{key.kind.value:<8} {scopes}{extra}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _open(args)
    ring = store.ring(args.name)
    _say(f"name          {args.name}")
    for label, value in ring.active().public_parts().items():
        lines = value.splitlines() or [""]
        _say(f"{label:<13} {lines[0]}")
        for line in lines[1:]:
            _say(f"{'':<13} {line}")
    if ring.next is not None:
        when = ring.activate_at.isoformat() if ring.activate_at else "on promote"
        _say(f"{'next key':<13} {ring.next.key_id_hint} (takes over {when})")
    if ring.previous is not None and ring.retire_at is not None:
        _say(
            f"{'previous key':<13} {ring.previous.key_id_hint} "
            f"(delete it at the venue after {ring.retire_at.isoformat()})"
        )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    at = None if args.at is None else _when(args.at)
    overlap = None if args.overlap is None else _duration(args.overlap)
    _check_flags(args)
    store = _open(args)
    current = store.ring(args.name).current
    key = _new_key(args, like=current)
    _check_secret(key)
    ring = store.rotate(args.name, key, activate_at=at, overlap=overlap)
    if at is None:
        _say(f"{args.name}: now signing with {ring.current.key_id_hint}")
        if ring.previous is not None and ring.retire_at is not None:
            _say(
                f"keep {ring.previous.key_id_hint} valid at the venue until "
                f"{ring.retire_at.isoformat()}, then delete it there"
            )
    else:
        _say(f"{args.name}: {key.key_id_hint} takes over at {at.isoformat()}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.previous:
        store.retire(args.name)
        _say(f"{args.name}: replaced key forgotten; delete it at the venue too")
    else:
        store.remove(args.name)
        _say(f"removed {args.name}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from ..client import Client
    from ..keys import Scope
    from ..venues import get_venue
    from ._guard import fail

    pins = None
    if args.pin:
        host = urlsplit(args.base_url).hostname if args.base_url else None
        if host is None:
            fail("--pin needs --base-url (the pins belong to its host)")
        pins = {host: list(args.pin)}
    elif not args.unsafe_disable_pinning:
        fail(
            "pins are required: pass --base-url URL with --pin SHA256 twice (the venue's key "
            "and a backup; `securetrade pins --host HOST` prints them), or "
            "--unsafe-disable-pinning to trust any certificate the CAs accept"
        )
    store = _open(args)
    key = store.ring(args.name).active()
    if not args.base_url and key.environment not in get_venue(key.venue).base_urls:
        fail(f"{key.venue} has no {key.environment.value} URL: pass --base-url URL")
    with Client(
        key,
        base_url=args.base_url,
        pins=pins,
        cafile=args.cafile,
        journal=":memory:",
        unsafe_disable_pinning=args.unsafe_disable_pinning,
        unsafe_allow_withdraw_scope=Scope.WITHDRAW in key.scopes,
    ) as client:
        report = client.check_key()
    for line in report.lines():
        _say(line)
    return 0 if report.ok else EXIT_OVER_PERMISSIONED


# --- wiring -----------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _when(text: str) -> datetime:
    """``--at``: an ISO 8601 time with its UTC offset."""
    from ._guard import fail

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO time; pass one like 2026-01-31T18:00+00:00")
    if when.tzinfo is None:
        fail(f"--at {text!r} has no UTC offset; add one, like {text}+00:00")
    return when


def _duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    from ..errors import InvalidRequest

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a duration (like 90s, 15m, 2h)") from None
    if seconds < 0:
        raise InvalidRequest("a duration cannot be negative")
    if not math.isfinite(seconds) or seconds > LONGEST:  # timedelta's OverflowError
        raise InvalidRequest(f"a duration is at most {LONGEST:.0f} seconds (about 31 years)")
    return timedelta(seconds=seconds)


def _key_options(parser: argparse.ArgumentParser, *, new: bool) -> None:
    parser.add_argument("--key-id", help="the API key id (prompted when omitted)")
    parser.add_argument("--secret-file", help="read the API secret from this file (- for stdin)")
    parser.add_argument("--secret-env", help="read the API secret from this environment variable")
    parser.add_argument(
        "--venue-passphrase-file", help="the key's own passphrase (OKX, KuCoin), from a file"
    )
    parser.add_argument(
        "--kind", choices=["hmac", "ed25519", "rsa", "ec-p256"], default=None if not new else "hmac"
    )
    parser.add_argument(
        "--scopes", help="comma-separated: read,trade,cancel,... (default: read, or as before)"
    )
    parser.add_argument("--symbols", help="comma-separated symbols the key may trade")
    parser.add_argument("--max-notional", help="largest order value the key may place")
    parser.add_argument("--max-quantity", help="largest order quantity the key may place")
    parser.add_argument(
        "--withdraw-address", action="append", help="an allowlisted withdrawal address"
    )
    parser.add_argument("--otp-password-file", help="2FA key: its static OTP password, from a file")
    parser.add_argument("--totp-seed-file", help="2FA key: its TOTP seed (base32), from a file")
    parser.add_argument(
        "--totp-seed-name", help="keystore entry for the TOTP seed (default: otp-<name>)"
    )


def _backup(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from ..keys.backup import backup_keystore
    from ..privacy.retention import parse_period

    max_age = timedelta(seconds=parse_period(args.max_age))
    expires = backup_keystore(_open(args), args.output, max_age=max_age)
    _say(f"wrote {args.output}: restorable until {expires.isoformat(timespec='seconds')}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from ..keys import default_keystore_path
    from ..keys.backup import restore_backup

    target = Path(args.keystore) if args.keystore else default_keystore_path()
    store = restore_backup(args.backup, target, _passphrase(args, new=False))
    _say(f"restored {len(store.names())} key name(s) to {target}")
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``keys`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--keystore", help="keystore file (default: $SECURETRADE_KEYSTORE or the config dir)"
    )
    source = common.add_mutually_exclusive_group()
    source.add_argument("--passphrase-file", help="read the keystore passphrase from a file")
    source.add_argument(
        "--keyring", action="store_true", help="open the keystore with a key in the OS keyring"
    )

    keys = commands.add_parser(
        "keys",
        help="manage API keys in the encrypted keystore",
        description=(
            "Manage API keys in the encrypted keystore (Argon2id + AES-GCM). Secrets never come "
            "from the command line and are never printed: they come from a no-echo prompt, a file"
            " or an environment variable."
        ),
    )
    sub = keys.add_subparsers(dest="keys_command", required=True)

    add = sub.add_parser(
        "add",
        parents=[common],
        help="store a new key",
        description=(
            "Store a new key under NAME, with the scopes, symbols and limits it may use. The "
            "venue is checked before anything is stored."
        ),
    )
    add.add_argument("name")
    add.add_argument("--venue", required=True)
    add.add_argument(
        "--environment", default="live", choices=["live", "testnet", "paper", "simulated"]
    )
    add.add_argument("--overlap", default="10m", help="how long a replaced key is kept")
    _key_options(add, new=True)
    add.set_defaults(run=_add)

    listing = sub.add_parser(
        "list",
        parents=[common],
        help="list stored keys (no secrets)",
        description=(
            "List the stored keys: venue, environment, a hint of the key id, kind, scopes and any"
            " rotation under way. No secret is shown."
        ),
    )
    listing.set_defaults(run=_list)

    show = sub.add_parser(
        "show",
        parents=[common],
        help="show a key's public parts",
        description="Show the public parts of the key stored under NAME (never its secret).",
    )
    show.add_argument("name")
    show.set_defaults(run=_show)

    rotate = sub.add_parser(
        "rotate",
        parents=[common],
        help="replace a key (never wider)",
        description=(
            "Replace the key under NAME by a new one that may do no more than it, now or at --at;"
            " the replaced key stays known for --overlap."
        ),
    )
    rotate.add_argument("name")
    rotate.add_argument("--at", help="ISO time with offset to switch at (default: now)")
    rotate.add_argument("--overlap", help="how long the replaced key stays known (e.g. 15m)")
    _key_options(rotate, new=False)
    rotate.set_defaults(run=_rotate)

    remove = sub.add_parser(
        "remove",
        parents=[common],
        help="delete a key",
        description=(
            "Delete the key under NAME, or with --previous only forget the key it replaced."
        ),
    )
    remove.add_argument("name")
    remove.add_argument(
        "--previous", action="store_true", help="only forget the replaced key (end its overlap)"
    )
    remove.set_defaults(run=_remove)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="ask the venue what the key may really do",
        description=(
            "Ask the venue what the key under NAME may really do, over a pinned connection; "
            "exit 3 when it can do more than it declares."
        ),
    )
    check.add_argument("name")
    check.add_argument("--base-url", help="venue URL (default: the venue's for the environment)")
    check.add_argument("--pin", action="append", help="SPKI SHA-256 pin of the venue (repeat)")
    check.add_argument("--cafile", help="CA bundle to verify the venue with")
    check.add_argument(
        "--unsafe-disable-pinning", action="store_true", help="verify by CA only, no pins"
    )
    check.set_defaults(run=_check)

    backup = sub.add_parser(
        "backup",
        parents=[common],
        help="write an expiring backup (a restore cannot undo erasures)",
        description=(
            "Copy the keystore into a backup that can be restored only until --max-age has "
            "passed, so that restoring it cannot bring back keys erased since."
        ),
    )
    backup.add_argument("-o", "--output", required=True, help="the backup file to write")
    backup.add_argument(
        "--max-age",
        required=True,
        help="restorable for this long (e.g. 30d): keep it under the erasure deadline",
    )
    backup.set_defaults(run=_backup)

    restore = sub.add_parser(
        "restore",
        parents=[common],
        help="restore a backup to --keystore (refused once expired)",
        description="Restore a backup made by 'keys backup'; an expired or altered one is refused.",
    )
    restore.add_argument("backup", help="the backup file")
    restore.set_defaults(run=_restore)
