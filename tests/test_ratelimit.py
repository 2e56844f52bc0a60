"""The rate limiter: exact sliding windows, several limits per call, feedback from the venue.

Most tests inject a fake clock so that times are exact and nothing sleeps. Times in the
property test are multiples of 1/16 s, which floats represent exactly, so the check below
is exact arithmetic; float rounding at the boundary has its own test. Real threads,
tasks and processes are in test_ratelimit_backends.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetrade.ratelimit import Priority, RateLimit, RateLimiter

W = "REQUEST_WEIGHT"
O = "ORDERS"  # noqa: E741


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


# Every priority may fill every window: these tests are about the windows themselves.
FULL = dict.fromkeys(Priority, 1.0)


def limiter(
    *limits: RateLimit, margin: float = 0.0, clock: FakeClock | None = None
) -> tuple[RateLimiter, FakeClock]:
    clock = clock or FakeClock(1000.0)
    return RateLimiter.in_memory(limits, margin=margin, shares=FULL, clock=clock), clock


def used(lim: RateLimiter) -> list[int]:
    return [row.used for row in lim.usage()]


def acquire(lim: RateLimiter, clock: FakeClock, costs: Mapping[str, int]) -> int:
    """Reserve like a caller would: sleep (on the fake clock) for the returned wait, retry."""
    for attempt in range(1000):
        wait = lim.reserve(costs)
        if wait == 0.0:
            return attempt
        assert wait > 0.0
        clock.advance(wait)
    pytest.fail("reserve never granted")


# --- capacity and waits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "margin", "capacity"),
    [(10, 0.0, 10), (10, 0.1, 9), (7, 0.1, 6), (100, 0.25, 75), (3, 0.5, 1), (1, 0.5, 1)],
)
def test_reserve_is_free_until_capacity(limit: int, margin: float, capacity: int) -> None:
    """Capacity is floor(limit * (1 - margin)) (at least 1); up to it reserve returns 0.0."""
    lim, _ = limiter(RateLimit(W, 60.0, limit), margin=margin)
    assert lim.usage()[0].capacity == capacity
    for _ in range(capacity):
        assert lim.reserve({W: 1}) == 0.0
    assert lim.reserve({W: 1}) > 0.0
    assert used(lim) == [capacity]


def test_wait_is_when_the_oldest_entry_leaves_the_window() -> None:
    """The wait is computed from the log: the moment enough old entries expire."""
    lim, clock = limiter(RateLimit(W, 10.0, 3))
    start = clock.now
    for offset in (0.0, 1.0, 2.0):
        clock.now = start + offset
        assert lim.reserve({W: 1}) == 0.0
    clock.now = start + 5.0
    assert lim.reserve({W: 1}) == 5.0  # the entry at +0 leaves at +10
    assert lim.reserve({W: 2}) == 6.0  # two must leave: the second one goes at +11
    assert lim.reserve({W: 3}) == 7.0
    clock.now = start + 10.0
    assert lim.reserve({W: 1}) == 0.0  # the window is half-open: (now - 10, now]
    assert lim.reserve({W: 1}) == 1.0


def test_refused_reserve_records_nothing() -> None:
    """A positive wait reserves nothing, so retrying does not double count."""
    lim, _ = limiter(RateLimit(W, 60.0, 5))
    assert lim.reserve({W: 4}) == 0.0
    for _ in range(10):
        assert lim.reserve({W: 2}) > 0.0
    assert used(lim) == [4]
    assert lim.reserve({W: 1}) == 0.0
    assert used(lim) == [5]


def test_cost_for_unconfigured_kind_is_free() -> None:
    """Kinds no limit counts do not block (and are not recorded anywhere)."""
    lim, _ = limiter(RateLimit(W, 60.0, 1))
    assert lim.reserve({"RAW_REQUESTS": 1000}) == 0.0
    assert used(lim) == [0]


# --- several limits per call ----------------------------------------------------------------------


def test_multi_kind_admitted_only_when_every_window_has_room() -> None:
    """An order draws on REQUEST_WEIGHT and ORDERS; a full ORDERS window blocks it."""
    lim, clock = limiter(RateLimit(W, 60.0, 10), RateLimit(O, 10.0, 2))
    start = clock.now
    assert lim.reserve({W: 1, O: 1}) == 0.0
    clock.advance(1.0)
    assert lim.reserve({W: 1, O: 1}) == 0.0
    clock.advance(1.0)
    assert lim.reserve({W: 1, O: 1}) == pytest.approx(start + 10.0 - clock.now)
    assert used(lim) == [2, 2]  # the refused call took no weight
    assert lim.reserve({W: 1}) == 0.0  # weight alone still has room
    assert used(lim) == [3, 2]


def test_multi_kind_refused_by_weight_takes_no_order_slot() -> None:
    """The reverse: full weight blocks the order, and the ORDERS window is untouched."""
    lim, _ = limiter(RateLimit(W, 60.0, 3), RateLimit(O, 10.0, 5))
    assert lim.reserve({W: 3}) == 0.0
    assert lim.reserve({W: 1, O: 1}) == pytest.approx(60.0)
    assert used(lim) == [3, 0]


def test_multi_kind_wait_is_the_longest_of_the_windows() -> None:
    """When both windows are full, the caller waits for the later of the two."""
    lim, clock = limiter(RateLimit(W, 60.0, 1), RateLimit(O, 10.0, 1))
    assert lim.reserve({W: 1, O: 1}) == 0.0
    clock.advance(5.0)
    assert lim.reserve({W: 1, O: 1}) == 55.0


def test_same_kind_over_two_windows() -> None:
    """ORDERS per 10 s and per day: both bind, independently."""
    lim, clock = limiter(RateLimit(O, 10.0, 2), RateLimit(O, 100.0, 3))
    assert lim.reserve({O: 1}) == 0.0
    assert lim.reserve({O: 1}) == 0.0
    assert lim.reserve({O: 1}) == 10.0  # the 10 s window binds
    clock.advance(10.0)
    assert lim.reserve({O: 1}) == 0.0
    assert lim.reserve({O: 1}) == 90.0  # now the 100 s window binds


# --- feedback from the venue ----------------------------------------------------------------------

HEADER = "x-mbx-used-weight-1m"


def test_server_usage_above_local_raises_local_usage() -> None:
    """Traffic we cannot see (other processes) is learned from the venue's header."""
    lim, _ = limiter(RateLimit(W, 60.0, 100, header=HEADER))
    assert lim.reserve({W: 2}) == 0.0
    lim.observe(200, {HEADER: "90"})
    assert used(lim) == [90]
    assert lim.reserve({W: 11}) > 0.0
    assert lim.reserve({W: 10}) == 0.0
    assert used(lim) == [100]


