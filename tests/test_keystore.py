"""Guarantee 7: keys at rest are encrypted with an authenticated cipher; tampering is detected.

Round trip, wrong passphrase and tampering (distinct errors), KDF downgrade, file modes,
atomic writes, rotation state, several writers, and the OS-keyring variant through a
keyring backend defined here (no real OS keyring needed).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from securetrade.errors import (
    InvalidRequest,
    KeyNotFound,
    KeystoreError,
    KeystorePermissions,
    KeystoreTampered,
    ScopeError,
    WrongPassphrase,
)
from securetrade.keys import ApiKey, KdfParams, KeyStore, Scope

keyring = pytest.importorskip("keyring")
from keyring.backend import KeyringBackend  # noqa: E402


def passphrase() -> str:
    return "pw-" + secrets.token_urlsafe(12)


def make_key(**options: Any) -> ApiKey:
    options.setdefault("scopes", [Scope.READ, Scope.TRADE, Scope.CANCEL])
    return ApiKey("binance", secrets.token_hex(16), secrets.token_hex(32), **options)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keys.json.enc"


def test_round_trip_keeps_every_field(store_path: Path) -> None:
    pw = passphrase()
    key = make_key(
        kind="hmac",
        environment="testnet",
        symbols=["BTCUSDT"],
        max_notional="1000.50",
        max_quantity="2",
        expires_at=datetime(2031, 1, 1, tzinfo=timezone.utc),
        passphrase=secrets.token_hex(8),
    )
    store = KeyStore.create(store_path, pw)
    store.add("bot", key)
    again = KeyStore.open(store_path, pw).get("bot")
    for field in (
        "venue",
        "key_id",
        "kind",
        "environment",
        "scopes",
        "symbols",
        "max_notional",
        "max_quantity",
        "expires_at",
        "withdraw_addresses",
    ):
        assert getattr(again, field) == getattr(key, field), field
    assert again.secret == key.secret
    assert again.passphrase == key.passphrase
    assert KeyStore.open(store_path, pw).names() == ["bot"]


def test_file_holds_no_plaintext(store_path: Path) -> None:
    key = make_key()
    pw = passphrase()
    KeyStore.create(store_path, pw).add("bot", key)
    raw = store_path.read_bytes()
    secret = key.secret.expose()
    for form in (secret, secret.hex().encode(), base64.b64encode(secret), key.key_id.encode()):
        assert form not in raw
    assert pw.encode() not in raw
    assert b"bot" not in raw  # even names are inside the ciphertext
    document = json.loads(raw)
    assert document["cipher"] == "aes-256-gcm"
    assert document["kdf"]["name"] == "argon2id"
    assert document["kdf"]["memory_kib"] >= 19 * 1024


def test_wrong_passphrase_is_its_own_error(store_path: Path) -> None:
    KeyStore.create(store_path, passphrase()).add("bot", make_key())
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        KeyStore.open(store_path, passphrase())


def _tamper(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    path.chmod(0o600)


def _flip(text: str, at: int = 0) -> str:
    data = bytearray(base64.b64decode(text))
    data[at] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


TAMPERINGS = {
    "ciphertext": lambda d: d.update(ciphertext=_flip(d["ciphertext"], 5)),
    "tag": lambda d: d.update(ciphertext=_flip(d["ciphertext"], -1)),
    "truncated": lambda d: d.update(ciphertext=d["ciphertext"][:-8]),
    "nonce": lambda d: d.update(nonce=_flip(d["nonce"])),
    "version": lambda d: d.update(version=2),
    "cipher": lambda d: d.update(cipher="aes-128-gcm"),
    "kdf downgrade": lambda d: d["kdf"].update(memory_kib=1024, iterations=1),
    "kdf unknown": lambda d: d["kdf"].update(name="pbkdf2"),
    "extra field": lambda d: d.update(note="hello"),
    "missing field": lambda d: d.pop("check"),
    "short salt": lambda d: d["kdf"].update(salt=base64.b64encode(b"short").decode()),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampering_is_detected_and_distinct(store_path: Path, name: str) -> None:
    pw = passphrase()
    KeyStore.create(store_path, pw).add("bot", make_key())
    _tamper(store_path, TAMPERINGS[name])
    with pytest.raises(KeystoreTampered):
        KeyStore.open(store_path, pw)


def test_garbage_and_truncated_files_are_tampering(store_path: Path) -> None:
    pw = passphrase()
    KeyStore.create(store_path, pw).add("bot", make_key())
    raw = store_path.read_bytes()
    for broken in (raw[: len(raw) // 2], b"\x00\xff" * 10, b"[]"):
        store_path.write_bytes(broken)
        with pytest.raises(KeystoreTampered):
            KeyStore.open(store_path, pw)


def test_scrypt_is_supported(store_path: Path) -> None:
    pw = passphrase()
    store = KeyStore.create(store_path, pw, kdf=KdfParams(name="scrypt", n=2**15))
    store.add("bot", make_key())
    assert json.loads(store_path.read_text())["kdf"]["name"] == "scrypt"
    assert KeyStore.open(store_path, pw).names() == ["bot"]
    with pytest.raises(WrongPassphrase):
        KeyStore.open(store_path, passphrase())


def test_file_mode_is_0600_and_directory_0700(store_path: Path) -> None:
    old_umask = os.umask(0o000)  # even a permissive umask must not widen the file
    try:
        KeyStore.create(store_path, passphrase()).add("bot", make_key())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store_path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_readable_by_others_is_refused(store_path: Path, mode: int) -> None:
    pw = passphrase()
    KeyStore.create(store_path, pw).add("bot", make_key())
    store_path.chmod(mode)
    with pytest.raises(KeystorePermissions, match="chmod 600"):
        KeyStore.open(store_path, pw)
    store_path.chmod(0o600)
    assert KeyStore.open(store_path, pw).names() == ["bot"]


def test_missing_file_and_missing_name(store_path: Path) -> None:
    with pytest.raises(KeyNotFound, match="no keystore"):
        KeyStore.open(store_path, passphrase())
    pw = passphrase()
    store = KeyStore.create(store_path, pw)
    with pytest.raises(KeyNotFound, match="no key named"):
        store.get("nope")
    with pytest.raises(KeystoreError, match="already exists"):
        KeyStore.create(store_path, pw)


def test_bad_names_and_short_passphrases(store_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="at least 8"):
        KeyStore.create(store_path, "short")
    store = KeyStore.create(store_path, passphrase())
    for bad in ("", "a b", "x/y", "n" * 65):
        with pytest.raises(InvalidRequest, match="key name"):
            store.add(bad, make_key())
    store.add("bot", make_key())
    with pytest.raises(InvalidRequest, match="exists"):
        store.add("bot", make_key())


def test_atomic_write_keeps_the_old_file_on_failure(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before the rename leaves the previous file whole, and no debris."""
    pw = passphrase()
    store = KeyStore.create(store_path, pw)
    store.add("first", make_key())
    before = store_path.read_bytes()

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.add("second", make_key())
    monkeypatch.undo()
    assert store_path.read_bytes() == before
    assert sorted(p.name for p in store_path.parent.iterdir()) == [
        store_path.name,
        store_path.name + ".lock",
    ]
    assert KeyStore.open(store_path, pw).names() == ["first"]


