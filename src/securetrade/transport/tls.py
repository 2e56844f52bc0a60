"""Pinned TLS: the peer must hold a pinned public key, checked before the first request byte.

The pin is ``sha256/<base64 of SHA-256(SubjectPublicKeyInfo DER)>``, the form OkHttp and HPKP
use. It is compared against the *verified* chain (leaf, intermediates and the trusted
root), never against what the peer merely sent, so appending the pinned CA's certificate
to a rogue chain does not pass.

The check lives in the ``do_handshake`` of the SSL socket and SSL object classes set on a
plain :class:`ssl.SSLContext` instance. Every library that handshakes with that context
(httpx sync and async, through a CONNECT proxy too, requests, aiohttp) runs it right after
the handshake and before it writes a request byte; normal CA and hostname verification
stays on.

Every client context securetrade builds (pinned or not) trusts only the CAs the caller
passed, else the platform's own store; it never reads ``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` (OpenSSL's environment overrides, which
:meth:`ssl.SSLContext.load_default_certs` honours), and never writes TLS secrets to
``SSLKEYLOGFILE`` (which :func:`ssl.create_default_context` honours). Whoever can set a
bot's environment could otherwise add a CA of their own, or record every session key.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import ssl
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from .._checks import path, safe_repr, shown
from ..errors import InvalidRequest

__all__ = [
    "PinFailure",
    "check_context",
    "PinSet",
    "load_platform_trust",
    "pin_of_certificate",
    "pinned_ssl_context",
    "verified_ssl_context",
]

_PREFIX = "sha256/"


def pin_of_certificate(der: bytes) -> str:
    """The SPKI pin of a DER certificate."""
    from cryptography import x509  # first used at the first handshake, not at import
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not isinstance(der, (bytes, bytearray, memoryview)):
        raise InvalidRequest(
            "der must be a certificate's DER bytes (ssl.PEM_cert_to_DER_cert turns PEM into it)"
        )
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
    except ValueError:  # cryptography's word for bytes that are no DER certificate
        raise InvalidRequest(
            "der is not a DER certificate: give the certificate's bytes, as "
            "ssl.PEM_cert_to_DER_cert or SSLSocket.getpeercert(binary_form=True) return them"
        ) from None
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return _PREFIX + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class PinFailure(ssl.SSLCertVerificationError):
    """Raised inside the handshake; transports turn it into :class:`errors.PinMismatch`.

    It must be an :class:`ssl.SSLError` so that asyncio, anyio and urllib3 treat it as a
    failed handshake and close the connection without writing application data.
    """

    def __init__(self, host: str | None, seen: list[str]) -> None:
        super().__init__(f"no pinned key in the verified chain of {host}")
        self.host = host
        self.seen = seen


class PinSet:
    """Pins per host pattern. ``example.com`` matches that host only, ``*.example.com``
    one label, ``**.example.com`` any number of labels including none.

    A host that matches no pattern fails closed: pinning is never silently off. At least
    two pins per pattern are required (one may be a backup key not yet deployed), unless
    ``unsafe_single_pin=True``.
    """

    def __init__(
        self, pins: Mapping[str, Iterable[str]], *, unsafe_single_pin: bool = False
    ) -> None:
        table: dict[str, frozenset[str]] = {}
        for pattern, values in _entries(pins):
            clean = frozenset(values)
            for pin in clean:
                _validate_pin(pin)
            if len(clean) < 2 and not unsafe_single_pin:
                raise InvalidRequest(
                    f"pins for {shown(pattern)}: give at least two (the live key and a backup)"
                )
            table[pattern.lower()] = clean
        if not table:
            raise InvalidRequest("a PinSet needs at least one host pattern")
        self._table = table
        self._der_cache: dict[bytes, str] = {}

    @classmethod
    def coerce(cls, pins: PinSet | Mapping[str, Iterable[str]]) -> PinSet:
        """``pins`` as a PinSet: one as it is, a mapping checked and built; anything else
        refused with :class:`~securetrade.errors.InvalidRequest`."""
        return pins if isinstance(pins, PinSet) else cls(pins)

    @safe_repr
    def __repr__(self) -> str:
        return f"PinSet({ {k: sorted(v) for k, v in self._table.items()} })"

    def pins_for(self, host: str | None) -> frozenset[str]:
        """Every pin accepted for ``host`` (exact and wildcard entries together); empty if none."""
        if host is not None and not isinstance(host, str):
            raise InvalidRequest("host must be a host name (text) or None")
        host = (host or "").lower().rstrip(".")
        found: set[str] = set()
        for pattern, pins in self._table.items():
            if _host_matches(pattern, host):
                found |= pins
        return frozenset(found)

    def pin_of(self, der: bytes) -> str:
        """The ``sha256/...`` pin of a DER certificate's public key."""
        if type(der) is not bytes:  # not a cache key: checked (and refused) there
            return pin_of_certificate(der)
        pin = self._der_cache.get(der)
        if pin is None:
            pin = pin_of_certificate(der)
            if len(self._der_cache) < 256:
                self._der_cache[der] = pin
        return pin

    def check(self, chain: list[bytes], host: str | None) -> None:
        """Raise :class:`PinFailure` unless a certificate of ``chain`` carries a pin."""
        if not isinstance(chain, (list, tuple)):
            raise InvalidRequest("chain must be a list of DER certificates (bytes), leaf first")
        wanted = self.pins_for(host)
        seen = [self.pin_of(der) for der in chain]
        if not wanted or wanted.isdisjoint(seen):
            raise PinFailure(host, seen)


