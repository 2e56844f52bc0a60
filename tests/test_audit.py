"""The audit trail: hash-chained, signed records; every kind of tampering is caught."""

from __future__ import annotations

import base64
import json
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from securetrade import Client, LimitOrder, MarketOrder, SecureTradeError
from securetrade.cli import main
from securetrade.errors import InvalidRequest
from securetrade.record import AuditKey, AuditLog, AuditTrail, verify_path
from securetrade.record.trail import GENESIS, canonical
from securetrade.sim import Simulator


@pytest.fixture
def audit_key() -> AuditKey:
    return AuditKey.generate()


@pytest.fixture
def trail_path(tmp_path: Path, audit_key: AuditKey) -> Path:
    """A trail of 8 records."""
    path = tmp_path / "audit.sqlite3"
    trail = AuditTrail(path, audit_key)
    for i in range(8):
        trail.append("order.intent", {"client_order_id": f"st{i}", "quantity": "0.01", "n": i})
    trail.close()
    return path


@pytest.fixture
def public_pem(tmp_path: Path, audit_key: AuditKey) -> Path:
    path = tmp_path / "audit-public.pem"
    path.write_text(audit_key.public_key_pem())
    return path


def _sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()


def _rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT * FROM records ORDER BY seq").fetchall()
    db.close()
    return rows


def _resign(path: Path, key: AuditKey, start: int) -> None:
    """What an attacker with a key of their own does: re-hash and re-sign from ``start``."""
    from securetrade.record.trail import Record

    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT seq, at, kind, body, prev, hash, key_id, signature FROM records ORDER BY seq"
    ).fetchall()
    prev = GENESIS
    with db:
        for row in rows:
            record = Record(*row)
            if record.seq >= start:
                draft = Record(
                    record.seq, record.at, record.kind, record.body, prev, "", key.key_id, ""
                )
                digest = draft.digest()
                db.execute(
                    "UPDATE records SET prev=?, hash=?, key_id=?, signature=? WHERE seq=?",
                    (prev, digest, key.key_id, key.sign(bytes.fromhex(digest)), record.seq),
                )
                prev = digest
            else:
                prev = record.hash
    db.close()


# Each tampering: (name, what it does to the file, problem kinds the verifier must report)
def _edit(path: Path) -> None:
    body = canonical({"client_order_id": "st3", "quantity": "10", "n": 3})
    _sql(path, f"UPDATE records SET body = '{body}' WHERE seq = 4")


def _edit_and_rehash(path: Path) -> None:
    _edit(path)
    from securetrade.record.trail import Record

    row = next(r for r in _rows(path) if r[0] == 4)
    digest = Record(*row).digest()
    _sql(path, f"UPDATE records SET hash = '{digest}' WHERE seq = 4")


def _edit_kind(path: Path) -> None:
    _sql(path, "UPDATE records SET kind = 'order.canceled' WHERE seq = 2")


def _edit_time(path: Path) -> None:
    _sql(path, "UPDATE records SET at = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 5")


def _remove_middle(path: Path) -> None:
    _sql(path, "DELETE FROM records WHERE seq = 4")


def _remove_first(path: Path) -> None:
    _sql(path, "DELETE FROM records WHERE seq = 1")


def _reorder(path: Path) -> None:
    _sql(
        path,
        "UPDATE records SET seq = -3 WHERE seq = 3",
        "UPDATE records SET seq = 3 WHERE seq = 6",
        "UPDATE records SET seq = 6 WHERE seq = -3",
    )


def _insert(path: Path, *values: Any) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
    db.close()


def _insert_middle(path: Path) -> None:
    fake = _rows(path)[2]
    _sql(
        path,
        "UPDATE records SET seq = seq + 100 WHERE seq >= 4",
        "UPDATE records SET seq = seq - 99 WHERE seq >= 104",
    )
    body = canonical({"client_order_id": "evil"})
    _insert(path, 4, fake[1], "order.intent", body, fake[5], "0" * 64, fake[6], fake[7])


