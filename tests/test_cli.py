"""The commands a newcomer runs: the demo, the standalone simulator, the examples."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from securetrade import Client, PinSet
from securetrade.transport import pinned_ssl_context

ROOT = Path(__file__).resolve().parents[1]


def test_demo_passes_every_step() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "securetrade", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 6 steps behaved" in result.stdout
    assert result.stdout.count("    ok    ") == 6
    assert "FAIL" not in result.stdout
    # A normal run prints no warning: step 1 narrates the clock alarm its skewed venue raises.
    assert result.stderr == ""
    assert "raised the clock's alarm once" in result.stdout


def test_sim_command_serves_a_pinned_exchange() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "securetrade", "sim"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while "Press Ctrl-C" not in lines.get("_last", "") and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            parts = line.strip().split(None, 2)
            if (
                len(parts) >= 3
                and parts[0] in ("base", "CA", "key")
                and parts[1]
                in (
                    "URL",
                    "file",
                    "id",
                )
            ):
                lines[parts[0]] = parts[2].strip()
            if line.startswith("  pins"):
                lines["pins"] = line.split(None, 1)[1].strip()
            if line.startswith("    ") and "secret" not in lines:
                lines["secret"] = line.strip()
            lines["_last"] = line
        base_url = lines["base"]
        pins = lines["pins"].split()
        context = pinned_ssl_context(PinSet({"127.0.0.1": pins}), cafile=lines["CA"])
        with httpx.Client(verify=context, trust_env=False) as http:
            assert http.get(base_url + "/api/v3/time").json()["serverTime"] > 0
        from securetrade import ApiKey

        key = ApiKey("binance", lines["key"], lines["secret"], scopes=["read"])
        with Client(
            key, base_url=base_url, pins={"127.0.0.1": pins}, cafile=lines["CA"], journal=":memory:"
        ) as client:
            assert {b.asset for b in client.balances()} >= {"BTC", "USDT"}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_examples_run() -> None:
    for example in sorted((ROOT / "examples").glob("*.py")):
        result = subprocess.run(
            [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"{example.name}: {result.stderr}"
        assert result.stdout.strip(), f"{example.name} printed nothing"


def test_import_does_not_load_ccxt_or_start_anything() -> None:
    code = "import sys, securetrade; print('ccxt' in sys.modules, 'redis' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "securetrade", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "demo" in result.stdout
    assert "sim" in result.stdout
