"""examples/strategy.py and examples/strategy.ipynb (issue 21) run as they stand against
the simulator: candles, a signal, a stop-limit order that the market then triggers, and
the fills read back from the account's trade history."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SRC = Path(__file__).resolve().parents[1] / "src"


def _check(output: str) -> None:
    """The run's story: 48 bars, a side, the stop resting, then filled, two trades."""
    assert "48 bars, last close " in output
    side = re.search(r": (BUY|SELL)\n", output)
    assert side is not None
    assert re.search(r"stop NEW at [0-9.]+ -> [0-9.]+", output)
    assert "stop is now FILLED" in output
    trades = re.findall(r"^(BUY|SELL) +0\.01 @ [0-9.]+ \(order \d+\)$", output, re.MULTILINE)
    exit_side = "SELL" if side.group(1) == "BUY" else "BUY"
    assert trades == [side.group(1), exit_side]


def test_strategy_script_runs_as_it_stands() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "strategy.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _check(done.stdout)


def test_strategy_notebook_runs_as_it_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(EXAMPLES / "strategy.ipynb", as_version=4)
    monkeypatch.setenv("PYTHONPATH", str(SRC))  # the kernel imports this tree's package
    gc.collect()  # what earlier tests left, before the kernel's loops and sockets exist
    runner = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")
    asyncio.run(runner.async_execute())  # on a loop that is closed after, unlike execute()
    output = "".join(
        item.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for item in cell.get("outputs", [])
        if item.get("output_type") == "stream"
    )
    _check(output)
