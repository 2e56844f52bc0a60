"""Rows 7-8: in-process costs with no peer, the rate limiter and the durable journal."""

from __future__ import annotations

import os
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from ..core import IntentState, Journal
from ..ratelimit import RateLimit, RateLimiter
from ._report import Row
from ._timing import Effort, interleaved_us

__all__ = ["journal_row", "ratelimit_row", "window_violations"]


def window_violations(seed: int = 7, attempts: int = 20_000) -> int:
    """Admit bursts against a 100-per-second limit on a fake clock, then count the
    one-second windows that hold more than the limiter's capacity (should be none)."""
    rng = random.Random(seed)  # noqa: S311 a reproducible load pattern, not a secret
    now = [0.0]
    limiter = RateLimiter([RateLimit("W", 1.0, 100)], margin=0.0, clock=lambda: now[0])
    admitted: list[float] = []
    for _ in range(attempts):
        now[0] += rng.choice((0.0, 0.0, 0.001, 0.013, 0.2))
        if limiter.reserve({"W": 1}) == 0.0:
            admitted.append(now[0])
    # The limiter's window is (t - 1 s, t]: count entries in each such window.
    violations, first = 0, 0
    for last, stamp in enumerate(admitted):
        while admitted[first] <= stamp - 1.0:
            first += 1
        violations += last - first + 1 > 100
    return violations


def ratelimit_row(effort: Effort) -> Row:
    """``ratelimit_acquire_us``: one uncontended ``reserve`` against Binance's three windows.

    The weight window is 0.1 s so that the log of entries (one per call, kept for the
    window) stays small while timeit makes millions of calls; it is expired on every call
    as a full 60 s window would be.
    """
    limiter = RateLimiter(
        [
            RateLimit("REQUEST_WEIGHT", 0.1, 10**12),
            RateLimit("ORDERS", 10.0, 10**12),
            RateLimit("ORDERS", 86400.0, 10**12),
        ]
    )
    costs = {"REQUEST_WEIGHT": 1}
    waited = 0

    def acquire() -> None:
        nonlocal waited
        if limiter.reserve(costs) != 0.0:
            waited += 1

    (ours,) = interleaved_us([acquire], effort)
    violations = window_violations()
    meets = ours <= 1.0 and violations == 0 and waited == 0
    return Row(
        "ratelimit_acquire_us",
        ours,
        None,
        "µs/call",
        meets=meets,
        note=f"{waited} calls had to wait; window violations on a fake clock "
        f"(20k bursty attempts, 100/s): {violations}",
    )


def journal_row(effort: Effort) -> Row:
    """``journal_commit_us``: one intent made durable (begin) and settled, on a real file."""
    with tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp:
        path = Path(tmp) / "journal.sqlite3"
        journal = Journal(path, synchronous="FULL")
        run = secrets.token_hex(4)
        fingerprint = "BTCUSDT|BUY|LIMIT|0.001|70000|GTC"
        order_json = '{"status":"FILLED","symbol":"BTCUSDT"}'
        samples: list[float] = []
        try:
            for i in range(effort.journal_intents + 5):
                cid = f"st{run}{i:022d}"
                start = time.perf_counter_ns()
                journal.begin(f"bench-{run}-{i}", cid, "BTCUSDT", fingerprint, 0)
                journal.settle(cid, IntentState.FILLED, order_json=order_json)
                if i >= 5:  # the first few create the WAL and warm the page cache
                    samples.append((time.perf_counter_ns() - start) / 1000)
        finally:
            journal.close()
        where = _filesystem(tmp)
    return Row(
        "journal_commit_us",
        statistics.median(samples),
        None,
        "µs/intent",
        note=f"begin + settle = 2 durable commits, median of {effort.journal_intents}; "
        f"mean {statistics.fmean(samples):,.0f} µs; temp dir on {where}; a placed order "
        "commits 3 times (begin, sending, settle)",
    )


def _filesystem(path: str) -> str:
    """The type of the filesystem holding ``path`` (fsync on tmpfs is free, on ext4 not)."""
    best, kind = "", "unknown filesystem"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(best):
                    best, kind = mount, fields[2]
    except OSError:
        pass
    return kind
