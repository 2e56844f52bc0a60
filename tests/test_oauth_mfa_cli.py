"""The ``securetrade oauth`` and ``securetrade mfa`` commands, and 2FA options of ``keys``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from securetrade.cli import main
from securetrade.cli.keys import PASSPHRASE_ENV
from securetrade.keys import KeyStore
from securetrade.keys.otp import TotpOtp
from securetrade.policy import KillSwitch
from securetrade.sim.oauth import OAuthServerSim
from securetrade.transport.tls import PinSet, pinned_ssl_context


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    path = tmp_path / "keys.enc"
    passphrase = "pw-" + secrets.token_urlsafe(16)
    monkeypatch.setenv("SECURETRADE_KEYSTORE", str(path))
    monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    return {"path": path, "passphrase": passphrase, "dir": tmp_path}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mfa_enroll_then_release_a_kill_switch_once_per_code(
    env: dict[str, Any], capsys: Any
) -> None:
    KeyStore.create(env["path"], env["passphrase"])
    code, out, err = _run(capsys, "mfa", "enroll", "alice")
    assert code == 0, err
    seed = parse_qs(urlsplit(out.strip()).query)["secret"][0]
    switch_file = env["dir"] / "switch.sqlite"
    switch = KillSwitch.from_url(str(switch_file))
    switch.engage("drill")
    release = ("mfa", "release-kill-switch", "--store", str(switch_file), "--operator", "alice")
    code, _, err = _run(capsys, *release, "--otp", "000000")
    assert code == 1
    assert "wrong or expired" in err
    assert switch.engaged
    now_code = pyotp.TOTP(seed).now()
    code, out, err = _run(capsys, *release, "--otp", now_code)
    assert code == 0, err
    assert not switch.engaged
    switch.engage("again")
    code, _, err = _run(capsys, *release, "--otp", now_code)
    assert code == 1
    assert "already used" in err
    assert switch.engaged


def test_keys_add_takes_a_totp_seed_as_its_own_entry(env: dict[str, Any], capsys: Any) -> None:
    import base64

    seed = pyotp.random_base32()
    seed_file = env["dir"] / "seed"
    seed_file.write_text(seed)
    secret_file = env["dir"] / "secret"
    secret_file.write_bytes(base64.b64encode(os.urandom(64)))
    code, out, err = _run(
        capsys,
        "keys", "add", "kraken-bot", "--venue", "kraken", "--key-id", "k-1",
        "--secret-file", str(secret_file), "--totp-seed-file", str(seed_file),
    )  # fmt: skip
    assert code == 0, err
    assert seed not in out + err
    store = KeyStore.open(env["path"], env["passphrase"])
    key = store.get("kraken-bot")
    assert isinstance(key.otp, TotpOtp)
    assert store.otp_seed("otp-kraken-bot").expose().decode() == seed
    code, out, _ = _run(capsys, "keys", "show", "kraken-bot")
    assert "otp" in out
    assert "totp" in out


def test_oauth_login_by_the_command_then_show(env: dict[str, Any], capsys: Any) -> None:
    client_secret = secrets.token_urlsafe(24)
    auth = OAuthServerSim()
    auth.register_client("cli-client", client_secret.encode())
    served = auth.serve()
    try:
        ca = env["dir"] / "ca.pem"
        ca.write_text(served.ca_pem)
        pins = served.pins[served.host]
        child_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "CLIENT_SECRET": client_secret,
        }
        argv = [
            sys.executable, "-m", "securetrade", "oauth", "login", "simbroker",
            "--client-id", "cli-client", "--client-secret-env", "CLIENT_SECRET",
            "--authorize-url", served.base_url + "/authorize",
            "--token-url", served.base_url + "/token",
            "--pin", pins[0], "--pin", pins[1], "--cafile", str(ca),
            "--no-browser", "--timeout", "60", "--scope", "trading",
        ]  # fmt: skip
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, text=True
        )
        assert child.stdout is not None
        url = ""
        while not url.startswith("https://"):  # after "created keystore ..."
            url = child.stdout.readline().strip()
            assert url or child.poll() is None
        assert url.startswith(served.base_url + "/authorize?")
        context = pinned_ssl_context(PinSet(served.pins), cadata=served.ca_pem)
        with httpx.Client(verify=context) as browser:
            location = browser.get(url).headers["location"]
        httpx.get(location)  # the redirect reaches the command's loopback listener
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        for token in [*auth._access, *auth._refresh, client_secret]:
            assert token not in out + err
        code, shown, _ = _run(capsys, "oauth", "show", "simbroker")
        assert code == 0
        assert "access token   set" in shown
        assert "cli-client" in shown
    finally:
        served.stop()


def test_oauth_login_refuses_an_unpinned_token_endpoint(env: dict[str, Any], capsys: Any) -> None:
    code, _, err = _run(
        capsys,
        "oauth", "login", "simbroker", "--client-id", "c",
        "--authorize-url", "https://127.0.0.1:9/authorize",
        "--token-url", "https://127.0.0.1:9/token", "--no-browser", "--timeout", "1",
    )  # fmt: skip
    assert code == 1
    assert "pin the token endpoint" in err
