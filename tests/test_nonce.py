"""Nonces: strictly increasing per key, in one process, across processes and across restarts.

The cross-process tests start 8 real processes that draw 10,000 nonces each on one key,
through a shared directory (flock) and through a real redis-server.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetrade.errors import InvalidRequest
from securetrade.nonce import (
    FileNonceSource,
    MemoryNonceSource,
    NonceSource,
    RedisNonceSource,
    Resolution,
)

PROCESSES = 8
DRAWS = 10_000
KEY = "key-under-test"


class FrozenClock:
    """A wall clock the test moves by hand, also backwards."""

    def __init__(self, ns: int = 1_700_000_000_000_000_000) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def redis_source_factory(redis_url: str) -> Iterator[Callable[..., RedisNonceSource]]:
    made: list[RedisNonceSource] = []
    prefix = f"test:{os.getpid()}:{id(made)}:"

    def build(**kwargs: object) -> RedisNonceSource:
        source = RedisNonceSource(redis_url, prefix=prefix, **kwargs)  # type: ignore[arg-type]
        made.append(source)
        return source

    yield build
    for source in made:
        source.close()


@pytest.fixture(params=["memory", "file", "redis"])
def make_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., NonceSource]]:
    """A factory of sources of one backend that share state (where the backend shares)."""
    if request.param == "memory":
        shared: list[MemoryNonceSource] = []

        def memory(**kwargs: object) -> NonceSource:
            if not shared:
                shared.append(MemoryNonceSource(**kwargs))  # type: ignore[arg-type]
            return shared[0]

        yield memory
    elif request.param == "file":
        files: list[FileNonceSource] = []

        def file(**kwargs: object) -> NonceSource:
            source = FileNonceSource(tmp_path / "nonces", **kwargs)  # type: ignore[arg-type]
            files.append(source)
            return source

        yield file
        for source in files:
            source.close()
    else:
        yield request.getfixturevalue("redis_source_factory")


def test_follows_the_clock_then_counts(make_source: Callable[..., NonceSource]) -> None:
    """Sparse draws read the clock; dense ones (or a clock stepped back) count upwards."""
    clock = FrozenClock()
    source = make_source(time_ns=clock)
    first = source.next(KEY)
    assert first == clock.ns // 1_000_000
    assert source.next(KEY) == first + 1
    assert source.next(KEY) == first + 2
    clock.ns -= 3_600 * 10**9  # NTP steps the wall clock back an hour
    assert source.next(KEY) == first + 3
    clock.ns += 7_200 * 10**9
    assert source.next(KEY) == clock.ns // 1_000_000


def test_keys_have_separate_sequences(make_source: Callable[..., NonceSource]) -> None:
    clock = FrozenClock()
    source = make_source(time_ns=clock)
    a = [source.next("key-a") for _ in range(3)]
    b = [source.next("key-b") for _ in range(3)]
    assert a == b  # independent counters starting at the same clock reading


def test_advance_to_resumes_above_a_foreign_nonce(
    make_source: Callable[..., NonceSource],
) -> None:
    """A key once driven at microseconds (by another tool) keeps working at milliseconds."""
    clock = FrozenClock()
    source = make_source(time_ns=clock)
    foreign = Resolution.MICROSECONDS.now(clock)
    source.advance_to(KEY, foreign)
    assert source.next(KEY) == foreign + 1
    source.advance_to(KEY, 5)  # a lower floor never moves the mark down
    assert source.next(KEY) == foreign + 2


@pytest.mark.parametrize("bad", [-1, 2**53, 1.5, True, "12"])
def test_advance_to_refuses_bad_floors(
    make_source: Callable[..., NonceSource], bad: object
) -> None:
    with pytest.raises(InvalidRequest):
        make_source().advance_to(KEY, bad)  # type: ignore[arg-type]


def test_empty_key_id_is_refused(make_source: Callable[..., NonceSource]) -> None:
    with pytest.raises(InvalidRequest):
        make_source().next("")


def test_microsecond_resolution(make_source: Callable[..., NonceSource]) -> None:
    clock = FrozenClock()
    source = make_source(resolution=Resolution.MICROSECONDS, time_ns=clock)
    assert source.next(KEY) == clock.ns // 1_000


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_restart_never_goes_backwards(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A new source on the same store continues above the old high-water mark."""
    clock = FrozenClock()

    def build() -> FileNonceSource | RedisNonceSource:
        if backend == "file":
            return FileNonceSource(tmp_path, time_ns=clock)
        factory = request.getfixturevalue("redis_source_factory")
        return factory(time_ns=clock)  # type: ignore[no-any-return]

    first = build()
    drawn = [first.next(KEY) for _ in range(100)]  # 100 ahead of the frozen clock
    first.close()
    clock.ns -= 10**9  # and the clock is a second behind after the restart
    second = build()
    assert second.next(KEY) == drawn[-1] + 1
    second.close()


