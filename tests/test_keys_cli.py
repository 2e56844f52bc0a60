"""``securetrade keys``: driven in-process, as a subprocess, and through a real terminal.

The terminal test runs the command on a pseudo-terminal, so ``getpass`` really turns echo
off: the passphrase and the secret typed there must not come back in the output.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from securetrade.cli import main
from securetrade.keys import KeyStore, Scope
from securetrade.sim import HttpsServer, Simulator

PASSPHRASE_ENV = "SECURETRADE_KEYSTORE_PASSPHRASE"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A keystore path and passphrase in the environment, as a deployment would set them."""
    path = tmp_path / "keys.enc"
    passphrase = "pw-" + secrets.token_urlsafe(16)
    monkeypatch.setenv("SECURETRADE_KEYSTORE", str(path))
    monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    return {"path": path, "passphrase": passphrase, "dir": tmp_path}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keys", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def secret_file(directory: Path, value: str | bytes) -> str:
    path = directory / f"secret-{secrets.token_hex(4)}"
    path.write_bytes(value.encode() if isinstance(value, str) else value)
    return str(path)


def test_add_list_show_rotate_remove(env: dict[str, Any], capsys: Any) -> None:
    secret, key_id = secrets.token_hex(32), secrets.token_hex(16)
    code, out, _ = run(
        capsys,
        "add",
        "bot",
        "--venue",
        "binance",
        "--key-id",
        key_id,
        "--scopes",
        "read,trade",
        "--symbols",
        "BTCUSDT",
        "--max-notional",
        "2500",
        "--secret-file",
        secret_file(env["dir"], secret),
    )
    assert code == 0
    assert "created keystore" in out
    stored = KeyStore.open(env["path"], env["passphrase"]).get("bot")
    assert stored.secret.expose() == secret.encode()
    assert stored.scopes == {Scope.READ, Scope.TRADE}
    assert str(stored.max_notional) == "2500"

    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "bot" in out
    assert "read,trade" in out

    code, out, _ = run(capsys, "show", "bot")
    assert code == 0
    assert "BTCUSDT" in out
    assert "2500" in out

    new_secret, new_id = secrets.token_hex(32), secrets.token_hex(16)
    code, out, _ = run(
        capsys,
        "rotate",
        "bot",
        "--key-id",
        new_id,
        "--secret-file",
        secret_file(env["dir"], new_secret),
        "--overlap",
        "15m",
    )
    assert code == 0
    assert "now signing with" in out
    assert "then delete it there" in out
    ring = KeyStore.open(env["path"], env["passphrase"]).ring("bot")
    assert ring.current.key_id == new_id
    assert ring.current.symbols == {"BTCUSDT"}  # limits carried over from the old key
    assert ring.previous is not None
    assert ring.previous.key_id == key_id

    code, out, _ = run(capsys, "list")
    assert "previous" in out

    code, out, _ = run(capsys, "remove", "bot", "--previous")
    assert code == 0
    assert KeyStore.open(env["path"], env["passphrase"]).ring("bot").previous is None
    code, out, _ = run(capsys, "remove", "bot")
    assert code == 0
    code, out, _ = run(capsys, "list")
    assert "no keys" in out
    everything = capsys.readouterr()
    for value in (secret, new_secret, key_id, new_id, env["passphrase"]):
        assert value not in out + everything.out + everything.err


def test_errors_are_one_line_and_exit_1(env: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    secret = secrets.token_hex(32)
    assert run(capsys, "add", "bot", "--venue", "binance", "--key-id", "k-123456789",
               "--secret-file", secret_file(env["dir"], secret))[0] == 0  # fmt: skip
    code, _, err = run(
        capsys,
        "rotate",
        "bot",
        "--key-id",
        "k-987654321",
        "--scopes",
        "read,withdraw",
        "--secret-file",
        secret_file(env["dir"], secrets.token_hex(32)),
    )
    assert code == 1
    assert "never widen" in err
    monkeypatch.setenv(PASSPHRASE_ENV, "not-the-passphrase")
    code, _, err = run(capsys, "list")
    assert code == 1
    assert err.startswith("securetrade keys list: error: wrong passphrase")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "show", "nope")
    assert code == 1
    env["path"].chmod(0o644)
    monkeypatch.setenv(PASSPHRASE_ENV, env["passphrase"])
    code, _, err = run(capsys, "list")
    assert code == 1
    assert "chmod 600" in err


