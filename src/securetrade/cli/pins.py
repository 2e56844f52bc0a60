"""``securetrade pins``: compute a pin set from a certificate file or a live host.

Pins are SPKI SHA-256 hashes (the form :class:`securetrade.transport.PinSet` takes). The
suggestion pins the issuing CA and the root rather than the leaf: leaves are reissued
every few months, while a CA key changes rarely, so the set survives routine renewals
and still names a backup should the primary CA be replaced.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import socket
import ssl
from pathlib import Path
from typing import Any

__all__ = ["ChainEntry", "chain_from_file", "chain_from_host", "register", "role", "suggest"]

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.*?-----END CERTIFICATE-----", re.DOTALL)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainEntry:
    """One certificate of a chain, with what a person needs to choose pins."""

    subject: str
    issuer: str
    not_after: str
    is_ca: bool
    pin: str


def _entry(der: bytes) -> ChainEntry:
    from cryptography import x509

    from ..transport.tls import pin_of_certificate

    cert = x509.load_der_x509_certificate(der)
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return ChainEntry(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.isoformat(),
        is_ca=is_ca,
        pin=pin_of_certificate(der),
    )


def chain_from_file(path: Path) -> list[ChainEntry]:
    """Every certificate of a PEM bundle, or the one certificate of a DER file."""
    from ..errors import InvalidRequest

    data = path.read_bytes()
    blocks = _PEM.findall(data)
    if not blocks and data[:1] != b"\x30":  # neither PEM nor an ASN.1 SEQUENCE (DER)
        raise InvalidRequest(f"{path} holds no PEM or DER certificate: pass a certificate file")
    try:
        ders = [ssl.PEM_cert_to_DER_cert(b.decode("ascii")) for b in blocks] if blocks else [data]
        return [_entry(der) for der in ders]
    except (ValueError, UnicodeError) as exc:
        raise InvalidRequest(f"{path}: not a valid certificate ({exc})") from None


def chain_from_host(
    host: str, port: int = 443, *, cafile: str | None = None, timeout: float = 10.0
) -> list[ChainEntry]:
    """The chain the host presents, as verified against the system (or given) trust store:
    leaf first, root last. Normal verification stays on, so a host that does not validate
    gives no pins."""
    from ..transport.tls import _verified_chain, verified_ssl_context

    context = verified_ssl_context(cafile=cafile)  # never SSL_CERT_FILE, never a key log
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return [_entry(der) for der in _verified_chain(tls)]


def role(entry: ChainEntry) -> str:
    """What a certificate is: a self-signed CA (a root), an intermediate CA, or a leaf."""
    self_signed = entry.subject == entry.issuer
    if entry.is_ca:
        return "self-signed CA" if self_signed else "intermediate CA"
    return "self-signed leaf" if self_signed else "leaf"


def suggest(chain: list[ChainEntry]) -> list[str]:
    """Two or more pins for a chain: its CA certificates (issuer first), else the leaf.

    A lone self-signed leaf yields one pin; the caller is told to add a backup key's pin.
    """
    cas = [entry.pin for entry in chain if entry.is_ca]
    chosen = cas or [chain[0].pin]
    return list(dict.fromkeys(chosen))


def _print_chain(chain: list[ChainEntry], host: str | None, as_json: bool) -> None:
    pins = suggest(chain)
    if as_json:
        body: dict[str, Any] = {
            "chain": [dataclasses.asdict(entry) for entry in chain],
            "suggested": {host or "*": pins},
        }
        print(json.dumps(body, indent=2))
        return
    for depth, entry in enumerate(chain):
        print(f"[{depth}] {role(entry)}  {entry.subject}")
        print(f"       issuer     {entry.issuer}")
        print(f"       expires    {entry.not_after}")
        print(f"       pin        {entry.pin}")
    print()
    print("Suggested pin set (CA keys survive leaf renewals):")
    print(f"  pins={{{json.dumps(host or '*')}: {json.dumps(pins)}}}")
    print(f"  securetrade keys check: {' '.join(f'--pin {pin}' for pin in pins)}")
    if len(pins) < 2:
        print(
            "  Only one pin: a PinSet needs at least two. Add the pin of a backup key kept "
            "offline (securetrade pins backup-cert.pem) so a key change does not lock you out."
        )


def _run(args: argparse.Namespace) -> int:
    from ._guard import fail

    try:
        if args.host is not None:  # "" too: no host (the file mode would get no file)
            host, _, port = args.host.partition(":")
            if not host or not (port or "443").isdigit() or not 0 < int(port or 443) < 65536:
                fail(f"--host {args.host!r} is not HOST or HOST:PORT (a port from 1 to 65535)")
            chain = chain_from_host(host, int(port or 443), cafile=args.cafile)
            _print_chain(chain, host, args.json)
        else:
            _print_chain(chain_from_file(Path(args.file)), args.for_host, args.json)
    except UnicodeError:  # the IDNA codec: a label empty or over 63 characters
        fail(f"--host {args.host[:80]!r} is not a host name (labels of 1 to 63 characters)")
    except ssl.SSLError as exc:
        fail(f"TLS with {args.host} failed ({exc.reason or exc}); check --host and --cafile")
    except OSError as exc:
        target = args.host or args.file
        fail(f"{target}: {exc.strerror or exc}; check the path, host and port")
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``pins``."""
    pins = commands.add_parser(
        "pins",
        help="compute a TLS pin set from a certificate file or a live host",
        description=(
            "Print the SPKI SHA-256 pins of a certificate file or of the chain a live host "
            "presents, with a suggested pin set (CA keys, which survive leaf renewals)."
        ),
    )
    source = pins.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="PEM bundle or DER certificate")
    source.add_argument("--host", help="HOST[:PORT] to connect to and read the chain from")
    pins.add_argument("--cafile", help="trust these CAs instead of the system store (--host)")
    pins.add_argument("--for-host", help="host pattern to key the suggested set (file mode)")
    pins.add_argument("--json", action="store_true", help="machine-readable output")
    pins.set_defaults(run=_run)