def test_two_handles_do_not_lose_each_others_changes(store_path: Path) -> None:
    pw = passphrase()
    KeyStore.create(store_path, pw)
    one, two = KeyStore.open(store_path, pw), KeyStore.open(store_path, pw)
    one.add("a", make_key())
    two.add("b", make_key())  # re-reads under the lock: "a" survives
    assert KeyStore.open(store_path, pw).names() == ["a", "b"]
    one.change_passphrase(pw + "-new")
    with pytest.raises(KeystoreError, match="re-keyed"):
        two.add("c", make_key())
    with pytest.raises(WrongPassphrase):
        KeyStore.open(store_path, pw)
    assert KeyStore.open(store_path, pw + "-new").names() == ["a", "b"]


def test_rotation_state_is_stored(store_path: Path) -> None:
    pw = passphrase()
    store = KeyStore.create(store_path, pw)
    old, new, later = make_key(), make_key(), make_key(scopes=[Scope.READ])
    store.add("bot", old, overlap=timedelta(minutes=30))
    ring = store.rotate("bot", new)
    assert ring.current.key_id == new.key_id
    reopened = KeyStore.open(store_path, pw).ring("bot")
    assert reopened.current.key_id == new.key_id
    assert reopened.previous is not None
    assert reopened.previous.key_id == old.key_id
    assert reopened.overlap == timedelta(minutes=30)
    assert reopened.account == old.key_id  # client order ids stay stable
    switch = datetime.now(timezone.utc) + timedelta(hours=2)
    store.rotate("bot", later, activate_at=switch)
    staged = KeyStore.open(store_path, pw).ring("bot")
    assert staged.active().key_id == new.key_id
    assert staged.next is not None
    assert staged.next.key_id == later.key_id
    assert staged.activate_at == switch
    future = KeyStore.open(store_path, pw).ring("bot", clock=lambda: switch)
    assert future.active().key_id == later.key_id
    store.retire("bot")
    assert KeyStore.open(store_path, pw).ring("bot").previous is None
    with pytest.raises(KeyNotFound):
        store.retire("bot")
    with pytest.raises(ScopeError, match="never widen"):
        store.rotate("bot", make_key(scopes=[Scope.READ, Scope.TRADE, Scope.WITHDRAW]))
    store.remove("bot")
    assert KeyStore.open(store_path, pw).names() == []