def _insert_end_foreign_key(path: Path) -> None:
    from securetrade.record.trail import Record

    stranger = AuditKey.generate()
    last = _rows(path)[-1]
    body = canonical({"amount": "1"})
    draft = Record(9, last[1], "withdraw.attempt", body, last[5], "", stranger.key_id, "")
    digest = draft.digest()
    signature = stranger.sign(bytes.fromhex(digest))
    _insert(path, 9, draft.at, draft.kind, body, draft.prev, digest, stranger.key_id, signature)


def _swap_signature(path: Path) -> None:
    rows = _rows(path)
    _sql(path, f"UPDATE records SET signature = '{rows[1][7]}' WHERE seq = 3")


TAMPERING: list[tuple[str, Callable[[Path], None], set[str]]] = [
    ("edited body", _edit, {"edited"}),
    ("edited and re-hashed", _edit_and_rehash, {"bad_signature", "broken_link"}),
    ("edited kind", _edit_kind, {"edited"}),
    ("edited time", _edit_time, {"edited"}),
    ("removed from the middle", _remove_middle, {"missing", "broken_link"}),
    ("removed the first", _remove_first, {"missing", "broken_link"}),
    ("reordered", _reorder, {"edited", "broken_link"}),
    ("inserted in the middle", _insert_middle, {"edited", "broken_link"}),
    ("appended by a stranger", _insert_end_foreign_key, {"unknown_signer"}),
    ("signature moved", _swap_signature, {"bad_signature"}),
]


def test_intact_trail_verifies(trail_path: Path, public_pem: Path) -> None:
    report = verify_path(trail_path, public_keys=[public_pem.read_text()])
    assert report.ok
    assert report.records == 8
    assert report.trusted_keys
    assert report.head == _rows(trail_path)[-1][5]