_SHAPE = "pins={'api.example.com': ['sha256/<live key>', 'sha256/<backup key>']}"


def _entries(pins: Any) -> list[tuple[str, list[Any]]]:
    """The (host pattern, pins) pairs of ``pins``, or InvalidRequest naming what is wrong:
    a list or a string where a mapping of host to pins belongs, a bare string where a list
    of pins belongs (its characters would be read as pins), a key that is not a host."""
    if isinstance(pins, PinSet):
        return [(pattern, list(values)) for pattern, values in pins._table.items()]
    if not isinstance(pins, Mapping):
        raise InvalidRequest(
            f"pins must map each host to its pins, got {type(pins).__name__}: pass {_SHAPE} "
            "(`securetrade pins <host>` prints them)"
        )
    entries = []
    for pattern, values in pins.items():
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidRequest(f"pins: {shown(pattern)} is not a host name or pattern: {_SHAPE}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InvalidRequest(
                f"pins for {shown(pattern)} must be a list of pins, got {type(values).__name__}: "
                f"{_SHAPE}"
            )
        listed = list(values)
        for pin in listed:
            if not isinstance(pin, str):
                raise InvalidRequest(
                    f"pins for {shown(pattern)}: each pin is a 'sha256/<base64>' string, got "
                    f"{type(pin).__name__}"
                )
        entries.append((pattern, listed))
    return entries


