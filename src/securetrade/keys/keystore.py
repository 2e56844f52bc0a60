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

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .._checks import instance, shown, text
from .._checks import path as checked_path
from ..errors import (
    InvalidRequest,
    KeyNotFound,
    KeystoreError,
    KeystoreTampered,
    ScopeError,
    WrongPassphrase,
)
from .apikey import ApiKey
from .keystore_entries import (
    _INBOUND,
    _OAUTH,
    _OTP,
    InboundEntry,
    _check_inbound_id,
    _check_name,
    _entry_from,
    _entry_in,
    _inbound_entries,
    _inbound_record,
    _key_names,
    _name_text,
    _networks,
    _ring_from,
    _scope_list,
    _within,
)
from .keystore_file import (
    _atomic_write,
    _b64,
    _b64_secret,
    _decrypt,
    _derive_from_kek,
    _derive_from_passphrase,
    _keyring_kek,
    _Keys,
    _Plain,
    _read_document,
    _seal,
)
from .ring import DEFAULT_OVERLAP, KeyRing
from .secret import Secret

if TYPE_CHECKING:
    from ..oauth.credential import OAuthCredential

__all__ = ["InboundEntry", "KdfParams", "KeyStore", "default_keystore_path"]

KEYRING_SERVICE = "securetrade-keystore"
# InboundEntry lives in keystore_entries; pickles and reprs name it where it has always
# been imported from.
InboundEntry.__module__ = __name__


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
        if not isinstance(salt, bytes) or not salt:
            raise InvalidRequest("salt must be random bytes (os.urandom(16))")
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
        params = KdfParams.default() if kdf is None else instance("kdf", kdf, KdfParams)
        header = {"kdf": params.header(secrets.token_bytes(16))}
        keys = _derive_from_passphrase(secret, header["kdf"])
        return cls._new(Path(checked_path("KeyStore path", path)), header, keys)

    @classmethod
    def create_with_keyring(
        cls, path: str | os.PathLike[str], *, service: str = KEYRING_SERVICE
    ) -> KeyStore:
        """A new keystore whose key-encryption key is generated into the OS keyring."""
        text("service", service)
        target = Path(checked_path("KeyStore path", path))
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
        return cls._new(target, header, keys)

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
            Path(checked_path("KeyStore path", path)),
            lambda kdf: _derive_from_passphrase(secret, kdf),
            keyring=False,
        )

    @classmethod
    def open_with_keyring(cls, path: str | os.PathLike[str]) -> KeyStore:
        """Open ``path`` with its key-encryption key from the OS keyring."""

        def derive(kdf: dict[str, Any]) -> _Keys:
            service, username = kdf.get("service"), kdf.get("username")
            if not isinstance(service, str) or not isinstance(username, str):
                raise KeystoreTampered("keystore keyring reference is malformed")
            return _derive_from_kek(_keyring_kek(service, username, create=False), kdf)

        return cls._open(Path(checked_path("KeyStore path", path)), derive, keyring=True)

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
                raise InvalidRequest(f"a key named {shown(name)} exists; rotate or remove it")
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
                if not isinstance(overlap, timedelta) or overlap < timedelta(0):
                    raise InvalidRequest("overlap must be a timedelta, not negative")
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
                raise KeyNotFound(f"{shown(name)} holds no replaced key to retire")
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
        key_id = _check_inbound_id(key_id)  # a plain str keys the table (checked above)
        with self._locked() as entries:
            table = entries.setdefault(_INBOUND, _Plain())
            if key_id in table:
                raise InvalidRequest(
                    f"an inbound key {shown(key_id)} exists; narrow or remove it, or use a new id"
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
        key_id = _check_inbound_id(key_id)  # a plain str looks the table up
        with self._locked() as entries:
            table = entries.get(_INBOUND)
            record = table.get(key_id) if isinstance(table, _Plain) else None
            if not isinstance(table, _Plain) or not isinstance(record, _Plain):
                raise KeyNotFound(f"no inbound key {shown(key_id)} in {self._path}")
            old_scopes, old_nets = set(record["scopes"]), _networks(record["networks"])
            if scopes is not None:
                new_scopes = _scope_list(scopes)
                if not set(new_scopes) <= old_scopes:
                    raise ScopeError(
                        f"inbound key {shown(key_id)} may only lose scopes, not gain "
                        f"{', '.join(sorted(set(new_scopes) - old_scopes))}"
                    )
                record["scopes"] = new_scopes
            if networks is not None:
                new_nets = _networks(networks)
                if not new_nets or not all(_within(n, old_nets) for n in new_nets):
                    raise ScopeError(
                        f"inbound key {shown(key_id)} may only be held to fewer addresses"
                    )
                record["networks"] = [str(n) for n in new_nets]
            self._write(entries)

    def remove_inbound(self, key_id: str) -> None:
        """Forget an inbound key: its sender is refused from the gateway's next reload."""
        key_id = _check_inbound_id(key_id)  # a plain str looks the table up
        with self._locked() as entries:
            table = entries.get(_INBOUND)
            if not isinstance(table, _Plain) or key_id not in table:
                raise KeyNotFound(f"no inbound key {shown(key_id)} in {self._path}")
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

        _name_text(name)
        with self._locked() as entries:
            table = entries.get(_OAUTH)
            record = table.get(name) if isinstance(table, _Plain) else None
        if not isinstance(record, _Plain):
            raise KeyNotFound(
                f"no OAuth credential {shown(name)} in {self._path}; run `securetrade oauth login`"
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
        _name_text(name)
        table = _decrypt(self._sealed, self._keys).get(_OTP)
        text = table.get(name) if isinstance(table, _Plain) else None
        seed = _b64_secret(Secret(text)) if isinstance(text, str) and text else None
        if seed is None:
            raise KeyNotFound(f"no one-time-password seed {shown(name)} in {self._path}")
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


def _passphrase(value: str | bytes | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)
