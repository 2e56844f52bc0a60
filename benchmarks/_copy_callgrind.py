"""CPU per follower order, counted in instructions by valgrind's callgrind (not a bench row).

Wall figures of the copy fan-out move by 3x on a machine shared with other jobs; the
instructions the client process executes move far less (up to 20% between runs at a load
average of 20: group commits, event-loop turns and collections still follow timing, so
compare several runs). This runs the fan-out (and, for the
peer, the same orders placed directly through one ``AsyncClient``) inside
``valgrind --tool=callgrind``, the simulator in its own process outside valgrind, and
differences runs: a process doing ``rounds`` fan-outs of ``n`` orders against one doing
``rounds + extra`` of them leaves the cost of ``extra * n`` orders, with the imports, the
set-up and the warm-up (balances read once per follower) cancelled out.

Run from the worktree root::

    PYTHONPATH=$PWD/src python -m benchmarks._copy_callgrind [--n 200] [--extra 2]

It prints instructions per order for each side and their ratio. One run takes minutes
(valgrind runs Python some 50x slower): it is a profiling aid, run by hand.

``--event`` counts one whole event instead, as the ``copy_fanout_1000_vs_*`` rows time
it: in each side's process, after its set-up and two warm events (the first opens the
connections: ccxt's 1,000 TLS handshakes, our pool's), a full collection, then counting
switched on (``callgrind_control -i on``) for one event of ``--n`` orders and off again.
The sides: the copy fan-out, the same orders through one ``AsyncClient``, and ccxt async
(one exchange object per follower, markets shared, ``asyncio.gather``). Each side signs
with a 60 s receive window (ccxt's ``recvWindow`` too): under valgrind 1,000 orders take
longer to sign and send than Binance's default 5 s allows::

    PYTHONPATH=$PWD/src python -m benchmarks._copy_callgrind --event [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["main"]


async def _work(mode: str, n: int, rounds: int, tmp: str) -> None:
    """Inside valgrind: set up, warm up, then ``rounds`` fan-outs (or direct batches)."""
    from securetrade.client import AsyncClient
    from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode
    from securetrade.core import Journal
    from securetrade.models import Side

    from ._orders import SimProcess, _order

    order = _order()
    with SimProcess(n + 1, None, fast=True, timeout=600) as server:
        options: dict[str, Any] = {
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
        }
        journal = Journal(Path(tmp) / f"{mode}.sqlite3", synchronous="FULL")
        if mode == "direct":
            client = AsyncClient(server.api_key(0), journal=journal, **options)
            for r in range(rounds + 1):  # round 0 warms up
                await asyncio.gather(
                    *(client.place_order(order, idempotency_key=f"d-{r}-{i}") for i in range(n))
                )
            await client.aclose()
            return
        engine = CopyEngine(secret=secrets.token_bytes(32), connect={"binance": options},
                            journal=journal)  # fmt: skip
        for i in range(n):
            engine.add(
                Follower(
                    f"f{i}",
                    server.api_key(i + 1),
                    Sizing(SizingMode.FIXED_QUANTITY, order.base_quantity),
                    slippage_bps=Decimal(0),
                    ttl_ms=600_000,
                )
            )
        for r in range(rounds + 1):
            event = LeaderEvent(f"e{r}", order.symbol, Side.BUY, order.base_quantity, order.price,
                                int(time.time() * 1000))  # fmt: skip
            report = await engine.copy(event)
            if report.counts != {"placed": n}:
                raise SystemExit(f"fan-out {r}: {report.counts}")
        await engine.aclose()


async def _one_event(mode: str, n: int, tmp: str) -> None:
    """Inside valgrind, started with counting off: set up ``mode``'s side, two warm
    events, then count one event of ``n`` orders."""
    from securetrade.client import AsyncClient
    from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode
    from securetrade.core import Journal
    from securetrade.models import Side

    from ._orders import SimProcess, _order, ccxt_binance

    order = _order()
    price = order.price
    assert price is not None  # the benchmark's order is a limit
    run = secrets.token_hex(4)
    with SimProcess(n + 1, None, fast=True, timeout=900) as server:
        options: dict[str, Any] = {"base_url": server.base_url, "pins": server.pins,
                                   "cadata": server.ca_pem, "recv_window_ms": 60_000}  # fmt: skip
        journal = Journal(Path(tmp) / f"{mode}.sqlite3", synchronous="FULL")
        closing: list[Any] = []
        if mode == "direct":
            client = AsyncClient(server.api_key(0), journal=journal, **options)
            closing.append(client.aclose)

            async def event(tag: str) -> None:
                await asyncio.gather(
                    *(client.place_order(order, idempotency_key=f"{run}-{tag}-{i}")
                      for i in range(n))
                )  # fmt: skip

        elif mode == "copy":
            engine = CopyEngine(secret=secrets.token_bytes(32), connect={"binance": options},
                                journal=journal)  # fmt: skip
            closing.append(engine.aclose)
            for i in range(n):
                engine.add(Follower(f"f{i}", server.api_key(i + 1),
                                    Sizing(SizingMode.FIXED_QUANTITY, order.base_quantity),
                                    slippage_bps=Decimal(0), ttl_ms=600_000))  # fmt: skip

            async def event(tag: str) -> None:
                report = await engine.copy(LeaderEvent(f"{run}-{tag}", order.symbol, Side.BUY,
                                                       order.base_quantity, price,
                                                       int(time.time() * 1000)))  # fmt: skip
                if report.counts != {"placed": n}:
                    raise SystemExit(f"fan-out {tag}: {report.counts}")

        else:
            cafile = Path(tmp) / "ca.pem"
            cafile.write_text(server.ca_pem, encoding="ascii")
            ccxt_async = importlib.import_module("ccxt.async_support")
            exchanges = [ccxt_binance(ccxt_async, server, server.api_key(i + 1), str(cafile))
                         for i in range(n)]  # fmt: skip
            for exchange in exchanges:
                exchange.options["recvWindow"] = 60_000
                exchange.timeout = 600_000  # ms: aiohttp's wait, as our 600 s below
            await exchanges[0].load_markets()
            for exchange in exchanges[1:]:
                exchange.set_markets(exchanges[0].markets, exchanges[0].currencies)
            closing.extend(exchange.close for exchange in exchanges)
            amount = float(price)

            async def event(tag: str) -> None:
                await asyncio.gather(
                    *(e.create_order("BTC/USDT", "limit", "buy", 0.001, amount)
                      for e in exchanges)
                )  # fmt: skip

        await event("warm-0")
        await event("warm-1")
        before = server.posted()
        gc.collect()  # as the bench's rounds start
        collections = [generation["collections"] for generation in gc.get_stats()]
        _counting("on")
        await event("counted")
        _counting("off")
        after = [generation["collections"] for generation in gc.get_stats()]
        # Which collections the event ran (a full one costs as much as the rest of them):
        # printed for the parent, which reads the last line of this process's output.
        print(json.dumps({"collections": [b - a for a, b in zip(collections, after, strict=True)]}))
        if server.posted() - before != n:
            raise SystemExit(f"{mode}: the simulator took {server.posted() - before} orders")
        await asyncio.gather(*(close() for close in closing))


def _counting(flag: str) -> None:
    subprocess.run(  # noqa: S603 valgrind's own tool, on this process
        ["callgrind_control", "-i", flag, str(os.getpid())],  # noqa: S607
        capture_output=True,
        check=False,
    )


def _instructions(mode: str, n: int, rounds: int, out: Path) -> int:
    """Run one measured process under callgrind; the total instructions it executed
    (``rounds`` 0: one event, counted only from its start, see ``--event``)."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        *(["--instr-atstart=no"] if rounds == 0 else []),
        sys.executable,
        "-m",
        "benchmarks._copy_callgrind",
        "--inside",
        mode,
        str(n),
        str(rounds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        said = "\n".join(  # without valgrind's lines and aiohttp's unclosed-session notes
            line
            for line in done.stderr.splitlines()
            if not line.startswith(("==", "Unclosed client session", "client_session:"))
        )
        raise SystemExit(f"{mode} n={n} rounds={rounds} failed:\n{said[-3000:]}")
    match = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    if rounds == 0:
        lines = done.stdout.strip().splitlines()
        _COLLECTIONS[mode] = json.loads(lines[-1])["collections"] if lines else None
    return int(match.group(1))


#: ``--event``: the garbage collections (young, middle, full) each side's event ran.
_COLLECTIONS: dict[str, list[int] | None] = {}


def main(argv: list[str]) -> int:
    """Measure both sides and print instructions per order (JSON, then a summary line)."""
    if argv[:1] == ["--inside"]:
        mode, n, rounds = argv[1], int(argv[2]), int(argv[3])
        with tempfile.TemporaryDirectory(prefix="securetrade-callgrind-") as tmp:
            if rounds == 0:
                asyncio.run(_one_event(mode, n, tmp))
            else:
                asyncio.run(_work(mode, n, rounds, tmp))
        return 0
    parser = argparse.ArgumentParser(prog="benchmarks._copy_callgrind")
    parser.add_argument("--n", type=int, default=None, help="orders per fan-out")
    parser.add_argument("--extra", type=int, default=2, help="fan-outs differenced")
    parser.add_argument("--event", action="store_true", help="count one whole event a side")
    parser.add_argument("--out", default=tempfile.gettempdir(), help="callgrind files here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.event:
        return _events(args.n or 1000, out)
    args.n = args.n or 200
    figures: dict[str, Any] = {"n": args.n, "extra": args.extra}
    for mode in ("direct", "copy"):
        low = _instructions(mode, args.n, 1, out / f"callgrind.{mode}.1.{os.getpid()}")
        high = _instructions(
            mode, args.n, 1 + args.extra, out / f"callgrind.{mode}.{1 + args.extra}.{os.getpid()}"
        )
        figures[mode] = {
            "low": low,
            "high": high,
            "per_order": (high - low) / (args.extra * args.n),
        }
    figures["ratio"] = figures["copy"]["per_order"] / figures["direct"]["per_order"]
    print(json.dumps(figures))
    print(
        f"per order: copy {figures['copy']['per_order']:,.0f} instructions, direct "
        f"{figures['direct']['per_order']:,.0f}: {figures['ratio']:.2f}x"
    )
    return 0


def _events(n: int, out: Path) -> int:
    """``--event``: one whole event a side, in instructions, and the ratios."""
    counts = {
        mode: _instructions(mode, n, 0, out / f"callgrind.event.{mode}.{os.getpid()}")
        for mode in ("copy", "direct", "ccxt")
    }
    figures: dict[str, Any] = {"n": n, **counts, "collections": dict(_COLLECTIONS)}
    figures["copy_vs_direct"] = counts["copy"] / counts["direct"]
    figures["copy_vs_ccxt"] = counts["copy"] / counts["ccxt"]
    print(json.dumps(figures))
    print(
        f"one event of {n}: copy {counts['copy'] / n:,.0f} instructions an order, direct "
        f"{counts['direct'] / n:,.0f}, ccxt {counts['ccxt'] / n:,.0f}: "
        f"{figures['copy_vs_direct']:.2f}x direct, {figures['copy_vs_ccxt']:.2f}x ccxt; "
        f"collections by generation {_COLLECTIONS} (a full one walks the whole heap, tens of "
        "millions of instructions at 1,000 followers: compare sides that ran the same ones)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
