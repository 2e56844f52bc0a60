"""The benchmark command runs end to end and reports every row; timings are never asserted.

The subprocess test uses ``--smoke`` (tiny counts, same code paths as a full run) so it
stays within seconds on a loaded 2-core machine; ``--quick`` is for people.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._local import window_violations
from benchmarks._report import Row

ROWS = (
    "sign_binance_hmac_vs_ccxt",
    "sign_binance_hmac_vs_raw",
    "sign_ed25519_vs_ccxt",
    "order_sync_vs_raw_httpx",
    "async_throughput_vs_ccxt",
    "import_vs_ccxt",
    "memory_vs_ccxt",
    "ratelimit_acquire_us",
    "ratelimit_acquire_sqlite_us",
    "ratelimit_acquire_redis_us",
    "journal_commit_us",
    "copy_fanout_1000_vs_direct",
    "copy_fanout_1000_vs_ccxt",
    "copy_memory_per_follower_vs_ccxt",
    "copy_healthy_p99_with_bad_followers",
    "copy_latency_p99_100",
    "copy_latency_p99_1000",
    "gateway_latency_vs_starlette",
    "stream_latency_vs_websockets",
    "stream_latency_vs_ccxtpro",
    "kraken_stream_latency_vs_websockets",
)
FIELDS = ("name", "ours", "peer", "unit", "ratio", "target", "ok")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(170)
def test_smoke_run_reports_every_row(tmp_path: Path) -> None:
    pytest.importorskip("ccxt")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=160,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert isinstance(rows, list)
    by_name = {row["name"]: row for row in rows}
    assert sorted(by_name) == sorted(ROWS)
    for name in ROWS:
        row = by_name[name]
        assert all(field in row for field in FIELDS), row
        if row["ours"] is None:
            assert row["reason"], f"{name}: n/a without a reason"
        else:
            assert isinstance(row["ours"], (int, float)), row
            assert math.isfinite(row["ours"]), row
        assert name in result.stdout  # the printed table has the row too


def test_ratio_is_ours_over_peer_and_judged_by_direction() -> None:
    lower = Row("sign_binance_hmac_vs_ccxt", 5.0, 20.0, "µs/call")
    assert lower.ratio == pytest.approx(0.25)
    assert lower.meets is True  # target <= 0.5
    higher = Row("async_throughput_vs_ccxt", 1000.0, 1000.0, "orders/s", higher_is_better=True)
    assert higher.ratio == pytest.approx(1.0)
    assert higher.meets is False  # target >= 1.5
    missing = Row("async_throughput_vs_ccxt", 10.0, None, "orders/s", higher_is_better=True)
    assert missing.ratio is None
    assert missing.meets is None


def test_the_benchmark_is_outside_the_package_and_its_wheel() -> None:
    """benchmarks/ is a top-level folder of the repository; the wheel packs src/securetrade."""
    import importlib.util

    import benchmarks
    import securetrade

    assert Path(benchmarks.__file__).resolve().parent == ROOT / "benchmarks"
    assert importlib.util.find_spec("securetrade.bench") is None
    assert not any(Path(securetrade.__file__).parent.rglob("*bench*"))
    assert 'packages = ["src/securetrade"]' in (ROOT / "pyproject.toml").read_text()


def test_limiter_window_check_finds_no_violations() -> None:
    assert window_violations() == 0
