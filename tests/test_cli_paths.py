"""Every error path of the ``securetrade`` command: one line on stderr, non-zero, no traceback.

Each case runs the real command in a child process with no terminal (stdin is /dev/null),
as a script or CI would. Messages name the command's flags, never a Python keyword.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from securetrade import ApiKey, Client
from securetrade.cli import build_parser
from securetrade.record import AuditKey, AuditTrail

PASSPHRASE = "correct horse battery staple"


def _securetrade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "securetrade", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one stderr line of a refused command, after checking the shape of the failure."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    for python_only in ("base_url=", "pins=", "PinSet(", "unsafe_disable_pinning="):
        assert python_only not in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def keystore(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``securetrade keys ...`` on a keystore in tmp_path, passphrase from the environment."""
    path = str(tmp_path / "keys.store")

    def keys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        more = {"SECURETRADE_KEYSTORE_PASSPHRASE": PASSPHRASE, **(env or {})}
        return _securetrade("keys", *args[:1], "--keystore", path, *args[1:], env=more)

    return keys


def _add_key(keys: Callable[..., subprocess.CompletedProcess[str]], name: str) -> None:
    added = keys(
        "add", name, "--venue", "binance", "--key-id", "k" * 64, "--secret-env", "BOT_SECRET",
        env={"BOT_SECRET": "s" * 64},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def test_version_prints_the_package_version() -> None:
    from securetrade import __version__

    result = _securetrade("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"securetrade {__version__}"


def test_unknown_command_and_flag_are_one_line_pointing_at_help() -> None:
    _refused(_securetrade("nonsense"), "securetrade:", "--help")
    _refused(_securetrade("keys", "add", "--no-such-flag"), "--help")


def test_keys_rotate_without_a_terminal_names_the_flag(keystore: Callable[..., Any]) -> None:
    _add_key(keystore, "bot")
    line = _refused(keystore("rotate", "bot"), "no terminal", "--key-id")
    assert line.startswith("securetrade keys rotate: error:")
    secret_missing = keystore("rotate", "bot", "--key-id", "n" * 64)
    _refused(secret_missing, "--secret-file", "--secret-env")


def test_keys_add_without_a_terminal_names_the_flag(keystore: Callable[..., Any]) -> None:
    _refused(keystore("add", "bot", "--venue", "binance"), "--key-id")


def test_keys_add_refuses_an_unknown_venue_and_stores_nothing(
    keystore: Callable[..., Any], tmp_path: Path
) -> None:
    refused = keystore(
        "add", "bot", "--venue", "binanse", "--key-id", "k" * 64, "--secret-env", "BOT_SECRET",
        env={"BOT_SECRET": "s" * 64},
    )  # fmt: skip
    line = _refused(refused, "'binanse'", "did you mean binance?", "--venue", "kraken")
    assert "ccxt:<exchange id>" in line
    assert not (tmp_path / "keys.store").exists()
    _refused(keystore("add", "bot", "--venue", "ccxt:binanse", "--key-id", "x"), "binanse")


def test_keys_add_refuses_bad_options_in_their_flags_names_and_creates_nothing(
    keystore: Callable[..., Any], tmp_path: Path
) -> None:
    def add(*more: str) -> subprocess.CompletedProcess[str]:
        return keystore(
            "add", "bot", "--venue", "binance", "--key-id", "k" * 64, "--secret-env", "S", *more,
            env={"S": "s" * 64},
        )  # fmt: skip

    _refused(add("--max-notional", "abc"), "--max-notional", "5000")
    _refused(add("--max-quantity", "-1"), "--max-quantity")
    _refused(add("--scopes", "read,bogus"), "--scopes", "'bogus'", "trade")
    _refused(add("--kind", "rsa"), "--kind rsa", "not a readable private key")
    assert not (tmp_path / "keys.store").exists()


def test_keys_check_names_flags_not_keywords(keystore: Callable[..., Any]) -> None:
    _add_key(keystore, "bot")
    _refused(keystore("check", "bot"), "--pin", "--base-url", "--unsafe-disable-pinning")
    _refused(keystore("check", "bot", "--pin", "sha256/x"), "--pin needs --base-url")


def test_keys_check_without_a_venue_url_asks_for_the_flag(keystore: Callable[..., Any]) -> None:
    added = keystore(
        "add", "sim", "--venue", "binance", "--environment", "simulated", "--key-id", "k" * 64,
        "--secret-env", "BOT_SECRET", env={"BOT_SECRET": "s" * 64},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    _refused(keystore("check", "sim", "--unsafe-disable-pinning"), "pass --base-url")


def test_keys_errors_from_the_store_are_one_line(keystore: Callable[..., Any]) -> None:
    _refused(keystore("show", "nobody"), "no keystore")
    _add_key(keystore, "bot")
    _refused(keystore("show", "nobody"), "nobody")
    wrong = keystore("list", env={"SECURETRADE_KEYSTORE_PASSPHRASE": "not the passphrase"})
    _refused(wrong)
    _refused(keystore("add", "x", "--venue", "kraken", "--overlap", "soon"), "duration")
    _refused(keystore("rotate", "bot", "--at", "tomorrow"), "--at", "ISO time")
    _refused(keystore("rotate", "bot", "--at", "2030-01-01T00:00"), "--at", "UTC offset")


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "audit.sqlite3"
    audit = AuditTrail(path, AuditKey.generate())
    audit.append("order.intent", {"client_order_id": "st1", "quantity": "0.01"})
    audit.close()
    return path


def test_audit_export_to_an_unwritable_path_is_one_line(trail: Path) -> None:
    _refused(_securetrade("audit", "export", str(trail), "-o", "/proc/x.jsonl"), "-o", "/proc")
    written = _securetrade("audit", "export", str(trail), "-o", str(trail.with_suffix(".jsonl")))
    assert written.returncode == 0, written.stderr
    assert trail.with_suffix(".jsonl").read_text().count("\n") == 1


def test_audit_missing_files_are_one_line(trail: Path, tmp_path: Path) -> None:
    nothing = str(tmp_path / "nothing.sqlite3")
    for command in ("export", "head", "verify"):
        _refused(_securetrade("audit", command, nothing), "no such audit trail", "check the path")
    missing_key = _securetrade("audit", "verify", str(trail), "--public-key", nothing)
    assert missing_key.returncode == 2
    _refused(missing_key, "--public-key")


def test_pins_errors_are_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    _refused(_securetrade("pins", str(junk)), "no PEM or DER certificate")
    _refused(_securetrade("pins", str(tmp_path / "absent.pem")), "No such file")
    _refused(_securetrade("pins", "--host", "localhost:99999"), "--host", "65535")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    _refused(_securetrade("pins", str(broken)), "not a valid certificate")


def test_sim_refuses_a_key_kind_its_venue_does_not_take() -> None:
    _refused(_securetrade("sim", "--venue", "kraken", "--key-kind", "ed25519"), "--key-kind hmac")
    _refused(_securetrade("sim", "--venue", "coinbase"), "--venue", "binance", "kraken")


def test_pins_labels_each_certificate_by_what_it_is(tmp_path: Path) -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("venue.example")
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(
        b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + root.cert_pem.bytes()
    )
    out = _securetrade("pins", str(bundle)).stdout
    roles = [line.split("  ")[0] for line in out.splitlines() if line.startswith("[")]
    assert roles == ["[0] leaf", "[1] intermediate CA", "[2] self-signed CA"]
    lone = tmp_path / "ca.pem"
    lone.write_bytes(root.cert_pem.bytes())
    assert _securetrade("pins", str(lone)).stdout.startswith("[0] self-signed CA  ")
    assert "--pin sha256/" in out  # the suggestion in the command's own flags too


def _parsers(parser: Any) -> list[Any]:
    import argparse

    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_every_command_has_a_plain_text_description() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) >= 12  # securetrade, keys (7), audit (4), pins, demo, sim
    for parser in parsers:
        assert parser.description, f"{parser.prog} has no description"
        text = parser.format_help()
        for markup in ("``", ":class:", ":func:", ":meth:"):
            assert markup not in text, f"{parser.prog} --help shows {markup}"


def _start_sim(
    tmp: Path, *args: str, ignoring_sigint: bool = False
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    def ignore_sigint() -> None:  # as a supervisor or a test runner's worker may start it
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "securetrade", "sim", *args],
        preexec_fn=ignore_sigint if ignoring_sigint else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},  # its CA file goes here, and only here
    )
    assert process.stdout is not None
    shown: dict[str, str] = {}
    secret: list[str] = []
    for line in process.stdout:
        if line.startswith("Press Ctrl-C"):
            break
        if line.startswith("    "):
            secret.append(line[4:].rstrip("\n"))
        elif line.startswith("  "):
            label, _, value = line.strip().partition("  ")
            shown[label] = value.strip()
    shown["secret"] = "\n".join(secret)
    return process, shown


