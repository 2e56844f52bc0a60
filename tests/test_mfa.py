"""Local confirmation of dangerous operations: an enrolled operator's TOTP code, verified
here, usable once across processes, every attempt in the audit trail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from securetrade import Client
from securetrade.errors import ConfirmationRequired, InvalidRequest, PolicyViolation
from securetrade.keys import KdfParams, KeyStore, Scope, Secret
from securetrade.mfa import Confirmation, Confirmer
from securetrade.policy import KillSwitch, Policy
from securetrade.record.trail import AuditKey, AuditTrail
from securetrade.sim import Simulator

CHEAP_KDF = KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)
NOW = 1_800_000_015.0  # mid-step: codes of the steps either side verify too


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.create(tmp_path / "ops.json.enc", b"operator passphrase", kdf=CHEAP_KDF)


@pytest.fixture
def seed(store: KeyStore) -> str:
    uri = Confirmer.enroll(store, "alice").expose().decode()
    return parse_qs(urlsplit(uri).query)["secret"][0]


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    return AuditTrail(tmp_path / "audit.sqlite", AuditKey.generate())


def _confirmer(store: KeyStore, trail: AuditTrail | None = None, at: float = NOW) -> Confirmer:
    return Confirmer(store, audit=trail, clock=lambda: at)


def _outcomes(trail: AuditTrail) -> list[tuple[str, str]]:
    import json

    found = []
    for record in trail.records():
        if record.kind == "confirmation":
            body = json.loads(record.body)
            found.append((body["action"], body["outcome"]))
    return found


def test_a_code_confirms_once_and_its_reuse_is_refused(
    store: KeyStore, seed: str, trail: AuditTrail
) -> None:
    confirmer = _confirmer(store, trail)
    code = pyotp.TOTP(seed).at(int(NOW))
    confirmer.confirm(Confirmation("alice", code), "kill_switch.release")
    with pytest.raises(ConfirmationRequired, match="already used"):
        confirmer.confirm(Confirmation("alice", code), "withdraw")
    # Another process, another Confirmer on the same store: still refused.
    with pytest.raises(ConfirmationRequired, match="already used"):
        _confirmer(KeyStore.open(store.path, b"operator passphrase")).confirm(
            Confirmation("alice", code), "withdraw"
        )
    next_code = pyotp.TOTP(seed).at(int(NOW) + 30)
    confirmer.confirm(Confirmation("alice", next_code), "withdraw")
    assert _outcomes(trail) == [
        ("kill_switch.release", "confirmed"),
        ("withdraw", "reused"),
        ("withdraw", "confirmed"),
    ]
    assert trail.verify().ok


def test_a_reused_code_is_refused_in_another_process(store: KeyStore, seed: str) -> None:
    code = pyotp.TOTP(seed).at(int(NOW))
    _confirmer(store).confirm(Confirmation("alice", code), "withdraw")
    script = (
        "import sys\n"
        "from securetrade.keys import KeyStore\n"
        "from securetrade.mfa import Confirmation, Confirmer\n"
        "from securetrade.errors import ConfirmationRequired\n"
        f"store = KeyStore.open({str(store.path)!r}, b'operator passphrase')\n"
        f"c = Confirmer(store, clock=lambda: {NOW})\n"
        "try:\n"
        f"    c.confirm(Confirmation('alice', {code!r}), 'withdraw')\n"
        "except ConfirmationRequired as e:\n"
        "    print('refused', e); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "already used" in done.stdout


def test_wrong_stale_missing_and_unenrolled_codes_are_refused(
    store: KeyStore, seed: str, trail: AuditTrail
) -> None:
    confirmer = _confirmer(store, trail)
    totp = pyotp.TOTP(seed)
    with pytest.raises(ConfirmationRequired, match="wrong or expired"):
        confirmer.confirm(Confirmation("alice", totp.at(int(NOW) - 90)), "withdraw")
    with pytest.raises(ConfirmationRequired, match="wrong or expired"):
        confirmer.confirm(Confirmation("alice", "12345x"), "withdraw")
    with pytest.raises(ConfirmationRequired, match="not enrolled"):
        confirmer.confirm(Confirmation("bob", totp.at(int(NOW))), "withdraw")
    with pytest.raises(ConfirmationRequired, match="needs a one-time code"):
        confirmer.confirm(None, "withdraw")
    with pytest.raises(InvalidRequest):
        confirmer.confirm(Confirmation("alice", totp.at(int(NOW))), "format_disk")
    assert [o for _, o in _outcomes(trail)] == [
        "wrong_code",
        "wrong_code",
        "not_enrolled",
        "missing",
    ]


def test_the_code_never_shows_in_reprs_or_the_audit_trail(
    store: KeyStore, seed: str, trail: AuditTrail
) -> None:
    code = pyotp.TOTP(seed).at(int(NOW))
    confirmation = Confirmation("alice", code)
    _confirmer(store, trail).confirm(confirmation, "withdraw", asset="USDT")
    assert code not in repr(confirmation)
    assert all(code not in r.body and seed not in r.body for r in trail.records())
    assert seed.encode() not in store.path.read_bytes()


def test_releasing_a_guarded_kill_switch_needs_a_fresh_code(store: KeyStore, seed: str) -> None:
    switch = KillSwitch(confirmer=_confirmer(store))
    switch.engage("drill")
    with pytest.raises(ConfirmationRequired):
        switch.release()
    assert switch.engaged
    code = pyotp.TOTP(seed).at(int(NOW))
    switch.release(confirmation=Confirmation("alice", code))
    assert not switch.engaged
    switch.engage("again")
    with pytest.raises(ConfirmationRequired, match="already used"):
        switch.release(confirmation=Confirmation("alice", code))
    assert switch.engaged


def test_a_withdrawal_under_a_confirming_policy_needs_a_code(
    sim: Simulator, store: KeyStore, seed: str
) -> None:
    key = sim.create_key(
        scopes=[Scope.READ, Scope.WITHDRAW], can_withdraw=True, withdraw_addresses=["addr-ok"]
    )
    policy = Policy(confirmer=_confirmer(store))
    client: Any = Client(
        key,
        transport=sim.transport(),
        journal=":memory:",
        policy=policy,
        unsafe_allow_withdraw_scope=True,
    )
    with client:
        with pytest.raises(ConfirmationRequired):
            client.withdraw("USDT", "10", "addr-ok")
        code = pyotp.TOTP(seed).at(int(NOW))
        assert client.withdraw("USDT", "10", "addr-ok", confirmation=Confirmation("alice", code))
        with pytest.raises(ConfirmationRequired, match="already used"):
            client.withdraw("USDT", "10", "addr-ok", confirmation=Confirmation("alice", code))
        policy.kill_switch.engage("stop")
        with pytest.raises(PolicyViolation):  # the kill switch speaks first: no code spent
            client.withdraw("USDT", "10", "addr-ok", confirmation=Confirmation("alice", "000000"))


def test_an_enrolment_uri_is_a_secret_and_a_bad_operator_name_is_refused(
    store: KeyStore,
) -> None:
    uri = Confirmer.enroll(store, "carol")
    assert isinstance(uri, Secret)
    assert "otpauth://totp/" in uri.expose().decode()
    with pytest.raises(InvalidRequest):
        Confirmer.enroll(store, "no spaces allowed")


# --- keystore: widening a key, exporting keys -----------------------------------------------------


def _stored_key(store: KeyStore, sim: Simulator) -> Any:
    key = sim.create_key(venue="kraken", otp="totp", scopes=[Scope.READ])
    store.add("bot", key)
    return key


def test_widening_a_key_on_rotation_needs_a_code(
    sim: Simulator, store: KeyStore, seed: str, trail: AuditTrail
) -> None:
    from securetrade.errors import ScopeError
    from securetrade.keys.guarded import rotate_wider

    old = _stored_key(store, sim)
    wider = sim.create_key(venue="kraken", scopes=[Scope.READ, Scope.TRADE])
    with pytest.raises(ScopeError):
        store.rotate("bot", wider)  # the plain rotation never widens
    confirmer = _confirmer(store, trail)
    with pytest.raises(ConfirmationRequired):
        rotate_wider(store, "bot", wider, confirmer=confirmer, confirmation=None)
    assert store.get("bot").key_id == old.key_id
    code = pyotp.TOTP(seed).at(int(NOW))
    ring = rotate_wider(
        store, "bot", wider, confirmer=confirmer, confirmation=Confirmation("alice", code)
    )
    assert ring.current.key_id == wider.key_id
    assert store.get("bot").scopes == {Scope.READ, Scope.TRADE}
    assert store.ring("bot").previous is not None
    assert _outcomes(trail) == [("key.widen", "missing"), ("key.widen", "confirmed")]


def test_exporting_keys_needs_a_code_and_carries_their_totp_seeds(
    sim: Simulator, store: KeyStore, seed: str, tmp_path: Path
) -> None:
    from securetrade.keys.guarded import export_keys

    key = _stored_key(store, sim)
    confirmer = _confirmer(store)
    target = tmp_path / "moved.json.enc"
    with pytest.raises(ConfirmationRequired):
        export_keys(
            store,
            ["bot"],
            target,
            Secret("another passphrase"),
            confirmer=confirmer,
            confirmation=Confirmation("alice", "000000"),
            kdf=CHEAP_KDF,
        )
    assert not target.exists()
    code = pyotp.TOTP(seed).at(int(NOW))
    moved = export_keys(
        store,
        ["bot"],
        target,
        Secret("another passphrase"),
        confirmer=confirmer,
        confirmation=Confirmation("alice", code),
        kdf=CHEAP_KDF,
    )
    copy = KeyStore.open(target, b"another passphrase").get("bot")
    assert copy.key_id == key.key_id
    assert copy.otp is not None
    assert copy.otp.seed == key.otp.seed
    assert moved.names() == ["bot"]
    with pytest.raises(ConfirmationRequired, match="not enrolled"):  # operators stay behind
        _confirmer(moved).confirm(Confirmation("alice", code), "withdraw")
