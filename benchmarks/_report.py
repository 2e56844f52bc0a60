"""Rows, targets and the printed table: every figure next to its peer, measured in one run.

Targets are DESIGN.md section 4. They are reported, never asserted: absolute times on a
shared VM drift by 20 %, so only ratios taken in the same run are compared with them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "Row", "Target", "failed_row", "render", "write_json"]


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on the ratio (or on ``ours`` when there is no peer), with its text."""

    text: str
    bound: float | None  # None: nothing to compare with
    on_ratio: bool = True  # False: the bound applies to ``ours`` itself

    def judge(self, ours: float | None, ratio: float | None, higher_is_better: bool) -> bool | None:
        value = ratio if self.on_ratio else ours
        if self.bound is None or value is None or not math.isfinite(value):
            return None
        return value >= self.bound if higher_is_better else value <= self.bound


# DESIGN.md section 4, "Numbers to reach".
TARGETS: dict[str, Target] = {
    "sign_binance_hmac_vs_ccxt": Target("<= 0.5x ccxt binance.sign()", 0.5),
    "sign_binance_hmac_vs_raw": Target("<= 1.2x raw urlencode+hmac", 1.2),
    "sign_ed25519_vs_ccxt": Target("key parsed once; <= 0.4x ccxt Ed25519", 0.4),
    "order_sync_vs_raw_httpx": Target("<= 1.3x raw httpx.Client POST", 1.3),
    "async_throughput_vs_ccxt": Target(">= 1.5x ccxt async create_order", 1.5),
    "import_vs_ccxt": Target("<= 0.5x import ccxt + binance()", 0.5),
    "memory_vs_ccxt": Target("<= 0.5x ccxt + one exchange", 0.5),
    "ratelimit_acquire_us": Target("<= 1 us; 0 window violations", 1.0, on_ratio=False),
    "ratelimit_acquire_sqlite_us": Target("none in DESIGN 4 (one host)", None, on_ratio=False),
    "ratelimit_acquire_redis_us": Target("none in DESIGN 4 (many hosts)", None, on_ratio=False),
    "gateway_latency_vs_starlette": Target("<= 1.3x the route on bare Starlette", 1.3),
    "journal_commit_us": Target("none in DESIGN 4 (durable: FULL)", None, on_ratio=False),
    "copy_fanout_1000_vs_direct": Target("<= 1.25x the same orders direct", 1.25),
    "copy_fanout_1000_vs_ccxt": Target("<= 0.5x a ccxt async fan-out", 0.5),
    "copy_memory_per_follower_vs_ccxt": Target("<= 0.2x one ccxt exchange", 0.2),
    "stream_latency_vs_websockets": Target("<= 1.5x a bare websockets client", 1.5),
    "stream_latency_vs_ccxtpro": Target("<= 0.5x ccxt.pro watch_orders", 0.5),
    "kraken_stream_latency_vs_websockets": Target("<= 1.5x a bare websockets client", 1.5),
    "copy_healthy_p99_with_bad_followers": Target("<= 1.2x without the bad followers", 1.2),
    "copy_latency_p99_100": Target("none in DESIGN 4 (published as measured)", None, False),
    "copy_latency_p99_1000": Target("none in DESIGN 4 (published as measured)", None, False),
}


@dataclass(slots=True)
class Row:
    """One line of the table; ``ratio`` is always ours/peer, ``higher_is_better`` says
    which way is good. ``reason`` is set instead of numbers when a side could not run."""

    name: str
    ours: float | None
    peer: float | None
    unit: str
    higher_is_better: bool = False
    peer_name: str = ""
    note: str = ""
    reason: str | None = None
    ratio: float | None = None
    target: str = ""
    meets: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.peer:
            self.ratio = self.ours / self.peer
        target = TARGETS.get(self.name)
        if target is not None:
            self.target = target.text
            if self.meets is None:
                self.meets = target.judge(self.ours, self.ratio, self.higher_is_better)

    def to_json(self) -> dict[str, Any]:
        """Every field, plus ``ok``: whether the target is met (``None`` without one)."""
        return {**asdict(self), "ok": self.meets}


def failed_row(name: str, unit: str, reason: str, *, higher_is_better: bool = False) -> Row:
    """A row that could not be measured: reported as n/a with why, never a crash."""
    return Row(name, None, None, unit, higher_is_better=higher_is_better, reason=reason)


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(row: Row) -> list[str]:
    ours = f"{_number(row.ours)} {row.unit}" if row.ours is not None else "n/a"
    if row.peer is None:
        peer = "-" if row.reason is None else "n/a"
    else:
        peer = f"{_number(row.peer)} {row.unit}"
        if row.peer_name:
            peer = f"{row.peer_name}: {peer}"
    if row.ratio is None:
        ratio = "-"
    else:
        ratio = f"{row.ratio:.3f} ({'higher' if row.higher_is_better else 'lower'} is better)"
    meets = {True: "yes", False: "NO", None: "-"}[row.meets]
    return [row.name, ours, peer, ratio, row.target, meets]


def render(rows: list[Row], header: str) -> str:
    """The side-by-side table, then one note line per row that has something to say."""
    titles = ["name", "ours", "peer", "ratio ours/peer", "target (DESIGN 4)", "meets"]
    table = [titles, *[_cells(r) for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(titles))]
    lines = [header, ""]
    for index, line in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    noted = [r for r in rows if r.reason or r.note]
    if noted:
        lines += ["", "notes:"]
        lines += [f"  {r.name}: " + (f"n/a: {r.reason}" if r.reason else r.note) for r in noted]
    return "\n".join(lines)


def write_json(rows: list[Row], path: str | Path) -> None:
    """``{"rows": [...]}``: the machine-readable twin of the table."""
    Path(path).write_text(
        json.dumps({"rows": [r.to_json() for r in rows]}, indent=2) + "\n", encoding="utf-8"
    )
