"""Personal data: tagged once, sealed in the audit trail, exported, erased by shredding keys.

The end-to-end test runs the copy engine against the simulator over TLS, offboards a
follower with erasure, and then greps the bytes of every file the SDK wrote (SQLite files
after VACUUM, their WAL and shared-memory files, the log) for the follower's data.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from securetrade import ApiKey, InvalidRequest
from securetrade.cli import main
from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing
from securetrade.keys import Secret
from securetrade.privacy import (
    ERASED,
    Category,
    DataKeys,
    Personal,
    PersonalData,
    PersonalDataPolicy,
    Privacy,
    PrivacyKeys,
    RetentionPolicy,
    personal,
    personal_fields,
    truncate_ip,
)
from securetrade.record import AuditKey, AuditLog, AuditTrail, verify_path
from securetrade.sim import SimLimits, Simulator

SUBJECT = "alice.zqx7"
EMAIL = "alice.zqx7@example.org"
NAME = "Alice Zqxson"
DAY = 86_400.0
YEAR = 365 * DAY


@pytest.fixture
def master(tmp_path: Path) -> Path:
    path = tmp_path / "privacy.key"
    PrivacyKeys.generate(path)
    return path


@pytest.fixture
def audit_key(tmp_path: Path) -> AuditKey:
    key = AuditKey.generate()
    (tmp_path / "audit.pem").write_bytes(key.private_key_pem().expose())
    (tmp_path / "audit.pub").write_text(key.public_key_pem(), encoding="ascii")
    return key


def _trail(tmp_path: Path, master: Path, key: AuditKey, **retention: Any) -> AuditTrail:
    vault = DataKeys(tmp_path / "vault.sqlite3", PrivacyKeys.from_file(master))
    personal_data = PersonalData(vault, retention=RetentionPolicy(**retention))
    return AuditTrail(tmp_path / "trail.sqlite3", key, personal=personal_data)


def _verified(tmp_path: Path) -> bool:
    report = verify_path(
        tmp_path / "trail.sqlite3",
        public_keys=[(tmp_path / "audit.pub").read_text(encoding="ascii")],
    )
    return report.ok and report.trusted_keys


def _files_holding(root: Path, *needles: str) -> list[str]:
    """Every file under ``root`` whose bytes contain one of ``needles``."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {n}" for n in needles if n.encode() in data]
    return found


# --- the tags -----------------------------------------------------------------------------------


def test_one_tag_marks_fields_in_pydantic_models_annotated_hints_and_dataclasses() -> None:
    class Contact(BaseModel):
        account: str = personal(Category.ACCOUNT_ID, subject=True)
        email: Annotated[str, Personal(Category.EMAIL)]
        symbol: str

    tags = personal_fields(Contact)
    assert set(tags) == {"account", "email"}
    assert tags["account"].subject
    assert tags["email"].category is Category.EMAIL
    assert Contact.model_json_schema()["properties"]["account"]["pii"] == "account_id"
    follower_tags = personal_fields(Follower)
    assert set(follower_tags) == {"id"}
    assert follower_tags["id"].aliases == ("follower",)
    policy = PersonalDataPolicy.default()
    assert "id" not in policy.tags  # a bare id is not a person: only the alias counts
    assert policy.subject_of({"follower": SUBJECT, "event": "e1"}) == SUBJECT
    with pytest.raises(InvalidRequest):
        personal_fields(int)


def test_logs_and_spans_get_a_keyed_pseudonym_and_a_truncated_ip(master: Path) -> None:
    keys = PrivacyKeys.from_file(master)
    minimised = PersonalDataPolicy.default().minimise(
        {"follower": SUBJECT, "email": EMAIL, "address": "203.0.113.77", "symbol": "BTCUSDT"},
        keys.pepper,
    )
    assert minimised["subject_ref"] == keys.subject_ref(SUBJECT)
    assert minimised["address"] == "203.0.113.0/24"
    assert minimised["symbol"] == "BTCUSDT"
    text = json.dumps(minimised)
    assert SUBJECT not in text
    assert EMAIL not in text
    assert "203.0.113.77" not in text
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert truncate_ip("not an address") == "?"
    other = PrivacyKeys(Secret(b"\x01" * 32))
    assert other.subject_ref(SUBJECT) != keys.subject_ref(SUBJECT)  # keyed, not a plain hash


