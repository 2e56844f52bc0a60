"""Run one fuzz target from ``targets.py``: with atheris when installed, else a plain loop.

``python tests/fuzz/fuzz_parsers.py [-runs=N] [-seed=S] [corpus dirs]`` (what ``nox -s fuzz``
does). With atheris (coverage-guided, libFuzzer flags) every libFuzzer option works. Without
it, a FALLBACK loop feeds random and mutated bytes, with no coverage guidance at all: it
is labelled as such on every run, and finds far less. Either way, the first input that makes
a target raise is written to ``crash-<sha1>`` in the current directory, and the exit status
is 1. Without corpus directories, atheris keeps its corpus in
``$TMPDIR/securetrade-fuzz/<target>``.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Starting points: inputs that reach deep into each target (see targets.py for the layout).
SEEDS: dict[str, list[bytes]] = {
    "encoders": [b"symbol\x00BTCUSDT\x00price\x000.1", b'{"a": [1, "x", {"b": null}]}'],
    "parsers": [
        b"\x00\xc8\x00"
        + b'{"symbol":"BTCUSDT","orderId":1,"clientOrderId":"x","side":"BUY","type":"LIMIT",'
        b'"status":"NEW","origQty":"1","price":"2","fills":[{"price":"1","qty":"1"}]}',
        b'\x00\xc8\x00{"error":[],"result":{"open":{"O1":{"descr":{"ordertype":"limit",'
        b'"type":"buy","pair":"XBTUSD","price":"1"},"vol":"1","status":"open"}}}}',
        b'\x01\xad2\x00{"code":-1003,"msg":"Too many requests"}',
    ],
    "verifier": [b"\x00POST", b"\x03POST\x00/signal\x00X-ST-Nonce\x00abcdefghijklmnop\x00{}"],
}


def _load(name: str) -> Callable[[bytes], None]:
    sys.path.insert(0, str(HERE))
    try:
        import atheris
    except ImportError:
        import targets
    else:
        with atheris.instrument_imports(include=["securetrade", "targets"]):
            import targets
    return targets.TARGETS[name]


def _crash(data: bytes) -> None:
    path = Path(f"crash-{hashlib.sha1(data, usedforsecurity=False).hexdigest()}")
    path.write_bytes(data)
    print(f"crash input written to {path}", file=sys.stderr)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if choice < 0.4 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif choice < 0.6:
            buffer.insert(rng.randint(0, len(buffer)), rng.randrange(256))
        elif choice < 0.8 and buffer:
            del buffer[rng.randrange(len(buffer))]
        elif buffer:
            start = rng.randrange(len(buffer))
            buffer[start:start] = buffer[start : start + rng.randint(1, 16)]
    return bytes(buffer)


def fallback(name: str, target: Callable[[bytes], None], argv: list[str]) -> int:
    """The pure-Python loop: random bytes and mutations of the seeds and of each other."""
    options = dict(arg[1:].split("=", 1) for arg in argv if arg.startswith("-") and "=" in arg)
    runs = int(options.get("runs", "100000"))
    seed = int(options.get("seed", str(int.from_bytes(os.urandom(4), "big"))))
    rng = random.Random(seed)
    pool = list(SEEDS[name])
    for folder in (Path(arg) for arg in argv if not arg.startswith("-")):
        pool.extend(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    print(
        f"FALLBACK fuzzing of {name!r}: atheris is not installed, so this is a random loop "
        f"WITHOUT coverage guidance ({runs} runs, -seed={seed})",
        file=sys.stderr,
    )
    for run in range(runs):
        if rng.random() < 0.25:
            data = rng.randbytes(rng.randint(0, 256))
        else:
            data = _mutate(rng, rng.choice(pool))
        try:
            target(data)
        except Exception as exc:
            print(f"run {run}: {type(exc).__name__}: {exc}"[:1000], file=sys.stderr)
            _crash(data)
            return 1
        if run % 64 == 0 and len(pool) < 512:
            pool.append(data)
    print(f"FALLBACK fuzzing of {name!r}: {runs} runs, no crash", file=sys.stderr)
    return 0


def main(name: str, argv: list[str] | None = None) -> int:
    """Fuzz target ``name`` with atheris if it is importable, else with :func:`fallback`."""
    args = list(sys.argv if argv is None else argv)
    target = _load(name)
    try:
        import atheris
    except ImportError:
        return fallback(name, target, args[1:])
    corpus = [a for a in args[1:] if not a.startswith("-")]
    if not corpus:  # start from the seeds, in a corpus kept outside the tree between runs
        folder = Path(tempfile.gettempdir()) / "securetrade-fuzz" / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in SEEDS[name]:
            (folder / hashlib.sha1(data, usedforsecurity=False).hexdigest()).write_bytes(data)
        args.append(str(folder))
    atheris.Setup(args, target)
    atheris.Fuzz()
    return 0