def _validate_pin(pin: str) -> None:
    if not pin.startswith(_PREFIX):
        raise InvalidRequest(f"pin {shown(pin)} must start with {_PREFIX!r}")
    try:
        raw = base64.b64decode(pin[len(_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidRequest(f"pin {shown(pin)} is not valid base64") from None
    if len(raw) != 32:
        raise InvalidRequest(f"pin {shown(pin)} is not a SHA-256 digest")


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("**."):
        suffix = pattern[3:]
        return host == suffix or host.endswith("." + suffix)
    if pattern.startswith("*."):
        suffix = pattern[2:]
        head, _, tail = host.partition(".")
        return bool(head) and tail == suffix
    return fnmatch.fnmatchcase(host, pattern) if "*" in pattern else host == pattern


def _verified_chain(ssl_obj: Any) -> list[bytes]:
    """DER certificates of the verified chain, leaf first."""
    if sys.version_info >= (3, 13):
        return [bytes(c) for c in ssl_obj.get_verified_chain()]
    inner = ssl_obj._sslobj  # 3.10-3.12 expose the chain only on the C object
    return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in inner.get_verified_chain()]  # type: ignore[attr-defined]


def _client_context() -> ssl.SSLContext:
    """What :func:`ssl.create_default_context` makes for a client, minus its reading of
    the environment: CA and hostname verification, TLS 1.2 or newer, no key log."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.keylog_filename = None  # type: ignore[assignment]  # never SSLKEYLOGFILE
    return context


def load_trust(
    context: ssl.SSLContext, *, cafile: str | None = None, cadata: str | bytes | None = None
) -> None:
    """Trust the CA certificates in ``cafile`` (a PEM file) and ``cadata`` (PEM text or DER
    bytes); one that holds none is refused before any connection is made."""
    if cafile is not None:
        path("cafile (a PEM file of CA certificates)", cafile)
    if cadata is not None and (not isinstance(cadata, (str, bytes)) or not cadata):
        raise InvalidRequest("cadata must be PEM text or DER bytes of CA certificates")
    try:
        context.load_verify_locations(cafile=cafile, cadata=cadata)
    except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
        what = "cafile" if cafile is not None else "cadata"
        raise InvalidRequest(
            f"{what}: no CA certificate could be loaded from it ({exc}); pass a PEM bundle"
        ) from None


def verified_ssl_context(
    *, cafile: str | None = None, cadata: str | bytes | None = None
) -> ssl.SSLContext:
    """A client context verified against ``cafile``/``cadata``, else the platform store.

    For the paths without pins (``unsafe_disable_pinning``, ``securetrade pins --host``).
    """
    context = _client_context()
    if cafile is not None or cadata is not None:
        load_trust(context, cafile=cafile, cadata=cadata)
    else:
        load_platform_trust(context)
    _MADE[context] = None  # verified, deliberately without pins
    return context


# The client contexts made here, each with the socket and object classes that check its
# pins (None: verified without pins, as asked for). A transport takes no other.
_MADE: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[type, type] | None] = (
    weakref.WeakKeyDictionary()
)
_TLS_12_OR_NEWER = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
_HOW = (
    "build it with securetrade.transport.tls.pinned_ssl_context(PinSet({...})) "
    "(or verified_ssl_context() to go without pins) and leave it as made"
)


def check_context(context: object) -> None:
    """Refuse a TLS context a transport must not use, before any connection is made.

    Every transport calls this when it is built and again before each new connection
    (the httpx ones before each request), so a context can be neither slipped in (one
    made elsewhere may skip verification, trust ``SSL_CERT_FILE`` or log session keys)
    nor weakened after the fact (verification turned off, pins unhooked, a key log
    file set, an old TLS version allowed): each would let a man in the middle read or
    answer a signed request. Raises :class:`~securetrade.errors.InvalidRequest`.
    """
    if not isinstance(context, ssl.SSLContext):
        raise InvalidRequest(f"ssl_context must be an ssl.SSLContext: {_HOW}")
    try:
        hooks = _MADE[context]
    except KeyError:
        raise InvalidRequest(
            "ssl_context was not made by securetrade (a context built elsewhere may skip "
            f"verification, read SSL_CERT_FILE or log its keys): {_HOW}"
        ) from None
    except TypeError:  # not hashable as a weak key: certainly not one of ours
        raise InvalidRequest(f"ssl_context was not made by securetrade: {_HOW}") from None
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise InvalidRequest(f"ssl_context no longer verifies certificates and host names: {_HOW}")
    if context.minimum_version not in _TLS_12_OR_NEWER:
        raise InvalidRequest(f"ssl_context allows TLS older than 1.2: {_HOW}")
    if context.keylog_filename is not None:
        raise InvalidRequest(f"ssl_context writes its session keys to a file: {_HOW}")
    if hooks is not None and (context.sslsocket_class, context.sslobject_class) != hooks:
        raise InvalidRequest(f"ssl_context no longer checks its pins: {_HOW}")


# Where distributions keep their CA bundle, for a Python whose compiled-in OpenSSL path
# does not exist on this system (relocatable builds): Debian and Ubuntu, Fedora and RHEL,
# openSUSE, RHEL's extracted bundle, Alpine and macOS, Homebrew's OpenSSL.
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
)


def load_platform_trust(context: ssl.SSLContext) -> None:
    """Load the platform's CA store into ``context``, ignoring the environment.

    On Windows: the system store (as :meth:`~ssl.SSLContext.load_default_certs` loads it,
    without its ``set_default_verify_paths``). Elsewhere: OpenSSL's compiled-in CA file
    and directory (:func:`ssl.get_default_verify_paths`' ``openssl_cafile`` and
    ``openssl_capath``, not the ``SSL_CERT_FILE``/``SSL_CERT_DIR`` overrides), or the
    distribution's bundle where the compiled-in file does not exist.
    """
    if sys.platform == "win32":
        for store in ("CA", "ROOT"):
            ders = bytearray()
            for cert, encoding, trust in ssl.enum_certificates(store):
                if encoding == "x509_asn" and (
                    trust is True or ssl.Purpose.SERVER_AUTH.oid in trust
                ):
                    ders.extend(cert)
            if ders:
                context.load_verify_locations(cadata=bytes(ders))
        return
    paths = ssl.get_default_verify_paths()
    cafile: str | None = paths.openssl_cafile
    if not cafile or not os.path.isfile(cafile):
        cafile = next((path for path in _SYSTEM_BUNDLES if os.path.isfile(path)), None)
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath or "") else None
    if cafile is not None or capath is not None:
        context.load_verify_locations(cafile=cafile, capath=capath)


_wrapping = threading.local()  # the socket ``PinnedSocket._create`` is making, per thread


def pinned_ssl_context(
    pins: PinSet,
    *,
    cafile: str | None = None,
    cadata: str | bytes | None = None,
) -> ssl.SSLContext:
    """A client context with CA and hostname verification, TLS 1.2 or newer, and ``pins``.

    Without ``cafile``/``cadata`` the platform's trust store is used (never one named by
    the environment; see :func:`load_platform_trust`), read at the first handshake rather
    than here (reading the bundle takes tens of milliseconds, a tenth of ``import
    securetrade`` plus a client), before any certificate is checked. The context is a
    plain :class:`ssl.SSLContext` (not a subclass) so anyio does not move handshakes to a
    thread.
    """
    context = _client_context()
    trust = _Trust(context, cafile=cafile, cadata=cadata)

    class PinnedSocket(ssl.SSLSocket):
        def __new__(cls, *args: Any, **kwargs: Any) -> PinnedSocket:
            self = super().__new__(cls, *args, **kwargs)
            _wrapping.made = self
            return self

        @classmethod
        def _create(cls, sock: Any, *args: Any, **kwargs: Any) -> PinnedSocket:
            # CPython's own ``_create`` takes the descriptor from ``sock`` and then, if the
            # peer reset the connection before the handshake, raises from its "connected?"
            # probe without closing the socket it made: the descriptor would wait for the
            # garbage collector. Close it here, whatever ``_create`` raised.
            _wrapping.made = None
            try:
                return super()._create(sock, *args, **kwargs)  # type: ignore[misc, no-any-return]
            except BaseException:
                orphan = _wrapping.made
                if orphan is not None:
                    orphan.close()
                raise
            finally:
                _wrapping.made = None

        def do_handshake(self, block: bool = False) -> None:
            trust.ready()
            super().do_handshake(block)
            try:
                pins.check(_verified_chain(self), self.server_hostname)
            except PinFailure:
                self.close()
                raise

    class PinnedObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            trust.ready()
            super().do_handshake()
            pins.check(_verified_chain(self), self.server_hostname)

    context.sslsocket_class = PinnedSocket
    context.sslobject_class = PinnedObject
    _MADE[context] = (PinnedSocket, PinnedObject)
    return context


class _Trust:
    """The CAs a context verifies against: given ones at once, the platform's on first use."""

    def __init__(
        self, context: ssl.SSLContext, *, cafile: str | None, cadata: str | bytes | None
    ) -> None:
        self._context = context
        self._lock = threading.Lock()
        self._loaded = False
        if cafile is not None or cadata is not None:
            load_trust(context, cafile=cafile, cadata=cadata)
            self._loaded = True

    def ready(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                load_platform_trust(self._context)
                self._loaded = True
