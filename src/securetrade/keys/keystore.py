"""``KeyStore``: API keys at rest in one encrypted, authenticated file (guarantee 7).

The file is JSON with a small header and one ciphertext::

    {"format": "securetrade-keystore", "version": 1, "cipher": "aes-256-gcm",
     "kdf": {"name": "argon2id", "salt": ..., "iterations": 3, "lanes": 4, "memory_kib": 65536},
     "check": ..., "nonce": ..., "ciphertext": ...}

Everything but the ciphertext is authenticated as AES-GCM associated data, so changing a
KDF parameter, the nonce or the format is detected like a change to the ciphertext. The
64 bytes derived from the passphrase (Argon2id, memory-hard; Scrypt where Argon2id is not
available) split into the encryption key and a check key; ``check`` (an HMAC under the
check key) tells a wrong passphrase (:class:`WrongPassphrase`) apart from an altered file
(:class:`KeystoreTampered`). KDF parameters below a safe floor count as tampering, so an
attacker cannot downgrade them. Instead of a passphrase, a random key-encryption key held
in the OS keyring can open the file (``keyring`` extra).

Writes are atomic (temporary file, fsync, rename) and create the file with mode 0600;
reads refuse a file other users can access (:class:`KeystorePermissions`).

An open store keeps the ciphertext, not the plaintext: each read decrypts the entries it
needs and drops them, so neither ``vars(store)`` nor a crash report of a long-running bot
shows the stored secrets. Decrypted entries only ever sit in locals whose ``repr`` is
masked (:class:`_Plain`), so a traceback rendered with its locals shows none of them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import (
    InvalidRequest,
    KeyNotFound,
    KeystoreError,
    KeystorePermissions,
    KeystoreTampered,
    ScopeError,
    WrongPassphrase,
)
from .apikey import ApiKey
from .otp import OtpSource, StaticOtp, TotpOtp
from .ring import DEFAULT_OVERLAP, KeyRing
from .secret import Secret

if TYPE_CHECKING:
    from ..oauth.credential import OAuthCredential

__all__ = ["InboundEntry", "KdfParams", "KeyStore", "default_keystore_path"]

FORMAT = "securetrade-keystore"
VERSION = 1
CIPHER = "aes-256-gcm"
_CHECK_LABEL = b"securetrade keystore v1: passphrase check"
_HKDF_INFO = b"securetrade keystore v1: keyring"
KEYRING_SERVICE = "securetrade-keystore"
_INBOUND_ID = re.compile(r"[A-Za-z0-9_.:/-]{1,128}").fullmatch

# The floor below which a header's KDF parameters are treated as a downgrade attack.
_ARGON2_MIN = {"iterations": 2, "lanes": 1, "memory_kib": 19 * 1024}
_ARGON2_MAX = {"iterations": 64, "lanes": 64, "memory_kib": 4 * 1024 * 1024}
_SCRYPT_MIN_N, _SCRYPT_MAX_N = 2**15, 2**22


def default_keystore_path() -> Path:
    """``$SECURETRADE_KEYSTORE``, else ``keys.json.enc`` in the user's config directory."""
    explicit = os.environ.get("SECURETRADE_KEYSTORE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "securetrade" / "keys.json.enc"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """How a passphrase becomes a key. The defaults are RFC 9106's second recommendation
    (Argon2id, 3 passes, 4 lanes, 64 MiB); ``name="scrypt"`` uses ``n``, ``r``, ``p``."""

    name: str = "argon2id"
    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 64 * 1024
    n: int = 2**17
    r: int = 8
    p: int = 1

    @classmethod
    def default(cls) -> KdfParams:
        """Argon2id where this ``cryptography`` has it (>= 44), else Scrypt."""
        try:
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: F401
        except ImportError:  # pragma: no cover - older cryptography
            return cls(name="scrypt")
        return cls()

    def header(self, salt: bytes) -> dict[str, Any]:
        """The parameters and ``salt`` as written in the keystore header, to derive the same key
        later."""
        if self.name == "argon2id":
            return {
                "name": "argon2id",
                "salt": _b64(salt),
                "iterations": self.iterations,
                "lanes": self.lanes,
                "memory_kib": self.memory_kib,
            }
        if self.name == "scrypt":
            return {"name": "scrypt", "salt": _b64(salt), "n": self.n, "r": self.r, "p": self.p}
        raise InvalidRequest(f"unknown KDF {self.name!r} (argon2id or scrypt)")


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
        raise KeystoreTampered(f"keystore names an unknown KDF {name!r}")
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
    found = keyring.get_password(service, username)
    stored = Secret(found) if found else None  # the KEK's text never sits in a bare local
    del found
    if stored is None:
        if not create:
            raise WrongPassphrase(
                f"the OS keyring holds no key-encryption key for this keystore "
                f"(service {service!r}, entry {username!r})"
            )
        kek = Secret(secrets.token_bytes(32))
        keyring.set_password(service, username, _b64(kek.expose()))
        return kek
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


class KeyStore:
    """Named API keys (each with its rotation state) in an encrypted file.

    Open one with :meth:`open` / :meth:`open_with_keyring`, or make a new file with
    :meth:`create` / :meth:`create_with_keyring`. Every change is written at once,
    atomically. Keys come out as :class:`ApiKey` (:meth:`get`) or :class:`KeyRing`
    (:meth:`ring`), decrypted for that call only: the store holds the ciphertext.
    """

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        keys: _Keys,
        sealed: dict[str, Any],
        names: Iterable[str] = (),
    ) -> None:
        self._path = path
        self._header = header
        self._keys = keys
        self._sealed = sealed  # the document as on disk: ciphertext and public header
        self._names = tuple(sorted(names))  # for repr: names are not secret

    # --- opening and creating ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str | bytes | Secret,
        *,
        kdf: KdfParams | None = None,
    ) -> KeyStore:
        """A new, empty keystore at ``path`` protected by ``passphrase``."""
        secret = _passphrase(passphrase)
        del passphrase  # only the Secret stays in this frame
        if len(secret) < 8:
            raise InvalidRequest("a keystore passphrase needs at least 8 characters")
        params = kdf or KdfParams.default()
        header = {"kdf": params.header(secrets.token_bytes(16))}
        keys = _derive_from_passphrase(secret, header["kdf"])
        return cls._new(Path(path), header, keys)

    @classmethod
    def create_with_keyring(
        cls, path: str | os.PathLike[str], *, service: str = KEYRING_SERVICE
    ) -> KeyStore:
        """A new keystore whose key-encryption key is generated into the OS keyring."""
        username = secrets.token_hex(8)
        header = {
            "kdf": {
                "name": "keyring",
                "service": service,
                "username": username,
                "salt": _b64(secrets.token_bytes(16)),
            }
        }
        keys = _derive_from_kek(_keyring_kek(service, username, create=True), header["kdf"])
        return cls._new(Path(path), header, keys)

    @classmethod
    def _new(cls, path: Path, header: dict[str, Any], keys: _Keys) -> KeyStore:
        if path.exists():
            raise KeystoreError(f"{path} already exists; open it instead")
        store = cls(path, header, keys, _seal(_Plain(), keys, header["kdf"]))
        with store._locked() as entries:
            store._write(entries)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: str | bytes | Secret) -> KeyStore:
        """Open and decrypt ``path``. Raises :class:`WrongPassphrase`,
        :class:`KeystoreTampered`, :class:`KeystorePermissions` or :class:`KeyNotFound`."""
        secret = _passphrase(passphrase)
        del passphrase  # only the Secret stays in this frame
        return cls._open(
            Path(path), lambda kdf: _derive_from_passphrase(secret, kdf), keyring=False
        )

    @classmethod
    def open_with_keyring(cls, path: str | os.PathLike[str]) -> KeyStore:
        """Open ``path`` with its key-encryption key from the OS keyring."""

        def derive(kdf: dict[str, Any]) -> _Keys:
            service, username = kdf.get("service"), kdf.get("username")
            if not isinstance(service, str) or not isinstance(username, str):
                raise KeystoreTampered("keystore keyring reference is malformed")
            return _derive_from_kek(_keyring_kek(service, username, create=False), kdf)

        return cls._open(Path(path), derive, keyring=True)

    @classmethod
    def _open(
        cls, path: Path, derive: Callable[[dict[str, Any]], _Keys], *, keyring: bool
    ) -> KeyStore:
        document = _read_document(path)
        header = {"kdf": document["kdf"]}
        if (document["kdf"].get("name") == "keyring") != keyring:
            wanted = "a passphrase" if keyring else "the OS keyring (--keyring)"
            raise WrongPassphrase(f"this keystore is opened with {wanted}")
        keys = derive(document["kdf"])
        names = _key_names(_decrypt(document, keys))  # a wrong key or an altered file fails here
        return cls(path, header, keys, document, names)

    @property
    def path(self) -> Path:
        """The keystore file."""
        return self._path

    @property
    def uses_keyring(self) -> bool:
        """Whether the file's key is kept in the system keyring rather than derived from a
        passphrase."""
        return bool(self._header["kdf"].get("name") == "keyring")

    # --- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the stored keys, sorted."""
        return _key_names(_decrypt(self._sealed, self._keys))

    def get(self, name: str) -> ApiKey:
        """The key a client should sign with now under ``name`` (rotation applied)."""
        return self.ring(name).active()

    def ring(self, name: str, **options: Any) -> KeyRing:
        """The :class:`KeyRing` stored under ``name``: current, next and previous keys.

        ``options`` may hold a ``clock`` for the ring (tests inject one); the rest of the
        ring comes from the store.
        """
        unknown = sorted(set(options) - {"clock"})
        if unknown:
            raise InvalidRequest(
                f"KeyStore.ring() takes only clock= besides the name, not {', '.join(unknown)}"
            )
        if "clock" in options and not callable(options["clock"]):
            raise InvalidRequest("clock= must be a function returning an aware datetime")
        plain = _decrypt(self._sealed, self._keys)
        return _ring_from(_entry_in(plain, name, self._path), options, plain)

    # --- changing (each change is written at once) -----------------------------------------

    def add(self, name: str, key: ApiKey, *, overlap: timedelta = DEFAULT_OVERLAP) -> None:
        """Store ``key`` under the new ``name``."""
        _check_name(name)
        with self._locked() as entries:
            if name in entries:
                raise InvalidRequest(f"a key named {name!r} exists; rotate or remove it")
            entries[name] = _entry_from(KeyRing(key, overlap=overlap), entries)
            self._write(entries)

    def rotate(
        self,
        name: str,
        key: ApiKey,
        *,
        activate_at: datetime | None = None,
        overlap: timedelta | None = None,
    ) -> KeyRing:
        """Replace the key under ``name`` by ``key`` (never wider; see :class:`KeyRing`).

        Without ``activate_at`` the switch is immediate and the old key stays as
        ``previous`` for the overlap window; with it, ``key`` is staged to take over then.
        """
        with self._locked() as entries:
            ring = _ring_from(_entry_in(entries, name, self._path), {}, entries)
            if overlap is not None:
                if overlap < timedelta(0):
                    raise InvalidRequest("overlap must not be negative")
                ring.overlap = overlap
            ring.stage(key, activate_at=activate_at)
            if activate_at is None:
                ring.promote()
            entries[name] = _entry_from(ring, entries)
            self._write(entries)
            return ring

    def retire(self, name: str) -> None:
        """Forget the replaced key under ``name`` (delete it at the venue too)."""
        with self._locked() as entries:
            ring = _ring_from(_entry_in(entries, name, self._path), {}, entries)
            previous = ring.previous
            if previous is None:
                raise KeyNotFound(f"{name!r} holds no replaced key to retire")
            ring.retire(previous.key_id)
            entries[name] = _entry_from(ring, entries)
            self._write(entries)

    def remove(self, name: str) -> None:
        """Delete ``name`` and every key under it."""
        with self._locked() as entries:
            _entry_in(entries, name, self._path)
            del entries[name]
            self._write(entries)

    def change_passphrase(self, passphrase: str | bytes | Secret) -> None:
        """Re-encrypt under a new passphrase, with a new salt."""
        secret = _passphrase(passphrase)
        del passphrase  # only the Secret stays in this frame
        if len(secret) < 8:
            raise InvalidRequest("a keystore passphrase needs at least 8 characters")
        with self._locked() as entries:
            params = KdfParams.default()
            header = {"kdf": params.header(secrets.token_bytes(16))}
            self._keys = _derive_from_passphrase(secret, header["kdf"])
            self._header = header
            self._write(entries)

    # --- inbound keys: who may call a gateway (securetrade.gateway) ------------------------

    def add_inbound(
        self,
        key_id: str,
        *,
        tenant: str,
        scopes: Iterable[str],
        secret: Secret | None = None,
        public_key: bytes | None = None,
        networks: Iterable[str] = (),
    ) -> None:
        """Register a sender's key for a gateway: an HMAC ``secret`` (kept encrypted, since
        the gateway must recompute the MAC) or an Ed25519 ``public_key`` (not a secret).
        ``networks`` (CIDR) are the addresses it may call from; none means any."""
        record = _inbound_record(key_id, tenant, scopes, secret, public_key, networks)
        with self._locked() as entries:
            table = entries.setdefault(_INBOUND, _Plain())
            if key_id in table:
                raise InvalidRequest(
                    f"an inbound key {key_id!r} exists; narrow or remove it, or use a new id"
                )
            table[key_id] = record
            self._write(entries)

    def narrow_inbound(
        self,
        key_id: str,
        *,
        scopes: Iterable[str] | None = None,
        networks: Iterable[str] | None = None,
    ) -> None:
        """Take scopes or networks away from an inbound key; never add any (as for outbound
        keys, a wider grant is a new key with a new id, reviewed as such)."""
        with self._locked() as entries:
            table = entries.get(_INBOUND)
            record = table.get(key_id) if isinstance(table, _Plain) else None
            if not isinstance(table, _Plain) or not isinstance(record, _Plain):
                raise KeyNotFound(f"no inbound key {key_id!r} in {self._path}")
            old_scopes, old_nets = set(record["scopes"]), _networks(record["networks"])
            if scopes is not None:
                new_scopes = _scope_list(scopes)
                if not set(new_scopes) <= old_scopes:
                    raise ScopeError(
                        f"inbound key {key_id!r} may only lose scopes, not gain "
                        f"{', '.join(sorted(set(new_scopes) - old_scopes))}"
                    )
                record["scopes"] = new_scopes
            if networks is not None:
                new_nets = _networks(networks)
                if not new_nets or not all(_within(n, old_nets) for n in new_nets):
                    raise ScopeError(f"inbound key {key_id!r} may only be held to fewer addresses")
                record["networks"] = [str(n) for n in new_nets]
            self._write(entries)

    def remove_inbound(self, key_id: str) -> None:
        """Forget an inbound key: its sender is refused from the gateway's next reload."""
        with self._locked() as entries:
            table = entries.get(_INBOUND)
            if not isinstance(table, _Plain) or key_id not in table:
                raise KeyNotFound(f"no inbound key {key_id!r} in {self._path}")
            del table[key_id]
            self._write(entries)

    def inbound(self) -> list[InboundEntry]:
        """Every registered inbound key, HMAC secrets as :class:`Secret`, sorted by id."""
        table = _decrypt(self._sealed, self._keys).get(_INBOUND)
        if table is None:
            return []
        found = _inbound_entries(table) if isinstance(table, _Plain) else None
        if found is None:
            raise KeystoreTampered("an inbound key is malformed: the keystore was altered")
        return found

    # --- OAuth credentials and one-time-password seeds (securetrade.oauth, .mfa) -----------

    def put_oauth(self, name: str, credential: OAuthCredential) -> None:
        """Store (or replace) the OAuth credential ``name``: client secret and tokens are
        encrypted with the rest of the store."""
        from ..oauth.credential import OAuthCredential, credential_record

        _check_name(name)
        if not isinstance(credential, OAuthCredential):
            raise InvalidRequest("put_oauth() takes a securetrade.oauth.OAuthCredential")
        with self._locked() as entries:
            entries.setdefault(_OAUTH, _Plain())[name] = _Plain(credential_record(credential))
            self._write(entries)

    def oauth(self, name: str) -> OAuthCredential:
        """The OAuth credential ``name`` as it is on disk now (another process may have
        refreshed it since this store was opened)."""
        from ..oauth.credential import credential_from_record

        with self._locked() as entries:
            table = entries.get(_OAUTH)
            record = table.get(name) if isinstance(table, _Plain) else None
        if not isinstance(record, _Plain):
            raise KeyNotFound(
                f"no OAuth credential {name!r} in {self._path}; run `securetrade oauth login`"
            )
        credential = credential_from_record(record)
        if credential is None:
            raise KeystoreTampered(
                "a stored OAuth credential is malformed: the keystore was altered"
            )
        return credential

    def oauth_names(self) -> list[str]:
        """The names of the stored OAuth credentials, sorted."""
        table = _decrypt(self._sealed, self._keys).get(_OAUTH)
        return sorted(table) if isinstance(table, _Plain) else []

    def put_otp_seed(self, name: str, seed: Secret) -> None:
        """Store a TOTP seed (base32 text, as authenticator apps show it) under its own
        entry ``name``: a Kraken key's second factor, or an operator's enrolment."""
        _check_name(name)
        if not isinstance(seed, Secret):
            raise InvalidRequest("put_otp_seed() takes the seed as a securetrade.keys.Secret")
        with self._locked() as entries:
            entries.setdefault(_OTP, _Plain())[name] = _b64(seed.expose())
            self._write(entries)

    def otp_seed(self, name: str) -> Secret:
        """The TOTP seed stored under ``name``."""
        table = _decrypt(self._sealed, self._keys).get(_OTP)
        text = table.get(name) if isinstance(table, _Plain) else None
        seed = _b64_secret(Secret(text)) if isinstance(text, str) and text else None
        if seed is None:
            raise KeyNotFound(f"no one-time-password seed {name!r} in {self._path}")
        return seed

    # --- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Plain]:
        """Serialise writers across processes, and start from what is on disk: yields the
        entries, decrypted for this change only."""
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX
                pass
            if self._path.exists():
                document = _read_document(self._path)
                if document["kdf"] != self._header["kdf"]:
                    raise KeystoreError(
                        f"{self._path} was re-keyed by another process; open it again"
                    )
                self._sealed = document
            yield _decrypt(self._sealed, self._keys)
        finally:
            os.close(fd)

    def _write(self, entries: _Plain) -> None:
        """Seal ``entries`` under the current keys, write them, and keep only the seal."""
        document = _seal(entries, self._keys, self._header["kdf"])
        _atomic_write(self._path, json.dumps(document, indent=1).encode() + b"\n")
        self._sealed = document
        self._names = tuple(_key_names(entries))

    def __repr__(self) -> str:
        return f"KeyStore({str(self._path)!r}, keys={len(self._names)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a KeyStore cannot be pickled")


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
            raise KeystoreTampered(f"{path}: keystore field {name!r} is missing or malformed")
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