def test_passphrase_file_and_no_passphrase(
    env: dict[str, Any], capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    pw_file = secret_file(env["dir"], env["passphrase"] + "\n")
    code, _, err = run(
        capsys,
        "add",
        "bot",
        "--venue",
        "binance",
        "--key-id",
        "k-123456789",
        "--secret-file",
        secret_file(env["dir"], secrets.token_hex(16)),
        "--passphrase-file",
        pw_file,
    )
    assert code == 0, err
    assert KeyStore.open(env["path"], env["passphrase"]).names() == ["bot"]
    code, _, err = run(capsys, "list")  # stdin is not a terminal under pytest
    assert code == 1
    assert "--passphrase-file" in err


def _serve_for_cli(sim: Simulator, directory: Path) -> tuple[HttpsServer, list[str]]:
    server = sim.serve()
    ca = directory / "ca.pem"
    ca.write_text(server.ca_pem)
    options = ["--base-url", server.base_url, "--cafile", str(ca)]
    for pin in server.pins[server.host]:
        options += ["--pin", pin]
    return server, options


@pytest.mark.parametrize(
    ("venue_side", "expected"),
    [({}, 0), ({"can_withdraw": True}, 3), ({"ip_restricted": False}, 3)],
)
def test_check_against_the_simulator(
    env: dict[str, Any], capsys: Any, sim: Simulator, venue_side: dict[str, Any], expected: int
) -> None:
    key = sim.create_key(scopes=[Scope.READ, Scope.TRADE], **venue_side)
    _, options = _serve_for_cli(sim, env["dir"])
    assert run(capsys, "add", "bot", "--venue", "binance", "--environment", "simulated",
               "--key-id", key.key_id, "--scopes", "read,trade",
               "--secret-file", secret_file(env["dir"], key.secret.expose()))[0] == 0  # fmt: skip
    code, out, _ = run(capsys, "check", "bot", *options)
    assert code == expected
    assert ("verdict     ok" in out) == (expected == 0)
    if venue_side.get("can_withdraw"):
        assert "withdrawals are enabled" in out
    if venue_side.get("ip_restricted") is False:
        assert "no IP allowlist" in out
    assert key.key_id not in out
    assert key.secret.expose().decode() not in out


def _subprocess(*argv: str, env: dict[str, str], stdin: bytes = b"") -> Any:
    return subprocess.run(
        [sys.executable, "-m", "securetrade", "keys", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_as_a_subprocess(env: dict[str, Any], sim: Simulator) -> None:
    """The installed command, with the secret on stdin and the passphrase in the environment."""
    key = sim.create_key(scopes=[Scope.READ], can_withdraw=True)
    _, options = _serve_for_cli(sim, env["dir"])
    child_env = {
        **os.environ,
        "SECURETRADE_KEYSTORE": str(env["path"]),
        PASSPHRASE_ENV: env["passphrase"],
    }
    added = _subprocess(
        "add", "bot", "--venue", "binance", "--environment", "simulated",
        "--key-id", key.key_id, "--secret-file", "-",
        env=child_env, stdin=key.secret.expose(),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = _subprocess("show", "bot", env=child_env)
    assert shown.returncode == 0
    assert b"scopes        read" in shown.stdout
    checked = _subprocess("check", "bot", *options, env=child_env)
    assert checked.returncode == 3, checked.stderr
    assert b"withdrawals are enabled" in checked.stdout
    for result in (added, shown, checked):
        blob = result.stdout + result.stderr
        assert key.secret.expose() not in blob
        assert key.key_id.encode() not in blob
        assert env["passphrase"].encode() not in blob


def _pty_run(argv: list[str], answers: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``argv`` on a pseudo-terminal, answering each prompt with the next answer."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execve(sys.executable, [sys.executable, "-m", "securetrade", *argv], env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):  # a prompt, echo already off
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def test_prompts_do_not_echo(tmp_path: Path) -> None:
    """Passphrase (twice, for a new keystore), key id and secret typed at no-echo prompts."""
    passphrase = "pw-" + secrets.token_urlsafe(16)
    secret = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    env["SECURETRADE_KEYSTORE"] = str(tmp_path / "keys.enc")
    code, output = _pty_run(
        ["keys", "add", "bot", "--venue", "binance", "--key-id", "k-123456789"],
        [passphrase, passphrase, secret],
        env,
    )
    assert code == 0, output
    assert b"Keystore passphrase:" in output
    assert b"API secret:" in output
    assert passphrase.encode() not in output
    assert secret.encode() not in output
    assert KeyStore.open(tmp_path / "keys.enc", passphrase).get("bot").secret.expose() == (
        secret.encode()
    )
    code, output = _pty_run(["keys", "list"], [passphrase], env)
    assert code == 0
    assert b"bot" in output
    assert passphrase.encode() not in output
