"""``securetrade demo``: every protective layer at work against the simulator over HTTPS.

Each step states what should happen, does it, and prints the evidence the simulator saw.
The demo exits 0 only if every step behaved.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from .client import Client
from .clock import ClockAlarm, VenueClock
from .errors import PinMismatch, ScopeError
from .keys import Scope
from .models import LimitOrder, MarketOrder
from .sim import SimLimits, Simulator
from .sim.certs import make_certificates
from .transport import HttpRequest, HttpResponse, HttpTransport, pinned_ssl_context
from .transport.tls import PinSet

__all__ = ["run_demo"]

RECV_WINDOW_MS = 1000  # short, so the replay step does not keep the reader waiting
# The simulator's clock runs ahead of ours by this much: more than the receive window, so
# step 1 shows timestamps taken in venue time, and more than the clock's offset alarm
# threshold (1000 ms), so that alarm fires once. Step 1 narrates it; it is not left to the
# logger's last-resort handler, which would print it as a bare warning line.
CLOCK_SKEW_MS = 1800


class _Recorder:
    """A transport wrapper that keeps the last request sent, as an eavesdropper would."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.last: HttpRequest | None = None

    def send(self, request: HttpRequest) -> HttpResponse:
        self.last = request
        return self.inner.send(request)

    def close(self) -> None:
        self.inner.close()


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failures: list[str] = []
        self.step = 0

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self, title: str, body: Callable[[], str]) -> None:
        self.step += 1
        self.say(f"\n[{self.step}] {title}")
        try:
            evidence = body()
        except Exception as exc:  # a step that raises has failed; show why and go on
            self.failures.append(title)
            self.say(f"    FAIL  {type(exc).__name__}: {exc}")
            return
        self.say(f"    ok    {evidence}")

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)


@contextlib.contextmanager
def _clock_alarms_narrated() -> Iterator[None]:
    """While step 1 runs, the clock logger's warning is not printed by logging's last-resort
    handler (the step narrates the alarm); an application's own logging still receives it."""
    logger = logging.getLogger("securetrade.clock")
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        yield
    finally:
        logger.removeHandler(quiet)