@pytest.mark.parametrize(
    ("venue", "stop"), [("kraken", signal.SIGTERM), ("binance", signal.SIGINT)]
)
def test_sim_serves_each_venue_and_removes_its_ca_file_on_any_exit(
    venue: str, stop: signal.Signals, tmp_path: Path
) -> None:
    process, shown = _start_sim(tmp_path, "--venue", venue)
    try:
        assert shown["venue"] == venue
        ca_file = Path(shown["CA file"])
        assert ca_file.parent == tmp_path
        assert ca_file.is_file()
        key = ApiKey(venue, shown["key id"], shown["secret"], scopes=["read"])
        with Client(
            key,
            base_url=shown["base URL"],
            pins={"127.0.0.1": shown["pins"].split()},
            cafile=str(ca_file),
            journal=":memory:",
        ) as client:
            assert client.balances()  # a signed request that venue's own dialect accepted
    finally:
        process.send_signal(stop)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # never left running (its pipes would warn in a later test)
            process.wait()
        assert process.stdout is not None
        assert process.stderr is not None
        errors = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert list(tmp_path.iterdir()) == []


def test_sim_stops_on_sigint_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """Python installs no Ctrl-C handler in a process that inherits SIGINT ignored; the
    simulator then ran on after Ctrl-C (seen in CI: a pytest worker started it so)."""
    process, _shown = _start_sim(tmp_path, "--venue", "binance", ignoring_sigint=True)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_just_as_the_sim_says_it_is_ready_still_ends_it_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fresh-clone CI once saw exit 130: the SIGINT landed after "Press Ctrl-C" was
    flushed but before the wait loop's ``try``. Here it lands inside that very print."""
    import builtins

    from securetrade.cli import sim as sim_command

    def interrupted_at_the_ready_line(*args: Any, **kwargs: Any) -> None:
        builtins.print(*args, **kwargs)
        if args and str(args[0]).startswith("Press Ctrl-C"):
            raise KeyboardInterrupt

    monkeypatch.setattr(sim_command, "print", interrupted_at_the_ready_line, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    handlers = {
        name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP")
    }
    try:
        args = build_parser().parse_args(["sim", "--venue", "binance"])
        assert sim_command._sim(args) == 0
    finally:
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)
    assert list(tmp_path.iterdir()) == []