def test_keystore_objects_are_masked_and_unpicklable(store_path: Path) -> None:
    import pickle

    pw = passphrase()
    store = KeyStore.create(store_path, pw)
    key = make_key()
    store.add("bot", key)
    assert pw not in repr(store)
    assert key.secret.expose().decode() not in repr(store)
    for obj in (store, store._keys):
        with pytest.raises(TypeError):
            pickle.dumps(obj)


# --- the OS keyring variant ------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """A keyring backend in memory: what an OS keychain does, for this test run."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.items[(service, username)]


@pytest.fixture
def memory_keyring() -> Any:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keyring_round_trip(store_path: Path, memory_keyring: MemoryKeyring) -> None:
    key = make_key()
    store = KeyStore.create_with_keyring(store_path)
    assert store.uses_keyring
    store.add("bot", key)
    assert len(memory_keyring.items) == 1
    (kek,) = memory_keyring.items.values()
    assert kek.encode() not in store_path.read_bytes()
    assert KeyStore.open_with_keyring(store_path).get("bot").secret == key.secret
    with pytest.raises(WrongPassphrase, match="OS keyring"):
        KeyStore.open(store_path, passphrase())


def test_keyring_missing_or_wrong_key(store_path: Path, memory_keyring: MemoryKeyring) -> None:
    KeyStore.create_with_keyring(store_path).add("bot", make_key())
    (entry,) = memory_keyring.items
    memory_keyring.items[entry] = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        KeyStore.open_with_keyring(store_path)
    memory_keyring.items.clear()
    with pytest.raises(WrongPassphrase, match="holds no key-encryption key"):
        KeyStore.open_with_keyring(store_path)


def test_keyring_store_detects_tampering(store_path: Path, memory_keyring: MemoryKeyring) -> None:
    KeyStore.create_with_keyring(store_path).add("bot", make_key())
    _tamper(store_path, TAMPERINGS["ciphertext"])
    with pytest.raises(KeystoreTampered):
        KeyStore.open_with_keyring(store_path)


def test_passphrase_store_refuses_the_keyring(store_path: Path, memory_keyring: Any) -> None:
    KeyStore.create(store_path, passphrase())
    with pytest.raises(WrongPassphrase, match="passphrase"):
        KeyStore.open_with_keyring(store_path)
