"""The broker examples and ``securetrade sim --venue alpaca|oanda``, run as a user would."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from securetrade import ApiKey, Client

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("stock_bot_alpaca.py", ["bought 0.25 AAPL", "resting NEW", "cancelled CANCELED"]),
        ("forex_bot_oanda.py", ["sold 1000 EUR_USD", "resting NEW", "cancelled CANCELED"]),
    ],
)
def test_broker_examples_run_against_the_simulator(example: str, expected: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout


@pytest.mark.parametrize(
    ("venue", "asset"),
    [("alpaca", "USD"), ("oanda", "USD"), ("kraken", "BTC")],
    ids=["alpaca", "oanda", "kraken"],
)
def test_sim_command_serves_a_broker(venue: str, asset: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "securetrade", "sim", "--venue", venue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or line.startswith("Press Ctrl-C"):
                break
            parts = line.split()
            if line.startswith("  base URL"):
                seen["url"] = parts[-1]
            elif line.startswith("  CA file"):
                seen["ca"] = parts[-1]
            elif line.startswith("  pins"):
                seen["pins"] = " ".join(parts[1:])
            elif line.startswith("  key id"):
                seen["key"] = parts[-1]
            elif line.startswith("    "):
                seen["secret"] = line.strip()
            elif "dialect" in line:
                seen["banner"] = line
        assert {"alpaca": "Alpaca", "oanda": "OANDA", "kraken": "Kraken"}[venue] in seen["banner"]
        key = ApiKey(venue, seen["key"], seen["secret"], scopes=["read"], environment="simulated")
        with Client(
            key,
            base_url=seen["url"],
            pins={"127.0.0.1": seen["pins"].split()},
            cafile=seen["ca"],
            journal=":memory:",
        ) as client:
            assert asset in [b.asset for b in client.balances()]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