def test_file_source_refuses_a_corrupt_mark(tmp_path: Path) -> None:
    with FileNonceSource(tmp_path) as source:
        source.next(KEY)
        (marks,) = tmp_path.glob("*.nonce")
        marks.write_bytes(b"abc")
        with pytest.raises(InvalidRequest):
            source.next(KEY)


def test_file_names_do_not_spell_the_key_id(tmp_path: Path) -> None:
    with FileNonceSource(tmp_path) as source:
        source.next("visible-key-id-1234")
    assert all("visible" not in p.name for p in tmp_path.iterdir())


def test_threads_share_one_sequence(tmp_path: Path) -> None:
    """8 threads on one source (memory and file): every nonce unique, each thread increasing."""
    for source in (MemoryNonceSource(), FileNonceSource(tmp_path)):
        results: list[list[int]] = [[] for _ in range(8)]

        def draw(out: list[int], src: NonceSource = source) -> None:
            out.extend(src.next(KEY) for _ in range(2_000))

        threads = [threading.Thread(target=draw, args=(r,)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _assert_unique_and_increasing(results)
        if isinstance(source, FileNonceSource):
            source.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["draw", "floor"]), st.integers(-(10**12), 10**12))))
def test_memory_source_never_repeats_whatever_the_clock_does(
    steps: list[tuple[str, int]],
) -> None:
    """Any interleaving of clock jumps, draws and floors: each nonce exceeds all before it."""
    clock = FrozenClock()
    source = MemoryNonceSource(time_ns=clock)
    highest = 0
    for action, amount in steps:
        if action == "draw":
            clock.ns = max(0, clock.ns + amount * 1000)
            value = source.next(KEY)
            assert value > highest
            highest = value
        else:
            floor = abs(amount)
            source.advance_to(KEY, floor)
            highest = max(highest, floor)


# --- 8 processes, one key -------------------------------------------------------------------------

_WORKER = """
import sys
from securetrade.nonce import FileNonceSource, RedisNonceSource
backend, where, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if backend == "file":
    source = FileNonceSource(where)
else:
    source = RedisNonceSource(where, prefix=sys.argv[5])
print("ready", flush=True)
sys.stdin.readline()
values = [source.next(key) for _ in range(count)]
source.close()
sys.stdout.write("\\n".join(map(str, values)) + "\\n")
"""


def _run_processes(args: list[str]) -> list[list[int]]:
    """Start the workers, release them together, collect what each drew, in order."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == b"ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.close()
        results = []
        for p in procs:
            assert p.stdout is not None
            out = p.stdout.read()
            p.stdout.close()
            assert p.wait(timeout=120) == 0
            results.append([int(line) for line in out.split()])
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _assert_unique_and_increasing(results: list[list[int]]) -> None:
    regressions = sum(1 for values in results for a, b in itertools.pairwise(values) if b <= a)
    everything = [v for values in results for v in values]
    repeats = len(everything) - len(set(everything))
    assert (repeats, regressions) == (0, 0)


def test_file_backend_8_processes_10000_each(tmp_path: Path) -> None:
    results = _run_processes(["file", str(tmp_path), KEY, str(DRAWS)])
    assert [len(r) for r in results] == [DRAWS] * PROCESSES
    _assert_unique_and_increasing(results)
    with FileNonceSource(tmp_path) as after:
        assert after.next(KEY) > max(max(r) for r in results)


def test_redis_backend_8_processes_10000_each(redis_url: str) -> None:
    prefix = f"test-procs:{os.getpid()}:"
    results = _run_processes(["redis", redis_url, KEY, str(DRAWS), prefix])
    assert [len(r) for r in results] == [DRAWS] * PROCESSES
    _assert_unique_and_increasing(results)
    after = RedisNonceSource(redis_url, prefix=prefix)
    assert after.next(KEY) > max(max(r) for r in results)
    after.close()
