"""The keystore's file: its format, the keys derived for it, and sealed writes.

The JSON document (header, passphrase check, nonce, AES-256-GCM ciphertext with the header
as associated data), the keys derived from a passphrase (Argon2id or Scrypt, with floors
against a downgrade) or from a key-encryption key in the OS keyring, sealing and opening
the entries, and the atomic 0600 write. The lowest layer of the keystore: the entries
(``keystore_entries``) and the :class:`~securetrade.keys.keystore.KeyStore` build on it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, NoReturn

from .._checks import shown
from ..errors import (
    KeyNotFound,
    KeystoreError,
    KeystorePermissions,
    KeystoreTampered,
    WrongPassphrase,
)
from .secret import Secret

__all__: list[str] = []

FORMAT = "securetrade-keystore"
VERSION = 1
CIPHER = "aes-256-gcm"
_CHECK_LABEL = b"securetrade keystore v1: passphrase check"
_HKDF_INFO = b"securetrade keystore v1: keyring"

# The floor below which a header's KDF parameters are treated as a downgrade attack.
_ARGON2_MIN = {"iterations": 2, "lanes": 1, "memory_kib": 19 * 1024}
_ARGON2_MAX = {"iterations": 64, "lanes": 64, "memory_kib": 4 * 1024 * 1024}
_SCRYPT_MIN_N, _SCRYPT_MAX_N = 2**15, 2**22


class _Keys:
    """The two derived keys; never printed, never pickled."""

    __slots__ = ("check", "encrypt")

    def __init__(self, material: bytes) -> None:
        self.encrypt = Secret(material[:32])
        self.check = Secret(material[32:64])

    def check_value(self) -> str:
        return _b64(hmac.new(self.check.expose(), _CHECK_LABEL, hashlib.sha256).digest())

    def __repr__(self) -> str:
        return "_Keys(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("derived keys cannot be pickled")


def _derive_from_passphrase(passphrase: Secret, kdf: dict[str, Any]) -> _Keys:
    salt = _unb64(kdf.get("salt"), "kdf.salt")
    if len(salt) < 16:
        raise KeystoreTampered("keystore KDF salt is too short: the header was altered")
    name = kdf.get("name")
    if name == "argon2id":
        values: dict[str, int] = {}
        for k in _ARGON2_MIN:
            v = kdf.get(k)
            if not isinstance(v, int) or not _ARGON2_MIN[k] <= v <= _ARGON2_MAX[k]:
                raise KeystoreTampered(f"keystore KDF parameter {k} is out of bounds")
            values[k] = v
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        material = Argon2id(
            salt=salt,
            length=64,
            iterations=values["iterations"],
            lanes=values["lanes"],
            memory_cost=values["memory_kib"],
        ).derive(passphrase.expose())
    elif name == "scrypt":
        n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
        if not (
            isinstance(n, int)
            and _SCRYPT_MIN_N <= n <= _SCRYPT_MAX_N
            and n & (n - 1) == 0
            and isinstance(r, int)
            and 8 <= r <= 32
            and isinstance(p, int)
            and 1 <= p <= 16
        ):
            raise KeystoreTampered("keystore scrypt parameters are out of bounds")
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        material = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.expose())
    else:
        raise KeystoreTampered(f"keystore names an unknown KDF {shown(name)}")
    return _Keys(material)


def _derive_from_kek(kek: Secret, kdf: dict[str, Any]) -> _Keys:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    salt = _unb64(kdf.get("salt"), "kdf.salt")
    return _Keys(HKDF(hashes.SHA256(), 64, salt, _HKDF_INFO).derive(kek.expose()))


def _keyring_kek(service: str, username: str, *, create: bool) -> Secret:
    try:
        import keyring
    except ImportError:
        raise KeystoreError(
            "the OS keyring needs the optional keyring package: pip install 'securetrade[keyring]'"
        ) from None
    from keyring.errors import KeyringError

    try:
        found = keyring.get_password(service, username)
        stored = Secret(found) if found else None  # the KEK's text never sits in a bare local
        del found
        if stored is None:
            if not create:
                raise WrongPassphrase(
                    f"the OS keyring holds no key-encryption key for this keystore "
                    f"(service {shown(service)}, entry {shown(username)})"
                )
            kek = Secret(secrets.token_bytes(32))
            keyring.set_password(service, username, _b64(kek.expose()))
            return kek
    except KeyringError as exc:  # no backend (a server, a container), locked, refused
        raise KeystoreError(
            f"the OS keyring is not usable here ({type(exc).__name__}); install and unlock "
            "a keyring backend, or use a passphrase: KeyStore.create(path, passphrase)"
        ) from None
    kek_or_none = _b64_secret(stored)
    if kek_or_none is None or len(kek_or_none) != 32:
        raise WrongPassphrase("the OS keyring entry for this keystore is not a 32-byte key")
    return kek_or_none


def _b64_secret(text: Secret) -> Secret | None:
    """The bytes ``text`` encodes in base64, as a Secret; None when it is not base64."""
    try:
        decoded = base64.b64decode(text.expose(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Secret(decoded) if decoded else None


class _Plain(dict[str, Any]):
    """Decrypted keystore content: a dict whose ``repr`` never shows its values.

    Every JSON object read from the plaintext becomes one (``json.loads(object_hook=)``),
    so a local holding an entry, a record or the whole set renders masked in a traceback
    rendered with its locals, a debugger or an error reporter.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<decrypted keystore content: {len(self)} fields, not shown>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("decrypted keystore content cannot be pickled")