@pytest.mark.parametrize(("name", "tamper", "kinds"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_every_kind_of_tampering_is_detected(
    trail_path: Path, name: str, tamper: Callable[[Path], None], kinds: set[str]
) -> None:
    tamper(trail_path)
    report = verify_path(trail_path)
    assert not report.ok, name
    assert kinds <= {p.kind for p in report.problems}, [str(p) for p in report.problems]


@pytest.mark.parametrize(("name", "tamper", "kinds"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_cli_verify_catches_every_kind_of_tampering(
    trail_path: Path,
    public_pem: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    tamper: Callable[[Path], None],
    kinds: set[str],
) -> None:
    assert main(["audit", "verify", str(trail_path), "--public-key", str(public_pem)]) == 0
    tamper(trail_path)
    capsys.readouterr()
    assert main(["audit", "verify", str(trail_path), "--public-key", str(public_pem)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED"), out
    for kind in kinds:
        assert f"{kind}:" in out


def test_rewritten_chain_needs_the_trusted_key(
    trail_path: Path, public_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker re-signs everything with a key of their own and swaps the stored keys:
    only the public key kept by the verifier tells the difference."""
    forger = AuditKey.generate()
    _edit(trail_path)
    _resign(trail_path, forger, start=1)
    _sql(
        trail_path,
        "DELETE FROM audit_keys",
        f"INSERT INTO audit_keys VALUES ('{forger.key_id}', '{forger.public_key_pem()}')",
    )
    assert verify_path(trail_path).ok  # self-consistent, as far as the file alone can say
    assert main(["audit", "verify", str(trail_path)]) == 3  # ...which proves nothing
    assert "--public-key FILE" in capsys.readouterr().out
    report = verify_path(trail_path, public_keys=[public_pem.read_text()])
    assert {p.kind for p in report.problems} == {"unknown_signer"}
    assert main(["audit", "verify", str(trail_path), "--public-key", str(public_pem)]) == 1


def test_cli_verify_of_a_resigned_chain_fails_without_a_trusted_key(
    trail_path: Path, public_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failure 13: with no trusted key, ``audit verify`` exited 0 on a chain re-signed with
    another key. It must say that nothing proves who signed, and exit non-zero."""
    capsys.readouterr()
    assert main(["audit", "verify", str(trail_path)]) == 3  # intact, signer unproven
    untouched = capsys.readouterr().out
    assert untouched.startswith("UNVERIFIED: 8 records")
    assert "no trusted key was given" in untouched
    forger = AuditKey.generate()
    _edit(trail_path)
    _resign(trail_path, forger, start=1)
    _sql(
        trail_path,
        "DELETE FROM audit_keys",
        f"INSERT INTO audit_keys VALUES ('{forger.key_id}', '{forger.public_key_pem()}')",
    )
    assert main(["audit", "verify", str(trail_path)]) != 0
    assert "OK" not in capsys.readouterr().out
    assert main(["audit", "verify", str(trail_path), "--json"]) == 3
    verdict = json.loads(capsys.readouterr().out)
    assert (verdict["ok"], verdict["intact"], verdict["trusted_keys"]) == (False, True, False)
    assert main(["audit", "verify", str(trail_path), "--public-key", str(public_pem)]) == 1
    command = [sys.executable, "-m", "securetrade", "audit", "verify", str(trail_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stdout + done.stderr


def test_cli_verify_exit_statuses_are_documented() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "audit.md").read_text()
    assert "--public-key" in text
    assert "3 intact but unproven" in text


def test_truncated_tail_needs_an_anchor(
    trail_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "head", str(trail_path)]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor == _rows(trail_path)[-1][5]
    _sql(trail_path, "DELETE FROM records WHERE seq >= 7")
    assert verify_path(trail_path).ok  # a cut tail looks like a shorter, intact chain...
    report = verify_path(trail_path, anchor=anchor)  # ...until compared with the anchor
    assert [p.kind for p in report.problems] == ["truncated"]
    assert main(["audit", "verify", str(trail_path), "--anchor", anchor]) == 1
    assert "truncated" in capsys.readouterr().out
    assert main(["audit", "verify", str(trail_path), "--min-records", "8"]) == 1


def test_export_writes_json_lines_that_verify(
    trail_path: Path, public_pem: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "audit.jsonl"
    assert main(["audit", "export", str(trail_path), "-o", str(export)]) == 0
    lines = export.read_text().splitlines()
    assert len(lines) == 8
    first = json.loads(lines[0])
    assert first["seq"] == 1
    assert first["prev"] == GENESIS
    assert first["fields"] == {"client_order_id": "st0", "quantity": "0.01", "n": 0}
    assert verify_path(export, public_keys=[public_pem.read_text()]).ok
    assert main(["audit", "verify", str(export), "--public-key", str(public_pem)]) == 0
    # An export is checked as strictly as the file: edit one line, swap two others.
    edited = json.loads(lines[2])
    edited["fields"]["quantity"] = "99"
    lines[2] = json.dumps(edited)
    lines[4], lines[5] = lines[5], lines[4]
    export.write_text("\n".join(lines) + "\n")
    report = verify_path(export, public_keys=[public_pem.read_text()])
    assert {"edited", "out_of_order", "broken_link"} <= {p.kind for p in report.problems}
    capsys.readouterr()
    assert main(["audit", "verify", str(export), "--public-key", str(public_pem), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    with pytest.raises(InvalidRequest, match="trusted public key"):
        verify_path(export)


def test_cli_as_a_command(trail_path: Path, public_pem: Path) -> None:
    verify = [sys.executable, "-m", "securetrade", "audit", "verify", str(trail_path)]
    ok = subprocess.run([*verify, "--public-key", str(public_pem)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK: 8 records" in ok.stdout
    _remove_middle(trail_path)
    bad = subprocess.run(verify, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "missing: record 5: records 4..4 are missing" in bad.stdout
    missing = subprocess.run(
        [*verify[:-1], str(trail_path) + ".nope"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "no such audit trail" in missing.stderr


def test_appends_from_threads_and_processes_form_one_chain(
    tmp_path: Path, audit_key: AuditKey
) -> None:
    path = tmp_path / "shared.sqlite3"
    pem = audit_key.private_key_pem().expose().decode()
    writer = textwrap.dedent(
        f"""
        import sys
        from securetrade.record import AuditKey, AuditTrail
        trail = AuditTrail({str(path)!r}, AuditKey.from_pem(sys.stdin.read()))
        for i in range(100):
            trail.append("proc", {{"i": i}})
        trail.close()
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", writer], stdin=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(pem)
        process.stdin.close()
    trail = AuditTrail(path, audit_key)
    threads = [
        threading.Thread(target=lambda: [trail.append("thread", {"i": i}) for i in range(50)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=60) == 0
    report = trail.verify(public_keys=[audit_key.public_key_pem()])
    assert report.ok, [str(p) for p in report.problems]
    assert report.records == 400
    trail.close()


def test_audit_key_stays_secret(tmp_path: Path, audit_key: AuditKey) -> None:
    assert audit_key.key_id in repr(audit_key)
    assert "PRIVATE" not in repr(audit_key)
    with pytest.raises(TypeError):
        pickle.dumps(audit_key)
    encrypted = audit_key.private_key_pem(password=b"correct horse")
    assert "ENCRYPTED" in encrypted.expose().decode()
    assert AuditKey.from_pem(encrypted, password=b"correct horse").key_id == audit_key.key_id
    with pytest.raises(InvalidRequest, match="wrong password"):
        AuditKey.from_pem(encrypted, password=b"wrong")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidRequest, match="Ed25519"):
        AuditKey.from_pem(other)
    with pytest.raises(InvalidRequest, match="synchronous"):
        AuditTrail(tmp_path / "x.sqlite3", audit_key, synchronous="OFF")


def test_client_activity_is_recorded_without_secrets(tmp_path: Path, audit_key: AuditKey) -> None:
    """Intents, redacted requests, responses and state changes, over real TLS; no secret."""
    path = tmp_path / "client-audit.sqlite3"
    trail = AuditTrail(path, audit_key)
    with Simulator() as sim:
        server = sim.serve()
        key = sim.create_key()
        secret = key.secret.expose()
        with Client(
            key,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=":memory:",
            audit=AuditLog(trail=trail),
        ) as client:
            order = client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
            )
            client.cancel_order("BTCUSDT", order_id=order.order_id)
            client.place_order(MarketOrder(symbol="ETHUSDT", side="SELL", quantity="0.1"))
            with pytest.raises(SecureTradeError):
                client.place_order(
                    LimitOrder(symbol="BTCUSDT", side="BUY", quantity="9", price="60000")
                )
    trail.close()
    signers = verify_path(path, public_keys=[audit_key.public_key_pem()]).signers
    assert signers == (audit_key.key_id,)
    kinds = [r[2] for r in _rows(path)]
    for kind in (
        "order.intent",
        "http.request",
        "http.response",
        "order.placed",
        "order.canceled",
        "order.rejected",
    ):
        assert kind in kinds, kind
    requests = [json.loads(r[3]) for r in _rows(path) if r[2] == "http.request"]
    posted = [r for r in requests if r["method"] == "POST"]
    assert posted
    assert all("signature=********" in r["body"] for r in posted)
    assert all(r["headers"].get("X-MBX-APIKEY") == "********" for r in posted)
    blob = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("client-audit*"))
    for form in (secret, secret.hex().encode(), base64.b64encode(secret), key.key_id.encode()):
        assert form not in blob
    assert verify_path(path, public_keys=[audit_key.public_key_pem()]).ok


def test_both_halves_export_by_method_and_the_old_spellings_still_work(
    audit_key: AuditKey,
) -> None:
    public = audit_key.public_key_pem()
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.warns(DeprecationWarning, match=r"public_key_pem\(\)"):
        assert audit_key.public_pem == public
    with pytest.warns(DeprecationWarning, match=r"private_key_pem\(\)"):
        old = audit_key.private_pem()
    assert AuditKey.from_pem(old).public_key_pem() == public
    assert AuditKey.from_pem(audit_key.private_key_pem()).key_id == audit_key.key_id