@pytest.mark.parametrize("reported", ["1", "5", "", "lots", "-3", "9.5"])
def test_server_usage_below_local_or_garbage_changes_nothing(reported: str) -> None:
    """A lower (stale) or unparsable count never lowers our own usage."""
    lim, _ = limiter(RateLimit(W, 60.0, 100, header=HEADER))
    assert lim.reserve({W: 5}) == 0.0
    lim.observe(200, {HEADER: reported})
    assert used(lim) == [5]


def test_server_usage_entry_expires_with_the_window() -> None:
    """Usage learned from a header is dated now and leaves the window like any entry."""
    lim, clock = limiter(RateLimit(W, 60.0, 100, header=HEADER))
    lim.observe(200, {HEADER: "100"})
    assert lim.reserve({W: 1}) == 60.0
    clock.advance(60.0)
    assert used(lim) == [0]
    assert lim.reserve({W: 1}) == 0.0


@pytest.mark.parametrize("status", [429, 418])
def test_retry_after_pauses_every_call(status: int) -> None:
    """429/418 with retry-after pauses all calls, whatever they cost, for that long."""
    lim, clock = limiter(RateLimit(W, 60.0, 100), RateLimit(O, 10.0, 100))
    lim.observe(status, {"retry-after": "3"})
    assert lim.paused_for == 3.0
    for costs in ({W: 1}, {O: 1}, {W: 1, O: 1}, {"OTHER": 1}, {}):
        assert lim.reserve(costs) == 3.0
    clock.advance(1.0)
    assert lim.reserve({W: 1}) == 2.0
    clock.advance(2.0)
    assert lim.paused_for == 0.0
    assert lim.reserve({W: 1, O: 1}) == 0.0
    assert used(lim) == [1, 1]


@pytest.mark.parametrize("retry_after", [None, "soon", "-1", "nan", "inf"])
def test_429_without_usable_retry_after_uses_default_pause(retry_after: str | None) -> None:
    """No (valid) retry-after: pause for the default rather than hammer the venue."""
    clock = FakeClock(50.0)
    lim = RateLimiter.in_memory([RateLimit(W, 60.0, 100)], clock=clock, default_pause=30.0)
    headers = {} if retry_after is None else {"retry-after": retry_after}
    lim.observe(429, headers)
    assert lim.reserve({W: 1}) == 30.0


def test_a_shorter_retry_after_never_shortens_a_pause() -> None:
    """A later 429 with a smaller retry-after does not cut an IP ban short."""
    lim, _ = limiter(RateLimit(W, 60.0, 100))
    lim.observe(418, {"retry-after": "120"})
    lim.observe(429, {"retry-after": "1"})
    assert lim.reserve({W: 1}) == 120.0


