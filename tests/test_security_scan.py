"""The secret scan (tools/scan_secrets.py) finds planted secrets and passes on the real tree.

Every planted secret is generated at run time, so this file holds none for the scan to find.
"""

from __future__ import annotations

import secrets
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tool_loader import TOOLS, load_tool

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = TOOLS / "scan_secrets.py"


scanner = load_tool("scan_secrets")


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _pem(private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    fmt = (
        serialization.PrivateFormat.PKCS8
        if isinstance(private_key, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode("ascii")


ALNUM = string.ascii_letters + string.digits


def planted() -> dict[str, tuple[str, str]]:
    """file name -> (rule the scan must report, file text), all fresh random material."""
    return {
        "key.pem": ("private-key", _pem(ed25519.Ed25519PrivateKey.generate())),
        "ec.py": ("private-key", f'KEY = """{_pem(ec.generate_private_key(ec.SECP256R1()))}"""'),
        "aws.env": ("aws-access-key-id", "id=AKIA" + _random(string.ascii_uppercase, 16)),
        "gh.yml": ("github-token", "auth: gh" + "p_" + _random(ALNUM, 36)),
        "hex.py": ("assigned-secret", f'api_secret = "{secrets.token_hex(32)}"\n'),
        "b64.json": ("assigned-secret", f'{{"password": "{secrets.token_urlsafe(30)}"}}'),
        "cfg.toml": ("assigned-secret", f"auth_token = '{secrets.token_urlsafe(24)}'"),
    }


def test_planted_secrets_are_found(tmp_path: Path) -> None:
    """Each kind of secret, in its own file, is reported once with the right rule."""
    for name, (_, text) in planted().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    found = {(f.path, f.rule) for f in scanner.scan(tmp_path)}
    expected = {(name, rule) for name, (rule, _) in planted().items()}
    assert expected <= found
    assert {path for path, _ in found} == set(planted())


def test_ordinary_text_is_not_a_secret(tmp_path: Path) -> None:
    """Low-entropy values, secret-like values under ordinary names, and prose pass."""
    (tmp_path / "ok.py").write_text(
        'secret_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"\n'
        'api_key = "use_the_environment_variable_instead"\n'
        'key = "${{ secrets.BINANCE_KEY }}"\n'
        f'checksum = "{secrets.token_hex(32)}"\n'
        'token_env = "SECURETRADE_KEYSTORE_PASSPHRASE"\n'
        "-----BEGIN PUBLIC KEY-----\n",
        encoding="utf-8",
    )
    assert scanner.scan(tmp_path) == []


def test_output_names_the_place_but_never_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = secrets.token_hex(32)
    (tmp_path / "leak.py").write_text(f'private_key = "{value}"\n', encoding="utf-8")
    assert scanner.main([str(tmp_path), "--allowlist", str(tmp_path / "none.txt")]) == 1
    out = capsys.readouterr()
    assert "leak.py:1: assigned-secret" in out.out
    assert value not in out.out + out.err
    assert value[:12] not in out.out + out.err


def test_allowlist_excuses_one_exact_match(tmp_path: Path) -> None:
    """An entry excuses its fingerprint only: a real key added to the same file is found."""
    fixture = f'fake_secret = "{secrets.token_hex(32)}"\n'
    (tmp_path / "fixture.py").write_text(fixture, encoding="utf-8")
    (finding,) = scanner.scan(tmp_path)
    allowlist = tmp_path / "allow.txt"
    allowlist.write_text(f"fixture.py {finding.fingerprint}  # a fake for a test\n", "utf-8")
    allowed = scanner.load_allowlist(allowlist)
    assert scanner.scan(tmp_path, allowed) == []
    pem = _pem(ed25519.Ed25519PrivateKey.generate())
    (tmp_path / "fixture.py").write_text(fixture + pem, encoding="utf-8")
    assert [f.rule for f in scanner.scan(tmp_path, allowed)] == ["private-key"]


def test_allowlist_entries_must_say_why(tmp_path: Path) -> None:
    allowlist = tmp_path / "allow.txt"
    allowlist.write_text("fixture.py 0123456789abcdef\n", encoding="utf-8")
    with pytest.raises(ValueError, match="reason"):
        scanner.load_allowlist(allowlist)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_in_a_checkout_ignored_files_are_skipped(tmp_path: Path) -> None:
    """Tracked and new files are scanned; what .gitignore excludes (local .env) is not."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text(".env\n", encoding="utf-8")
    (tmp_path / ".env").write_text(f'SECRET = "{secrets.token_hex(32)}"\n', encoding="utf-8")
    (tmp_path / "new.py").write_text(f'SECRET = "{secrets.token_hex(32)}"\n', encoding="utf-8")
    assert [f.path for f in scanner.scan(tmp_path)] == ["new.py"]


def test_the_repository_is_clean() -> None:
    """The real tree, with the allowlist: nothing. Each allowlist entry is still needed."""
    allowed = scanner.load_allowlist(scanner.ALLOWLIST)
    assert scanner.scan(ROOT, allowed) == []
    everything = {(f.path, f.fingerprint) for f in scanner.scan(ROOT)}
    assert allowed <= everything, "stale allowlist entries: remove them"


def test_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
    assert "0 findings" in done.stderr
