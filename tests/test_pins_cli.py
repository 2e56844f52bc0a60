"""``securetrade pins``: pins from a file (PEM chain, DER) and from a live TLS host."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from securetrade.cli import main
from securetrade.sim import HttpsServer
from securetrade.sim.certs import make_certificates
from securetrade.transport import PinSet


def test_pem_chain_gives_every_pin_and_suggests_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs = make_certificates()
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(certs.cert_pem)  # leaf, then CA
    assert main(["pins", str(bundle), "--json", "--for-host", "api.example.com"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [entry["pin"] for entry in out["chain"]] == [certs.leaf_pin, certs.ca_pin]
    assert out["suggested"] == {"api.example.com": [certs.ca_pin]}


def test_der_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    certs = make_certificates()
    der = tmp_path / "ca.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(certs.ca_pem))
    assert main(["pins", str(der)]) == 0
    out = capsys.readouterr().out
    assert certs.ca_pin in out
    assert "Only one pin" in out  # a PinSet needs two: the command says how to get a backup


def test_live_host_chain_is_the_verified_one_and_the_set_is_usable(
    server: HttpsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(server.ca_pem)
    host_port = server.base_url.removeprefix("https://")
    assert main(["pins", "--host", host_port, "--cafile", str(ca), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    chain_pins = [entry["pin"] for entry in out["chain"]]
    assert set(chain_pins) == set(server.pins["127.0.0.1"])  # leaf and CA
    suggested = out["suggested"]["127.0.0.1"]
    PinSet({"127.0.0.1": [*suggested, chain_pins[0]]}).check(
        [ssl.PEM_cert_to_DER_cert(server.ca_pem)], "127.0.0.1"
    )


def test_untrusted_host_gives_no_pins(
    server: HttpsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the simulator's CA the chain does not verify: no pins are suggested."""
    host_port = server.base_url.removeprefix("https://")
    assert main(["pins", "--host", host_port]) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err


def test_live_host_ignores_ssl_cert_file_and_sslkeylogfile(
    server: HttpsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pins are read from a chain the platform store (or --cafile) verified, never a CA
    the environment slipped in; and no TLS key log is written."""
    ca = tmp_path / "ca.pem"
    ca.write_text(server.ca_pem)
    key_log = tmp_path / "keys.log"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSLKEYLOGFILE", str(key_log))
    host_port = server.base_url.removeprefix("https://")
    assert main(["pins", "--host", host_port]) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    assert main(["pins", "--host", host_port, "--cafile", str(ca)]) == 0
    written = key_log.read_text().splitlines() if key_log.exists() else []
    assert [line for line in written if line and not line.startswith("#")] == []


def test_not_a_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert main(["pins", str(junk)]) == 1
    assert "no PEM or DER certificate" in capsys.readouterr().err