def run_demo(out: TextIO) -> int:
    """Run the demo, narrating to ``out``. Returns the process exit code."""
    n = _Narrator(out)
    started = time.monotonic()
    limits = SimLimits(weight=400, weight_seconds=10, orders=10, orders_seconds=2)
    with (
        Simulator(limits=limits, clock_offset_ms=CLOCK_SKEW_MS) as sim,
        tempfile.TemporaryDirectory() as workdir,
    ):
        server = sim.serve()
        stats = sim.dialect.stats
        key = sim.create_key(scopes=(Scope.READ, Scope.TRADE, Scope.CANCEL))
        n.say("securetrade demo: a pinned client against the built-in exchange simulator")
        n.say(f"    simulator   {server.base_url} (TLS, certificate generated for this run)")
        n.say(f"    pins        {', '.join(server.pins[server.host])}")
        n.say(f"    key         {key!r}")
        transport = _Recorder(
            HttpTransport(
                server.base_url,
                pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem),
            )
        )
        alarms: list[ClockAlarm] = []
        client = Client(
            key,
            transport=transport,
            journal=Path(workdir) / "journal.sqlite3",
            recv_window_ms=RECV_WINDOW_MS,
            clock=VenueClock(on_alarm=alarms.append),
        )

        def place() -> str:
            order = client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00"),
                idempotency_key="demo-first-order",
            )
            held = sim.market.orders_with_client_id(order.client_order_id)
            n.check(len(held) == 1, "the simulator should hold exactly one such order")
            offset = client.core.clock.offset_ms
            n.check(abs(offset - CLOCK_SKEW_MS) < 500, f"clock offset {offset:.0f} ms")
            n.check([a.reason for a in alarms] == ["offset"], f"clock alarms {alarms}")
            return (
                f"order {order.order_id} {order.status.value} as {order.client_order_id}; "
                f"the simulator holds it. Venue clock measured {offset:+.0f} ms ahead "
                f"(set to {CLOCK_SKEW_MS:+d}), so timestamps are in venue time; an offset "
                f"that large raised the clock's alarm once (threshold "
                f"{alarms[0].threshold_ms:.0f} ms), handed to on_alarm"
            )

        with _clock_alarms_narrated():
            n.run(
                "Place an order through every layer (scope, policy, journal, limiter, "
                "venue clock, signature, pinned TLS)",
                place,
            )

        def withdraw() -> str:
            requests, received = stats.requests, server.bytes_received
            try:
                client.withdraw("USDT", "100", "bc1-demo-address")
            except ScopeError as exc:
                n.check(stats.requests == requests, "a request reached the exchange")
                n.check(server.bytes_received == received, "bytes reached the exchange")
                return (
                    f"refused locally: {exc.message}. Requests reaching the exchange: "
                    f"{stats.requests - requests}"
                )
            raise AssertionError("the withdrawal was not refused")

        n.run("Withdraw with a key that was never granted 'withdraw'", withdraw)

        def replay() -> str:
            client.place_order(
                LimitOrder(symbol="ETHUSDT", side="BUY", quantity="0.1", price="3000.00"),
                idempotency_key="demo-replay-target",
            )
            captured = transport.last
            n.check(captured is not None and captured.method == "POST", "nothing captured")
            assert captured is not None
            time.sleep((RECV_WINDOW_MS + 400) / 1000)
            attacker = HttpTransport(
                server.base_url, pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)
            )
            try:
                answer = attacker.send(captured)
            finally:
                attacker.close()
            n.check(answer.status == 400 and b"-1021" in answer.body, f"got {answer.status}")
            return (
                f"the exact signed bytes, resent {RECV_WINDOW_MS + 400} ms later, got HTTP "
                f"{answer.status} {answer.body.decode()}"
            )

        n.run("Replay a captured signed order request after its validity window", replay)

        def wrong_pin() -> str:
            other = make_certificates()
            received = server.bytes_received
            impostor = HttpTransport(
                server.base_url,
                pinned_ssl_context(
                    PinSet({server.host: [other.leaf_pin, other.ca_pin]}), cadata=server.ca_pem
                ),
            )
            try:
                impostor.send(HttpRequest("GET", "/api/v3/time"))
            except PinMismatch:
                n.check(server.bytes_received == received, "request bytes reached the server")
                return (
                    "PinMismatch after the handshake; request bytes the server received: "
                    f"{server.bytes_received - received}"
                )
            finally:
                impostor.close()
            raise AssertionError("the connection was not refused")

        n.run("Connect a client pinned to another key (as if the host were intercepted)", wrong_pin)

        def burst() -> str:
            before_429, before_418 = stats.status_429, stats.status_418
            count = 24
            started_burst = time.monotonic()
            with ThreadPoolExecutor(max_workers=8) as pool:
                orders = list(
                    pool.map(
                        lambda i: client.place_order(
                            MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"),
                            idempotency_key=f"demo-burst-{i}",
                        ),
                        range(count),
                    )
                )
            elapsed = time.monotonic() - started_burst
            n.check(len(orders) == count, "not every order was placed")
            n.check(
                stats.status_429 == before_429 and stats.status_418 == before_418,
                "the exchange answered 429 or 418",
            )
            return (
                f"{count} orders from 8 threads against a limit of {limits.orders} per "
                f"{limits.orders_seconds} s: all placed in {elapsed:.1f} s, 429 answers: "
                f"{stats.status_429 - before_429}, 418 answers: "
                f"{stats.status_418 - before_418}"
            )

        n.run("Burst 24 orders at once; the rate limiter paces them", burst)

        def lost_response() -> str:
            sim.faults.inject("drop_response", method="POST", path="/api/v3/order")
            order = client.place_order(
                LimitOrder(symbol="BTCUSDT", side="SELL", quantity="0.02", price="70000.00"),
                idempotency_key="demo-lost-response",
            )
            n.check(sim.faults.fired[-1][0] == "drop_response", "the fault did not fire")
            held = sim.market.orders_with_client_id(order.client_order_id)
            n.check(len(held) == 1, f"the simulator holds {len(held)} such orders")
            again = client.place_order(
                LimitOrder(symbol="BTCUSDT", side="SELL", quantity="0.02", price="70000.00"),
                idempotency_key="demo-lost-response",
            )
            n.check(again.order_id == order.order_id, "a retry returned another order")
            return (
                f"the response was dropped after the order was placed; the client asked "
                f"the exchange by client order id and returned order {order.order_id}. "
                f"Orders at the exchange with that id: {len(held)}; calling again with the "
                f"same idempotency key returned the same order"
            )

        n.run("Lose the response to an order, then retry", lost_response)

        client.close()
        transport.close()
        account = sim.market.accounts[sim.dialect.keys[key.key_id].account]
        holdings = ", ".join(
            f"{asset} {format((free + locked).normalize(), 'f')}"
            for asset, (free, locked) in sorted(account.balances.items())
        )
        n.say(f"\nAccount at the simulator afterwards: {holdings}")

    elapsed = time.monotonic() - started
    if n.failures:
        n.say(f"\n{len(n.failures)} step(s) misbehaved: {', '.join(n.failures)} ({elapsed:.1f} s)")
        return 1
    n.say(f"\nAll {n.step} steps behaved ({elapsed:.1f} s).")
    return 0
