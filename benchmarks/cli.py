"""``python -m benchmarks``: every row measured against its peer in one run.

Ratios are the point: absolute times on a shared VM drift by 20 % from run to run, so each
row's two sides are measured back to back (usually interleaved) and compared with the
targets of DESIGN.md section 4. Targets are reported, never asserted; a side that cannot
run is shown as n/a with the reason, and the command still exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from ._copy import copy_rows
from ._copy_health import health_rows
from ._gateway import gateway_row
from ._local import journal_row, ratelimit_redis_row, ratelimit_row, ratelimit_sqlite_row
from ._orders import CpuPlan, async_row, cpu_plan, sync_row
from ._process import import_row, memory_row
from ._report import Row, failed_row, render, write_json
from ._signing import ed25519_row, sign_rows
from ._streams import stream_rows
from ._streams_kraken import kraken_stream_rows
from ._timing import FULL, QUICK, SMOKE, Effort

__all__ = ["ROW_NAMES", "main"]


@dataclass(frozen=True, slots=True)
class _Group:
    """One measurement and the rows (name, unit, higher is better) it yields."""

    rows: tuple[tuple[str, str, bool], ...]
    run: Callable[[Effort, CpuPlan, list[str] | None], list[Row]]


GROUPS: tuple[_Group, ...] = (
    _Group(
        (
            ("sign_binance_hmac_vs_ccxt", "µs/call", False),
            ("sign_binance_hmac_vs_raw", "µs/call", False),
        ),
        lambda e, p, prof: sign_rows(e),
    ),
    _Group((("sign_ed25519_vs_ccxt", "µs/call", False),), lambda e, p, prof: [ed25519_row(e)]),
    _Group(
        (("order_sync_vs_raw_httpx", "µs p50", False),), lambda e, p, prof: [sync_row(e, p, prof)]
    ),
    _Group(
        (("async_throughput_vs_ccxt", "orders/s", True),),
        lambda e, p, prof: [async_row(e, p, prof)],
    ),
    _Group((("import_vs_ccxt", "ms", False),), lambda e, p, prof: [import_row(e)]),
    _Group((("memory_vs_ccxt", "MiB", False),), lambda e, p, prof: [memory_row(e)]),
    _Group((("ratelimit_acquire_us", "µs/call", False),), lambda e, p, prof: [ratelimit_row(e)]),
    _Group(
        (("ratelimit_acquire_sqlite_us", "µs/call", False),),
        lambda e, p, prof: [ratelimit_sqlite_row(e)],
    ),
    _Group(
        (("ratelimit_acquire_redis_us", "µs/call", False),),
        lambda e, p, prof: [ratelimit_redis_row(e)],
    ),
    _Group((("journal_commit_us", "µs/intent", False),), lambda e, p, prof: [journal_row(e)]),
    _Group(
        (
            ("copy_fanout_1000_vs_direct", "s", False),
            ("copy_fanout_1000_vs_ccxt", "s", False),
            ("copy_memory_per_follower_vs_ccxt", "KiB", False),
        ),
        lambda e, p, prof: copy_rows(e, p),
    ),
    _Group(
        (
            ("copy_healthy_p99_with_bad_followers", "ms p99", False),
            ("copy_latency_p99_100", "ms p99", False),
            ("copy_latency_p99_1000", "ms p99", False),
        ),
        lambda e, p, prof: health_rows(e, p),
    ),
    _Group(
        (("gateway_latency_vs_starlette", "µs p50", False),),
        lambda e, p, prof: [gateway_row(e)],
    ),
    _Group(
        (("stream_latency_vs_websockets", "µs p50", False),),
        lambda e, p, prof: stream_rows(e, {"stream_latency_vs_websockets"}),
    ),
    _Group(
        (("stream_latency_vs_ccxtpro", "µs p50", False),),
        lambda e, p, prof: stream_rows(e, {"stream_latency_vs_ccxtpro"}),
    ),
    _Group(
        (("kraken_stream_latency_vs_websockets", "µs p50", False),),
        lambda e, p, prof: kraken_stream_rows(e),
    ),
)
ROW_NAMES = tuple(name for group in GROUPS for name, _, _ in group.rows)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _header(effort: Effort, plan: CpuPlan) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"securetrade bench ({effort.label} run, {stamp}): Python {platform.python_version()}, "
        f"securetrade {_version('securetrade')}, ccxt {_version('ccxt')}, "
        f"httpx {_version('httpx')}, {os.cpu_count()} CPUs ({plan.describe()})\n"
        "ratio = ours/peer, measured in this run; targets are DESIGN.md section 4, "
        "reported and never asserted"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure securetrade against ccxt and raw recipes, side by side.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer repeats (under 2 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny counts, for tests only")
    parser.add_argument(
        "--json",
        metavar="PATH",
        default="bench-results.json",
        help="where to write the rows as JSON (default: bench-results.json here)",
    )
    parser.add_argument(
        "--only", metavar="NAME", action="append", choices=ROW_NAMES, help="run only these rows"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not hold client and simulator on separate CPUs"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, cProfile our side of the order rows and print the top costs",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    effort = SMOKE if args.smoke else QUICK if args.quick else FULL
    plan = cpu_plan(not args.no_pin)
    profiles: list[str] | None = [] if args.profile else None
    wanted = set(args.only or ROW_NAMES)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    rows: list[Row] = []
    started = time.perf_counter()
    for group in GROUPS:
        names = [name for name, _, _ in group.rows]
        if not wanted.intersection(names):
            continue
        print(f"[bench] {', '.join(names)} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            made = group.run(effort, plan, profiles)
        except Exception as exc:  # one broken row must not hide the others
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(traceback.format_exc(), file=sys.stderr)
            made = [
                failed_row(n, u, f"error: {detail}"[:300], higher_is_better=h)
                for n, u, h in group.rows
            ]
        rows += [row for row in made if row.name in wanted]
        print(f"[bench]   {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    print(render(rows, _header(effort, plan)))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    for text in profiles or ():
        print("\n" + text)
    write_json(rows, args.json)
    print(f"rows written to {args.json}")
    return 0