def test_simulator_makes_keys_only_for_the_venues_and_kinds_it_speaks() -> None:
    """SIMULATED_VENUES is what ``sim --venue`` offers; a key it cannot verify is refused."""
    from securetrade.errors import InvalidRequest
    from securetrade.sim import BROKER_VENUES, SIMULATED_VENUES, Simulator
    from securetrade.sim.brokers import BrokerSimulator

    for broker in sorted(BROKER_VENUES):
        with BrokerSimulator(broker) as served:
            assert served.create_key().venue == broker
    with Simulator() as sim:
        for venue, kinds in SIMULATED_VENUES.items():
            for kind in kinds:
                if venue in BROKER_VENUES:  # never a key the exchange simulator cannot verify
                    with pytest.raises(InvalidRequest, match="BrokerSimulator"):
                        sim.create_key(venue=venue, kind=kind)
                    continue
                assert sim.create_key(venue=venue, kind=kind).venue == venue
        with pytest.raises(InvalidRequest, match="no 'coinbase' key"):
            sim.create_key(venue="coinbase")
        with pytest.raises(InvalidRequest, match="no 'kraken' key of kind 'ed25519'"):
            sim.create_key(venue="kraken", kind="ed25519")
    choices = build_parser().parse_args(["sim", "--venue", "kraken"])
    assert choices.venue == "kraken"


def _raising(error: BaseException) -> Any:
    import argparse

    def run(args: argparse.Namespace) -> int:
        raise error

    return argparse.Namespace(run=run)


def test_an_unexpected_error_is_one_line_that_asks_for_a_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from securetrade.cli._guard import EXIT_BUG, run

    monkeypatch.delenv("SECURETRADE_DEBUG", raising=False)
    assert run(_raising(RuntimeError("boom\nsecond line")), "securetrade x") == EXIT_BUG
    err = capsys.readouterr().err
    assert err == (
        "securetrade x: internal error (RuntimeError: boom second line); please report it, "
        "with the traceback from SECURETRADE_DEBUG=1\n"
    )
    monkeypatch.setenv("SECURETRADE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run(_raising(RuntimeError("boom")), "securetrade x")


def test_guarded_lines_go_through_the_redaction_policy(capsys: pytest.CaptureFixture[str]) -> None:
    from securetrade.cli._guard import run
    from securetrade.errors import InvalidRequest

    token = "Bearer " + "q1" * 20  # a credential has a non-letter (see redaction.py)
    message = f"venue said: Authorization: {token}"
    assert run(_raising(InvalidRequest(message)), "securetrade x") == 1
    assert run(_raising(OSError(13, "Permission denied", f"/x/{token}")), "securetrade x") == 1
    assert run(_raising(KeyboardInterrupt()), "securetrade x") == 130
    err = capsys.readouterr().err
    assert token not in err
    assert "q1" * 20 not in err
    assert err.count("\n") == 3