def test_the_master_key_is_never_printed_pickled_or_readable_by_others(master: Path) -> None:
    import pickle

    keys = PrivacyKeys.from_file(master)
    raw = master.read_text().strip()
    assert raw not in repr(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    master.chmod(0o644)
    with pytest.raises(InvalidRequest, match="chmod 600"):
        PrivacyKeys.from_file(master)
    with pytest.raises(InvalidRequest):
        PrivacyKeys.generate(master)  # never overwritten


# --- the audit trail ----------------------------------------------------------------------------


def test_personal_fields_are_sealed_and_verify_needs_no_data_key(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    trail = _trail(tmp_path, master, audit_key)
    AuditLog(trail=trail).emit(
        "order.placed", follower=SUBJECT, email=EMAIL, symbol="BTCUSDT", quantity=Decimal("0.01")
    )
    trail.close()
    (record,) = AuditTrail(tmp_path / "trail.sqlite3", audit_key).records()
    fields = record.fields
    assert fields["layout"] == 2
    assert fields["facts"] == {"symbol": "BTCUSDT", "quantity": "0.01"}
    assert fields["sealed"]["class"] == "trade_record"
    assert SUBJECT not in record.body
    assert EMAIL not in record.body
    (tmp_path / "vault.sqlite3").unlink()  # no data key at all
    assert _verified(tmp_path)


def test_a_trail_written_before_privacy_keeps_verifying_and_reads_in_the_clear(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    old = AuditTrail(tmp_path / "trail.sqlite3", audit_key)  # today's layout 1
    old.append("copy.event", {"event": "e1", "placed": 3})
    old.close()
    trail = _trail(tmp_path, master, audit_key)
    trail.append("copy.onboarded", {"follower": SUBJECT})
    privacy = Privacy(trail)
    opened = privacy.read()
    assert [o.status for o in opened] == ["clear", "readable"]
    assert opened[0].facts == {"event": "e1", "placed": 3}
    assert opened[1].personal == {"follower": SUBJECT}
    assert _verified(tmp_path)


def test_a_sealed_field_moved_to_another_record_does_not_open(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    """The ciphertext is bound to its record's seq and previous hash."""
    trail = _trail(tmp_path, master, audit_key)
    first = trail.append("copy.onboarded", {"follower": SUBJECT})
    second = trail.append("copy.onboarded", {"follower": SUBJECT})
    moved = type(second)(second.seq, second.at, second.kind, first.body, second.prev, "", "", "")
    assert trail.personal is not None
    assert trail.personal.open(moved, now=time.time()).status == "unreadable"
    assert trail.personal.open(second, now=time.time()).status == "readable"


def test_personal_fields_without_a_subject_are_reduced_to_pseudonyms(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    """Nobody could erase them later, so they are never stored as they came."""
    trail = _trail(tmp_path, master, audit_key)
    record = trail.append("gateway.refused", {"reason": "bad_signature", "address": "198.51.100.9"})
    assert record.fields["address"] == "198.51.100.0/24"
    assert "198.51.100.9" not in record.body


# --- erasure, retention, export -----------------------------------------------------------------


def test_export_then_erase_then_export_gives_the_record_then_nothing_personal(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    trail = _trail(tmp_path, master, audit_key)
    t0 = time.time()
    trail.append("order.placed", {"follower": SUBJECT, "email": EMAIL, "symbol": "ETHUSDT"}, at=t0)
    trail.append("copy.onboarded", {"follower": SUBJECT, "person_name": NAME}, at=t0)
    trail.append("copy.onboarded", {"follower": "bob"}, at=t0)
    privacy = Privacy(trail)

    before = io.StringIO()
    assert privacy.export(SUBJECT, before, now=t0) == 2
    lines = [json.loads(line) for line in before.getvalue().splitlines()]
    assert lines[0]["personal"] == {"email": EMAIL, "follower": SUBJECT}
    assert lines[0]["facts"] == {"symbol": "ETHUSDT"}
    assert lines[1]["personal"] == {"follower": SUBJECT, "person_name": NAME}

    later = t0 + 6 * YEAR  # every class's retention has passed: everything is shredded
    certificate = privacy.erase(SUBJECT, reason="DSR-1042", now=later)
    assert certificate["shredded"] == ["relationship", "trade_record"]
    assert certificate["restricted"] == []
    after = io.StringIO()
    assert privacy.export(SUBJECT, after, now=later) == 2
    assert [json.loads(line)["personal"] for line in after.getvalue().splitlines()] == [ERASED] * 2
    assert SUBJECT not in after.getvalue()
    assert EMAIL not in after.getvalue()
    assert NAME not in after.getvalue()
    bob = io.StringIO()
    privacy.export("bob", bob, now=t0)  # within its period: untouched by her erasure
    assert json.loads(bob.getvalue())["personal"] == {"follower": "bob"}  # others untouched
    assert _verified(tmp_path)


def test_a_restricted_subject_stays_readable_until_its_date_then_the_sweep_shreds_it(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    trail = _trail(tmp_path, master, audit_key)
    t0 = 1_800_000_000.0
    trail.append("order.placed", {"follower": SUBJECT, "email": EMAIL}, at=t0)
    trail.append("copy.onboarded", {"follower": SUBJECT}, at=t0)
    privacy = Privacy(trail)

    certificate = privacy.erase(SUBJECT, now=t0 + 100 * DAY)  # past 90d, within 5y
    assert certificate["shredded"] == ["relationship"]
    assert [r["class"] for r in certificate["restricted"]] == ["trade_record"]
    statuses = {o.kind: o for o in privacy.read(now=t0 + 100 * DAY)}
    assert statuses["order.placed"].status == "restricted"
    assert statuses["order.placed"].personal == {"email": EMAIL, "follower": SUBJECT}
    assert statuses["copy.onboarded"].status == "erased"

    assert privacy.sweep(now=t0 + 4 * YEAR)["audit_keys_shredded"] == 0  # not yet
    assert privacy.read(now=t0 + 4 * YEAR)[0].status == "restricted"
    past = privacy.read(now=t0 + 5 * YEAR + DAY)[0]  # its date passed, not yet swept
    assert past.status == "expired"
    assert past.personal is None
    swept = privacy.sweep(now=t0 + 5 * YEAR + DAY)
    assert swept["audit_keys_shredded"] == 1
    assert swept["restricted_shredded"] == 1
    assert privacy.read(now=t0 + 5 * YEAR + DAY)[0].status == "erased"
    assert [r.kind for r in trail.records()][-2:] == ["privacy.erasure", "privacy.sweep"]
    assert _verified(tmp_path)


def test_an_erasure_reason_is_a_reference_never_free_text(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    privacy = Privacy(_trail(tmp_path, master, audit_key))
    with pytest.raises(InvalidRequest, match="ticket"):
        privacy.erase(SUBJECT, reason="Alice asked by phone, her number is 555")


def test_privacy_needs_a_trail_that_seals(tmp_path: Path, audit_key: AuditKey) -> None:
    with pytest.raises(InvalidRequest, match="personal=PersonalData"):
        Privacy(AuditTrail(tmp_path / "t.sqlite3", audit_key))


def test_the_commands_erase_read_export_and_report(
    tmp_path: Path, master: Path, audit_key: AuditKey, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _trail(tmp_path, master, audit_key)
    trail.append("order.placed", {"follower": SUBJECT, "email": EMAIL}, at=1_800_000_000.0)
    trail.close()
    where = [
        "--trail", str(tmp_path / "trail.sqlite3"),
        "--vault", str(tmp_path / "vault.sqlite3"),
        "--master-key", str(master),
    ]  # fmt: skip
    assert main(["privacy", "export", "--subject", SUBJECT, *where]) == 0
    assert EMAIL in capsys.readouterr().out
    assert main(["privacy", "report", *where]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["retention"]["audit_classes"]["trade_record"] == "5y"
    assert report["audit_data_keys"]["subjects"] == 1
    assert "ip_address" in report["categories"]

    audit = ["--audit-key", str(tmp_path / "audit.pem")]
    assert main(["privacy", "erase", "--subject", SUBJECT, *where]) == 2  # no key: refused
    assert "--audit-key" in capsys.readouterr().err
    late = ["--now", "2040-01-01T00:00:00+00:00"]
    assert (
        main(["privacy", "erase", "--subject", SUBJECT, "--reason", "T-1", *where, *audit, *late])
        == 0
    )
    certificate = json.loads(capsys.readouterr().out)
    assert certificate["certificate"] == "securetrade-erasure/1"
    assert certificate["shredded"] == ["trade_record"]
    assert main(["audit", "read", *where]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown[0]["personal"] == ERASED
    assert shown[1]["kind"] == "privacy.erasure"
    pub = str(tmp_path / "audit.pub")
    assert main(["audit", "verify", str(tmp_path / "trail.sqlite3"), "--public-key", pub]) == 0
    exported = str(tmp_path / "trail.jsonl")  # an export of sealed records verifies too
    assert main(["audit", "export", str(tmp_path / "trail.sqlite3"), "-o", exported]) == 0
    assert main(["audit", "verify", exported, "--public-key", pub]) == 0
    (tmp_path / "junk").write_bytes(b"not a database at all" * 100)
    junk = [*where[:2], "--vault", str(tmp_path / "junk"), *where[4:]]
    assert main(["privacy", "report", *junk]) == 2
    assert "data-key vault" in capsys.readouterr().err


# --- the whole deployment: copy engine, journal, outbox, logs -----------------------------------


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "securetrade.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    logger = logging.getLogger("securetrade")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield path
    logger.removeHandler(handler)
    logger.setLevel(level)
    handler.close()


def test_offboarding_erases_and_no_file_the_sdk_wrote_holds_the_followers_data(
    tmp_path: Path, master: Path, audit_key: AuditKey, log_file: Path, span_exporter: Any
) -> None:
    from securetrade.core import Journal

    data = tmp_path / "data"
    trail = AuditTrail(
        data / "trail.sqlite3",
        audit_key,
        personal=PersonalData(DataKeys(data / "vault.sqlite3", PrivacyKeys.from_file(master))),
    )
    audit = AuditLog(trail=trail)
    outbox, journal = data / "outbox.sqlite3", data / "journal.sqlite3"
    privacy = Privacy(trail, outbox=str(outbox), journal=str(journal))
    with Simulator(limits=SimLimits(weight=10**8, orders=10**7, orders_seconds=10)) as sim:
        server = sim.serve_fast()
        follower = Follower(
            SUBJECT,
            sim.create_key(balances={"USDT": Decimal(100_000), "BTC": Decimal(1)}),
            Sizing("fixed_notional", "100"),
            slippage_bps=Decimal(300),
        )
        price = sim.market.price("BTCUSDT")
        event = LeaderEvent("fill-1", "BTCUSDT", "BUY", "0.01", price, int(time.time() * 1000))

        async def run() -> tuple[Any, list[str], bool, dict[str, Any]]:
            async with CopyEngine(
                secret=Secret(b"privacy-test-copy-secret-0000"),
                connect={
                    "binance": {
                        "base_url": server.base_url,
                        "pins": server.pins,
                        "cadata": server.ca_pem,
                    }
                },
                journal=str(journal),
                outbox=str(outbox),
                audit=audit,
                privacy=privacy,
            ) as engine:
                engine.add(follower)
                report = await engine.copy(event)
                audit.emit("order.note", follower=SUBJECT, email=EMAIL, comment=NAME)
                orders = [o.client_order_id for o in engine.history(SUBJECT) if o.client_order_id]
                held = bool(_files_holding(data, SUBJECT))  # the outbox holds it: test can fail
                await engine.offboard(SUBJECT, reason="DSR-7")
                return report, orders, held, engine.erasures

        report, orders, held_before, erasures = asyncio.run(run())
    assert report.counts == {"placed": 1}
    assert orders
    assert held_before
    certificate = erasures[privacy.personal.keys.subject_ref(SUBJECT)]
    assert certificate["stores"]["copy_outbox"]["orders"] == len(orders)
    # copy.placed is a trade record, copy.offboarded the relationship: both were written
    # just now, so both are held (restricted) until their periods end, none shredded yet
    assert [r["class"] for r in certificate["restricted"]] == ["relationship", "trade_record"]
    assert certificate["shredded"] == []
    assert certificate["stores"]["journal"]["rows"] >= len(orders)
    ref = privacy.personal.keys.subject_ref(SUBJECT)
    held = [o for o in privacy.read() if o.subject_ref == ref]
    assert {o.kind for o in held} >= {"copy.placed", "copy.offboarded"}
    assert {o.status for o in held} == {"restricted"}
    assert privacy.sweep(now=time.time() + 6 * YEAR)["audit_keys_shredded"] == 2
    assert {o.status for o in privacy.read() if o.subject_ref == ref} == {"erased"}
    reopened = Journal(journal)
    for cid in orders:  # the subject's journal rows and tombstones are gone
        assert reopened.get(cid) is None
        assert reopened.tombstone(cid) is None
    reopened.close()
    trail.close()
    assert _files_holding(tmp_path, SUBJECT, EMAIL, NAME) == []
    assert log_file.stat().st_size > 0  # the engine did log, with pseudonyms
    spans = span_exporter.get_finished_spans()
    assert spans  # the orders were traced, and no span names the follower
    traced = json.dumps([[s.name, dict(s.attributes or {})] for s in spans], default=str)
    assert SUBJECT not in traced
    assert EMAIL not in traced
    assert _verified_at(data, tmp_path)


def _verified_at(data: Path, tmp_path: Path) -> bool:
    report = verify_path(
        data / "trail.sqlite3",
        public_keys=[(tmp_path / "audit.pub").read_text(encoding="ascii")],
    )
    return report.ok and report.trusted_keys


def test_offboard_with_erase_needs_privacy() -> None:
    engine = CopyEngine(
        secret=Secret(b"privacy-test-copy-secret-0000"),
        connect={"binance": {"base_url": "https://127.0.0.1:9"}},
        journal=":memory:",
    )
    with pytest.raises(InvalidRequest, match="privacy"):
        asyncio.run(engine.offboard("f1", erase=True))


# --- keystore backups ---------------------------------------------------------------------------


def _keystore(tmp_path: Path) -> Any:
    from securetrade.keys import KeyStore
    from securetrade.keys.keystore import KdfParams

    store = KeyStore.create(
        tmp_path / "keys.json", "correct horse battery", kdf=KdfParams(name="scrypt", n=2**15)
    )
    store.add("follower-alice", ApiKey("binance", "k-alice-0001", "alice-secret-zz9"))
    return store


def test_a_keystore_backup_restores_until_it_expires_then_is_refused(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from securetrade.errors import BackupExpired
    from securetrade.keys.backup import backup_keystore, restore_backup

    store = _keystore(tmp_path)
    t0 = datetime(2031, 1, 1, tzinfo=timezone.utc)
    expires = backup_keystore(store, tmp_path / "b.json", max_age=timedelta(days=30), now=t0)
    assert expires == t0 + timedelta(days=30)
    assert b"alice-secret-zz9" not in (tmp_path / "b.json").read_bytes()  # still sealed
    restored = restore_backup(
        tmp_path / "b.json", tmp_path / "r1.json", "correct horse battery", now=t0
    )
    assert restored.names() == ["follower-alice"]
    with pytest.raises(BackupExpired, match="undo an erasure"):
        restore_backup(
            tmp_path / "b.json",
            tmp_path / "r2.json",
            "correct horse battery",
            now=t0 + timedelta(days=31),
        )
    assert not (tmp_path / "r2.json").exists()


def test_a_backup_whose_expiry_was_moved_is_refused(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from securetrade.errors import KeystoreTampered
    from securetrade.keys.backup import backup_keystore, restore_backup

    t0 = datetime(2031, 1, 1, tzinfo=timezone.utc)
    backup_keystore(_keystore(tmp_path), tmp_path / "b.json", max_age=timedelta(days=1), now=t0)
    document = json.loads((tmp_path / "b.json").read_text())
    document["expires_at"] = (t0 + timedelta(days=3650)).isoformat()
    (tmp_path / "b.json").write_text(json.dumps(document))
    with pytest.raises(KeystoreTampered, match="altered"):
        restore_backup(tmp_path / "b.json", tmp_path / "r.json", "correct horse battery", now=t0)


def test_erasure_removes_the_subjects_keystore_entries(
    tmp_path: Path, master: Path, audit_key: AuditKey
) -> None:
    store = _keystore(tmp_path)
    privacy = Privacy(_trail(tmp_path, master, audit_key), keystore=store)
    certificate = privacy.erase(SUBJECT, keystore_names=["follower-alice", "never-there"])
    assert certificate["stores"]["keystore"] == {"entries": 1}
    assert store.names() == []


def test_the_gateway_logs_and_records_a_refused_address_truncated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from securetrade.gateway.events import GatewayMonitor, SecurityEvent

    audit = AuditLog()
    monitor = GatewayMonitor(audit=audit)
    with caplog.at_level(logging.WARNING, logger="securetrade.gateway"):
        monitor.refused(SecurityEvent("bad_signature", 401, "POST /orders", "k1", "203.0.113.77"))
        monitor.locked("addr:203.0.113.77", 60.0)
    assert "203.0.113.0/24" in caplog.text
    assert "203.0.113.77" not in caplog.text
    recorded = [e.fields for e in audit.events()]
    assert recorded[0]["address"] == "203.0.113.0/24"
    assert recorded[1]["name"] == "addr:203.0.113.0/24"
    assert "203.0.113.77" not in json.dumps(recorded)


def test_every_test_docs_privacy_cites_exists() -> None:
    import re

    doc = (Path(__file__).parent.parent / "docs" / "privacy.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(test_[a-z0-9_]+)`", doc))
    assert len(cited) >= 10
    assert cited <= set(globals()), sorted(cited - set(globals()))


def test_a_shredded_data_key_is_left_in_no_page_free_list_or_wal(
    tmp_path: Path, master: Path
) -> None:
    import sqlite3

    vault = DataKeys(tmp_path / "vault.sqlite3", PrivacyKeys.from_file(master))
    vault.key_for("ref-a", "trade_record", 2_000_000_000.0)
    vault.key_for("ref-b", "trade_record", 2_000_000_000.0)
    db = sqlite3.connect(tmp_path / "vault.sqlite3")
    (wrapped,) = db.execute("SELECT wrapped FROM data_keys WHERE subject_ref = 'ref-a'").fetchone()
    db.close()
    assert any(bytes(wrapped) in p.read_bytes() for p in tmp_path.glob("vault.sqlite3*"))
    assert vault.shred([("ref-a", "trade_record")]) == 1
    assert vault.get("ref-a", "trade_record") is None
    assert vault.get("ref-b", "trade_record") is not None
    assert not any(bytes(wrapped) in p.read_bytes() for p in tmp_path.glob("vault.sqlite3*"))


def test_a_malformed_master_key_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("ab" * 20 + "not-hex-tail-zz9\n")
    path.chmod(0o600)
    with pytest.raises(InvalidRequest) as caught:
        PrivacyKeys.from_file(path)
    assert "not-hex-tail-zz9" not in str(caught.value)
    assert caught.value.__context__ is None


def test_keys_backup_and_restore_commands_refuse_an_expired_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import datetime, timedelta, timezone

    from securetrade.keys.backup import backup_keystore

    keystore = _keystore(tmp_path)
    monkeypatch.setenv("SECURETRADE_KEYSTORE_PASSPHRASE", "correct horse battery")
    store = ["--keystore", str(tmp_path / "keys.json")]
    assert main(["keys", "backup", *store, "-o", str(tmp_path / "b.json"), "--max-age", "1d"]) == 0
    assert "restorable until" in capsys.readouterr().out
    assert (
        main(["keys", "restore", str(tmp_path / "b.json"), "--keystore", str(tmp_path / "r.json")])
        == 0
    )
    capsys.readouterr()
    made_long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)
    backup_keystore(keystore, tmp_path / "old.json", max_age=timedelta(days=30), now=made_long_ago)
    late = ["--keystore", str(tmp_path / "late.json")]
    assert main(["keys", "restore", str(tmp_path / "old.json"), *late]) == 1
    assert "expired" in capsys.readouterr().err
    assert not (tmp_path / "late.json").exists()