# --- the file ----------------------------------------------------------------------------------


def _read_document(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyNotFound(
            f"no keystore at {path}; create one with `securetrade keys add`"
        ) from None
    except OSError as exc:
        raise KeystoreError(f"cannot open keystore {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if os.name == "posix":
            if info.st_uid != os.getuid():
                raise KeystorePermissions(f"{path} belongs to another user; refusing to use it")
            if info.st_mode & 0o077:
                raise KeystorePermissions(
                    f"{path} has mode {stat.filemode(info.st_mode)}: other users may read it. "
                    f"Run: chmod 600 {path}"
                )
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            raw = handle.read()
    finally:
        if fd >= 0:
            os.close(fd)
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KeystoreTampered(f"{path} is not a keystore (not JSON): corrupted?") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeystoreTampered(f"{path} is not a securetrade keystore")
    if document.get("version") != VERSION or document.get("cipher") != CIPHER:
        raise KeystoreTampered(f"{path}: unsupported keystore version or cipher")
    for name, kind in (("kdf", dict), ("check", str), ("nonce", str), ("ciphertext", str)):
        if not isinstance(document.get(name), kind):
            raise KeystoreTampered(f"{path}: keystore field {shown(name)} is missing or malformed")
    extra = set(document) - {"format", "version", "cipher", "kdf", "check", "nonce", "ciphertext"}
    if extra:
        raise KeystoreTampered(f"{path}: unexpected keystore fields {sorted(extra)}")
    return document


def _associated_data(document: dict[str, Any]) -> bytes:
    header = {k: v for k, v in document.items() if k != "ciphertext"}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _decrypt(document: dict[str, Any], keys: _Keys) -> _Plain:
    """The entries of a sealed document, as :class:`_Plain` dicts (masked reprs).

    Failures are raised outside any ``except`` block, so no error carries the plaintext
    in its context.
    """
    if not hmac.compare_digest(keys.check_value(), document["check"]):
        raise WrongPassphrase("wrong passphrase: it does not open this keystore")
    plaintext = _unseal(document, keys)
    if plaintext is None:
        raise KeystoreTampered(
            "keystore failed authentication: the file was altered or corrupted; "
            "restore it from a backup"
        )
    entries = _parse_entries(plaintext)
    if entries is None:
        raise KeystoreTampered("keystore content is malformed")
    return entries


def _unseal(document: dict[str, Any], keys: _Keys) -> Secret | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = _unb64(document["nonce"], "nonce")
    ciphertext = _unb64(document["ciphertext"], "ciphertext")
    try:
        return Secret(
            AESGCM(keys.encrypt.expose()).decrypt(nonce, ciphertext, _associated_data(document))
        )
    except (InvalidTag, ValueError):  # an empty plaintext too: the store never writes one
        return None


def _parse_entries(plaintext: Secret) -> _Plain | None:
    try:
        content = json.loads(plaintext.expose(), object_hook=_Plain)
    except (ValueError, RecursionError):
        return None
    entries = content.get("entries") if isinstance(content, dict) else None
    return entries if isinstance(entries, _Plain) else None


def _seal(entries: _Plain, keys: _Keys, kdf: dict[str, Any]) -> dict[str, Any]:
    """The document for ``entries``: public header, check value, nonce and ciphertext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "cipher": CIPHER,
        "kdf": kdf,
        "check": keys.check_value(),
        "nonce": _b64(nonce),
    }
    plaintext = Secret(
        json.dumps({"entries": entries}, sort_keys=True, separators=(",", ":")).encode()
    )
    document["ciphertext"] = _b64(
        AESGCM(keys.encrypt.expose()).encrypt(nonce, plaintext.expose(), _associated_data(document))
    )
    return document


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a 0600 temporary file beside ``path``, fsync, then rename it."""
    import tempfile

    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, name: str) -> bytes:
    if not isinstance(text, str):
        raise KeystoreTampered(f"keystore field {name} is malformed")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreTampered(f"keystore field {name} is not base64") from None