def test_success_does_not_pause() -> None:
    """Only 429/418 pause; a 200 or a 500 with retry-after does not."""
    lim, _ = limiter(RateLimit(W, 60.0, 100))
    lim.observe(200, {"retry-after": "30"})
    lim.observe(503, {"retry-after": "30"})
    assert lim.reserve({W: 1}) == 0.0


# --- configure ------------------------------------------------------------------------------------


def test_configure_keeps_spent_usage() -> None:
    """Replacing the limits with the venue's published ones keeps what was already spent."""
    lim, clock = limiter(RateLimit(W, 60.0, 10), RateLimit(O, 10.0, 5))
    for _ in range(4):
        assert lim.reserve({W: 2, O: 1}) == 0.0
        clock.advance(1.0)
    lim.configure([RateLimit(W, 60.0, 20), RateLimit(O, 10.0, 10), RateLimit(O, 86400.0, 6)])
    assert [spec.limit for spec in lim.limits] == [20, 10, 6]
    assert used(lim) == [8, 4, 4]
    assert lim.reserve({W: 1, O: 1}) == 0.0
    assert lim.reserve({W: 1, O: 1}) == 0.0
    assert lim.reserve({W: 1, O: 1}) > 80_000  # the new day window already holds 6


def test_configure_shorter_window_keeps_only_recent_entries() -> None:
    """Entries older than a new, shorter window no longer count."""
    lim, clock = limiter(RateLimit(W, 60.0, 10))
    for _ in range(5):
        assert lim.reserve({W: 1}) == 0.0
        clock.advance(10.0)
    lim.configure([RateLimit(W, 20.0, 10)])
    assert used(lim) == [1]  # entries at -50 .. -10: only -10 is inside (now - 20, now]


def test_configure_keeps_a_pause() -> None:
    """Reconfiguring must not lift a pause the venue imposed."""
    lim, _ = limiter(RateLimit(W, 60.0, 10))
    lim.observe(429, {"retry-after": "5"})
    lim.configure([RateLimit(W, 60.0, 100)])
    assert lim.reserve({W: 1}) == 5.0


def test_margin_must_be_a_share() -> None:
    """A margin of 1 or more would leave no capacity at all."""
    for margin in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError):
            RateLimiter.in_memory([RateLimit(W, 1.0, 10)], margin=margin)


# --- the sliding-window invariant -----------------------------------------------------------------


def max_in_window(grants: list[tuple[float, int]], seconds: float) -> int:
    """Largest number of units in any half-open window (t - seconds, t] ending at a grant."""
    return max(
        (sum(cost for when, cost in grants if end - seconds < when <= end) for end, _ in grants),
        default=0,
    )


sixteenths = st.integers(0, 64).map(lambda n: n / 16)  # exact in binary floating point


@settings(max_examples=200, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 2.0, 4.0]), st.integers(1, 10)),
        min_size=1,
        max_size=3,
    ),
    margin=st.sampled_from([0.0, 0.25, 0.5]),
    requests=st.lists(st.tuples(sixteenths, st.integers(1, 10)), max_size=60),
)
def test_no_window_ever_exceeds_capacity(
    windows: list[tuple[float, int]],
    margin: float,
    requests: list[tuple[float, int]],
) -> None:
    """However requests arrive, no half-open window of any limit holds more than its capacity."""
    lim, clock = limiter(*(RateLimit(O, s, n) for s, n in windows), margin=margin)
    capacities = [row.capacity for row in lim.usage()]
    grants: list[tuple[float, int]] = []
    for advance, wanted in requests:
        clock.advance(advance)
        cost = min(wanted, *capacities)
        acquire(lim, clock, {O: cost})
        grants.append((clock.now, cost))
        for (seconds, _), capacity, spent in zip(windows, capacities, used(lim), strict=True):
            assert spent <= capacity
            assert max_in_window(grants, seconds) <= capacity
    for (seconds, _), capacity in zip(windows, capacities, strict=True):
        assert max_in_window(grants, seconds) <= capacity


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.integers(1, 8),
    requests=st.lists(st.tuples(sixteenths, st.integers(1, 8)), min_size=1, max_size=40),
)
def test_waits_are_exact_not_pessimistic(capacity: int, requests: list[tuple[float, int]]) -> None:
    """A grant happens at the first instant it may: a tick earlier the window was too full."""
    lim, clock = limiter(RateLimit(O, 1.0, capacity))
    grants: list[tuple[float, int]] = []
    for advance, wanted in requests:
        clock.advance(advance)
        cost = min(wanted, capacity)
        waited = acquire(lim, clock, {O: cost})
        if waited:
            earlier = clock.now - 1 / 64
            in_window = sum(c for t, c in grants if earlier - 1.0 < t <= earlier)
            assert in_window + cost > capacity
        grants.append((clock.now, cost))


