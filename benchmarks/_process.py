"""Rows 5-6: what a fresh interpreter pays to import and construct one client, ours vs ccxt.

Each side runs in its own ``python -c`` child: wall time of the whole process (start-up,
imports, construction, shutdown) less that of ``python -c pass``, and resident memory
read from ``/proc/self/status`` after ``gc.collect()`` less that of a bare interpreter.
Launches alternate between the sides so drift hits all of them alike.

Both sides run from cached bytecode, as an installed package does: the children get a
private ``PYTHONPYCACHEPREFIX`` filled by the warm-up launch, and ``PYTHONDONTWRITEBYTECODE``
is lifted for them. Without that, an editable install under ``PYTHONDONTWRITEBYTECODE=1``
compiles every securetrade module from source at each launch (about 100 ms here) while
ccxt, installed from a wheel, reads the ``.pyc`` files pip wrote: that measures the
environment, not the import.
"""

from __future__ import annotations

import base64
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ._report import Row, failed_row
from ._timing import Effort

__all__ = ["import_row", "memory_row"]


def _made_up_pin(seed: str) -> str:
    """A syntactically valid SPKI pin for no real key."""
    return "sha256/" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode("ascii")


_PINS = [_made_up_pin("securetrade-bench-1"), _made_up_pin("securetrade-bench-2")]

OURS = (
    "import securetrade\n"
    "from securetrade import ApiKey, Client\n"
    "client = Client(ApiKey('binance', 'k' * 16, 's' * 32, scopes=['read']),"
    f" base_url='https://127.0.0.1:9', pins={{'127.0.0.1': {_PINS!r}}}, journal=':memory:')\n"
)
CCXT = "import ccxt\nexchange = ccxt.binance()\n"
BARE = "pass\n"

_RSS = (
    "import gc\n"
    "gc.collect()\n"
    "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')))\n"
)


def _child_env(cwd: str) -> dict[str, str]:
    """The children's environment: bytecode cached under ``cwd``, shared by every side."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(cwd, "pycache")
    return env


def _run(code: str, cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 our own interpreter
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_child_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _warm_up(sides: dict[str, str], cwd: str) -> str | None:
    """Launch each side once (bytecode written, page cache warm); the first failure, if any."""
    for label, code in sides.items():
        problem = _failure(_run(code, cwd))
        if problem and label == "ccxt":
            return f"ccxt failed (is it installed?): {problem}"
        if problem:
            return f"{label} failed: {problem}"
    return None


def _failure(result: subprocess.CompletedProcess[str]) -> str | None:
    if result.returncode == 0:
        return None
    tail = (result.stderr.strip().splitlines() or ["?"])[-1]
    return f"exit {result.returncode}: {tail}"[:300]


def _wall_ms(code: str, cwd: str) -> float:
    start = time.perf_counter()
    result = _run(code, cwd)
    elapsed = (time.perf_counter() - start) * 1000
    problem = _failure(result)
    if problem:
        raise RuntimeError(problem)
    return elapsed


def import_row(effort: Effort) -> Row:
    """``import_vs_ccxt``: whole-process ms above ``python -c pass``, median of N."""
    name, unit = "import_vs_ccxt", "ms"
    with tempfile.TemporaryDirectory(prefix="securetrade-bench-") as cwd:
        sides = {"bare": BARE, "ours": OURS, "ccxt": CCXT}
        problem = _warm_up(sides, cwd)
        if problem:
            return failed_row(name, unit, problem)
        samples: dict[str, list[float]] = {label: [] for label in sides}
        order = list(sides)
        for i in range(effort.process_runs):
            for label in order[i % 3 :] + order[: i % 3]:  # rotate who goes first
                samples[label].append(_wall_ms(sides[label], cwd))
    bare = statistics.median(samples["bare"])
    ours = statistics.median(samples["ours"]) - bare
    ccxt = statistics.median(samples["ccxt"]) - bare
    return Row(
        name,
        ours,
        ccxt,
        unit,
        peer_name="import ccxt; ccxt.binance()",
        note=(
            f"median of {effort.process_runs} alternated launches each, minus python -c pass "
            f"({bare:.0f} ms); ours = import securetrade + Client(..., journal=':memory:'); "
            "both sides from cached bytecode"
        ),
    )


def _rss_kib(code: str, cwd: str) -> float:
    result = _run(code + _RSS, cwd)
    problem = _failure(result)
    if problem:
        raise RuntimeError(problem)
    return float(result.stdout.strip().splitlines()[-1])


def memory_row(effort: Effort) -> Row:
    """``memory_vs_ccxt``: MiB of RSS above a bare interpreter after import + one client."""
    name, unit = "memory_vs_ccxt", "MiB"
    if not os.path.exists("/proc/self/status"):
        return failed_row(name, unit, "needs /proc/self/status (Linux)")
    samples: dict[str, list[float]] = {"bare": [], "ours": [], "ccxt": []}
    codes = {"bare": BARE, "ours": OURS, "ccxt": CCXT}
    with tempfile.TemporaryDirectory(prefix="securetrade-bench-") as cwd:
        problem = _warm_up(codes, cwd)
        if problem:
            return failed_row(name, unit, problem)
        for _ in range(effort.memory_runs):
            for label, code in codes.items():
                try:
                    samples[label].append(_rss_kib(code, cwd))
                except RuntimeError as exc:
                    return failed_row(name, unit, f"{label} failed: {exc}")
    bare = statistics.median(samples["bare"])
    ours = (statistics.median(samples["ours"]) - bare) / 1024
    ccxt = (statistics.median(samples["ccxt"]) - bare) / 1024
    return Row(
        name,
        ours,
        ccxt,
        unit,
        peer_name="ccxt + binance()",
        note=f"VmRSS after gc.collect(), median of {effort.memory_runs}, minus a bare "
        f"interpreter ({bare / 1024:.1f} MiB); both sides from cached bytecode",
    )