# --- records ---------------------------------------------------------------------------------

_INBOUND = "@inbound"  # not a valid key name, so it never collides with one
_OAUTH = "@oauth"  # OAuth credentials (securetrade.oauth)
_OTP = "@otp"  # TOTP seeds, each its own entry (securetrade.mfa)


def _key_names(entries: _Plain) -> list[str]:
    return sorted(name for name in entries if not name.startswith("@"))


@dataclass(frozen=True, slots=True)
class InboundEntry:
    """A sender's key as a gateway holds it (see :meth:`KeyStore.add_inbound`)."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    networks: tuple[str, ...]
    secret: Secret | None  # HMAC-SHA256
    public_key: bytes | None  # Ed25519, raw 32 bytes


def _scope_list(scopes: Iterable[str]) -> list[str]:
    if isinstance(scopes, str):
        raise InvalidRequest("scopes must be a list of strings, not one string")
    found = sorted(set(scopes))
    if not all(isinstance(s, str) and s and s.isprintable() for s in found):
        raise InvalidRequest("each scope must be a non-empty printable string")
    return found


def _networks(networks: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(networks, str):
        raise InvalidRequest("networks must be a list of CIDR strings, not one string")
    try:
        return [ipaddress.ip_network(n) for n in networks]
    except (TypeError, ValueError):
        raise InvalidRequest("networks must be CIDR blocks like 192.0.2.0/24") from None


def _within(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    among: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    """Whether ``net`` lies inside one of ``among`` (anything lies inside no limit at all)."""
    return not among or any(
        net.version == o.version and net.subnet_of(o)  # type: ignore[arg-type]
        for o in among
    )


def _inbound_record(
    key_id: str,
    tenant: str,
    scopes: Iterable[str],
    secret: Secret | None,
    public_key: bytes | None,
    networks: Iterable[str],
) -> _Plain:
    if not _INBOUND_ID(key_id) or not _INBOUND_ID(tenant):
        raise InvalidRequest("key id and tenant must be 1-128 characters of [A-Za-z0-9_.:/-]")
    if (secret is None) == (public_key is None):
        raise InvalidRequest("give an inbound key either secret= (HMAC) or public_key= (Ed25519)")
    if secret is not None and not isinstance(secret, Secret):
        raise InvalidRequest("secret= must be a securetrade.keys.Secret")
    if secret is not None and len(secret) < 16:
        raise InvalidRequest("an HMAC secret needs at least 16 bytes")
    if public_key is not None and (not isinstance(public_key, bytes) or len(public_key) != 32):
        raise InvalidRequest("public_key= must be the raw 32-byte Ed25519 public key")
    return _Plain(
        tenant=tenant,
        scopes=_scope_list(scopes),
        networks=[str(n) for n in _networks(networks)],
        kind="hmac" if secret is not None else "ed25519",
        secret=None if secret is None else _b64(secret.expose()),
        public_key=None if public_key is None else _b64(public_key),
    )


def _inbound_entries(table: _Plain) -> list[InboundEntry] | None:
    try:
        return [
            InboundEntry(
                key_id=key_id,
                tenant=str(record["tenant"]),
                scopes=tuple(record["scopes"]),
                networks=tuple(record["networks"]),
                secret=None
                if record["secret"] is None
                else Secret(base64.b64decode(record["secret"], validate=True)),
                public_key=None
                if record["public_key"] is None
                else base64.b64decode(record["public_key"], validate=True),
            )
            for key_id, record in sorted(table.items())
        ]
    except (KeyError, TypeError, ValueError):
        return None


def _otp_record(key: ApiKey, entries: _Plain) -> _Plain | None:
    """A key's second factor as stored: a static password inline (encrypted with the key),
    a TOTP seed by the name of its own entry, which is written here."""
    otp = key.otp
    if otp is None:
        return None
    if isinstance(otp, StaticOtp):
        return _Plain(kind="static", password=_b64(otp.password.expose()))
    _check_name(otp.seed_name)
    entries.setdefault(_OTP, _Plain())[otp.seed_name] = _b64(otp.seed.expose())
    return _Plain(kind="totp", seed=otp.seed_name)


def _otp_from(record: Any, entries: _Plain) -> OtpSource | None:
    if record is None:
        return None
    if record["kind"] == "static":
        return StaticOtp(Secret(base64.b64decode(record["password"], validate=True)))
    seeds = entries[_OTP]
    name = record["seed"]
    return TotpOtp(Secret(base64.b64decode(seeds[name], validate=True)), seed_name=name)


def _record(key: ApiKey, entries: _Plain) -> _Plain:
    return _Plain(
        venue=key.venue,
        key_id=key.key_id,
        kind=key.kind.value,
        environment=key.environment.value,
        scopes=sorted(s.value for s in key.scopes),
        symbols=None if key.symbols is None else sorted(key.symbols),
        max_notional=None if key.max_notional is None else str(key.max_notional),
        max_quantity=None if key.max_quantity is None else str(key.max_quantity),
        expires_at=None if key.expires_at is None else key.expires_at.isoformat(),
        withdraw_addresses=sorted(key.withdraw_addresses),
        secret=_b64(key.secret.expose()),
        passphrase=None if key.passphrase is None else _b64(key.passphrase.expose()),
        otp=_otp_record(key, entries),
    )


def _key_from(record: _Plain, entries: _Plain) -> ApiKey:
    return ApiKey(
        record["venue"],
        record["key_id"],
        Secret(base64.b64decode(record["secret"], validate=True)),
        kind=record["kind"],
        environment=record["environment"],
        scopes=record["scopes"],
        symbols=record["symbols"],
        max_notional=record["max_notional"],
        max_quantity=record["max_quantity"],
        expires_at=_time(record["expires_at"]),
        withdraw_addresses=record["withdraw_addresses"],
        passphrase=None
        if record["passphrase"] is None
        else Secret(base64.b64decode(record["passphrase"], validate=True)),
        otp=_otp_from(record.get("otp"), entries),
    )


def _entry_in(entries: _Plain, name: str, path: Path) -> _Plain:
    entry = entries.get(name) if not name.startswith("@") else None
    if not isinstance(entry, _Plain):
        raise KeyNotFound(f"no key named {name!r} in {path}")
    return entry


def _ring_from(entry: _Plain, options: dict[str, Any], entries: _Plain) -> KeyRing:
    """The ring an entry describes. A malformed entry is reported as tampering, raised
    outside the ``except`` block so that the error holds no decrypted field."""
    ring = _try_ring_from(entry, options, entries)
    if ring is None:
        raise KeystoreTampered("a stored key is malformed: the keystore was altered")
    return ring


def _try_ring_from(entry: _Plain, options: dict[str, Any], entries: _Plain) -> KeyRing | None:
    try:
        return KeyRing(
            _key_from(entry["current"], entries),
            next=None if entry.get("next") is None else _key_from(entry["next"], entries),
            activate_at=_time(entry.get("activate_at")),
            previous=None
            if entry.get("previous") is None
            else _key_from(entry["previous"], entries),
            retire_at=_time(entry.get("retire_at")),
            overlap=timedelta(
                seconds=float(entry.get("overlap_s", DEFAULT_OVERLAP.total_seconds()))
            ),
            account=entry.get("account"),
            **options,
        )
    except (KeyError, TypeError, ValueError, OverflowError):  # binascii.Error and
        return None  # InvalidRequest are ValueErrors: a field the store never writes


def _entry_from(ring: KeyRing, entries: _Plain) -> _Plain:
    previous, next_key = ring.previous, ring.next
    activate_at, retire_at = ring.activate_at, ring.retire_at
    return _Plain(
        account=ring.account,
        overlap_s=ring.overlap.total_seconds(),
        current=_record(ring.current, entries),
        next=None if next_key is None else _record(next_key, entries),
        activate_at=None if activate_at is None else activate_at.isoformat(),
        previous=None if previous is None else _record(previous, entries),
        retire_at=None if retire_at is None else retire_at.isoformat(),
    )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidRequest("a key name is 1-64 characters of letters, digits, - _ .")


def _passphrase(value: str | bytes | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, name: str) -> bytes:
    if not isinstance(text, str):
        raise KeystoreTampered(f"keystore field {name} is malformed")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreTampered(f"keystore field {name} is not base64") from None