def test_float_rounding_at_the_boundary_never_over_admits() -> None:
    """Waiting exactly the returned wait must not land where usage() says full yet reserve admits.

    With a 0.3 s window and an entry at 0.4, the wait is 0.3 and the clock reads 0.7;
    in floats 0.7 - 0.3 < 0.4 (the entry still counts) while 0.4 + 0.3 - 0.7 == 0.0.
    """
    lim, clock = limiter(RateLimit(O, 0.3, 1), clock=FakeClock(0.4))
    assert lim.reserve({O: 1}) == 0.0
    acquire(lim, clock, {O: 1})
    ((row),) = lim.usage()
    assert row.used <= row.capacity


class HookClock(FakeClock):
    """A fake clock that can run a callback inside the next reading, before returning it."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self.hook: Callable[[], None] | None = None

    def __call__(self) -> float:
        now = self.now
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return now


def test_entries_are_dated_when_admitted_not_when_the_clock_was_read() -> None:
    """Deterministic replay of a thread race: A reads the clock, B runs, then A is admitted.

    A grant's time is the (fake) time at which reserve returned 0. With a limiter that reads
    the clock under its lock, B blocks until A is done (the hook's join times out) and no
    window of admission times exceeds the capacity.
    """
    clock = HookClock(0.3)
    lim = RateLimiter.in_memory([RateLimit(O, 1.0, 3)], margin=0.0, shares=FULL, clock=clock)
    grants: list[tuple[float, int]] = []
    helpers: list[threading.Thread] = []

    def take() -> None:
        if lim.reserve({O: 1}) == 0.0:
            grants.append((clock.now, 1))

    for now in (0.3, 0.4, 0.5):
        clock.now = now
        take()

    def other_thread_runs() -> None:
        clock.now = 1.6
        helper = threading.Thread(target=take)
        helpers.append(helper)
        helper.start()
        helper.join(timeout=0.3)  # a correct limiter holds its lock here: B must wait
        clock.now = 1.9

    clock.now, clock.hook = 1.2, other_thread_runs
    take()  # thread A: reads 1.2, then B runs at 1.6, then A gets the lock at 1.9
    for helper in helpers:
        helper.join(timeout=5.0)
        assert not helper.is_alive()
    clock.now = 2.65
    for _ in range(3):
        take()
    assert max_in_window(grants, 1.0) <= 3, grants


@settings(max_examples=100, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 2.0]), st.integers(1, 6)), min_size=1, max_size=3
    ),
    requests=st.lists(st.tuples(sixteenths, st.integers(1, 6)), max_size=40),
)
def test_memory_fast_path_decides_like_acquire_at(
    windows: list[tuple[float, int]], requests: list[tuple[float, int]]
) -> None:
    """reserve() (the inlined hot path) and reserve_at() give the same waits, always."""
    fast, fast_clock = limiter(*(RateLimit(f"K{i}", s, n) for i, (s, n) in enumerate(windows)))
    slow, slow_clock = limiter(*(RateLimit(f"K{i}", s, n) for i, (s, n) in enumerate(windows)))
    smallest = min(n for _, n in windows)
    for advance, wanted in requests:
        fast_clock.advance(advance)
        slow_clock.advance(advance)
        costs = {f"K{i}": min(wanted, smallest) for i in range(len(windows))}
        assert fast.reserve(costs) == slow.reserve_at(costs)[0]
        single = {"K0": min(wanted, windows[0][1])}
        assert fast.reserve(single) == slow.reserve_at(single)[0]
    assert used(fast) == used(slow)


def test_memory_log_groups_a_millisecond_and_never_admits_more_than_an_exact_log() -> None:
    """Admissions within 1 ms share one log entry, dated by the latest of them: a burst
    allocates nothing and the log stays small, and every unit stays in the window at least
    as long as an exact log would keep it (at most 1 ms longer)."""
    lim, clock = limiter(RateLimit(W, 1.0, 10_000))
    start = clock.now
    admitted: list[float] = []
    for step in range(5000):  # one call every 20 µs for 0.1 s
        clock.now = start + step * 20e-6
        assert lim.reserve({W: 1}) == 0.0
        admitted.append(clock.now)
    window = next(iter(lim.backend._windows.values()))  # type: ignore[attr-defined]
    assert len(window.entries) <= 101  # about one entry per millisecond, not 5000
    assert used(lim) == [5000]
    # Exact log: the first unit leaves at start + 1 s. Grouped: no earlier, at most 1 ms later.
    clock.now = start + 1.0 - 1e-9
    assert used(lim) == [5000]
    for step in range(5000):
        clock.now = admitted[step] + 1.0 + 0.001  # 1 ms after its exact expiry: gone
        assert used(lim)[0] <= 5000 - step - 1
