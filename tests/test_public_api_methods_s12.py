"""The method walk carried on to the exported classes the other walks left out: the
in-memory rate-limit backend, the copy engine's event stream, the order core and the ccxt
profiles; and every walk's values joined by ones whose own methods raise.

Same rule as ``test_public_api_methods``: one hostile argument at a time; the call accepts
it or raises a :class:`SecureTradeError`, and anything else is an escape.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from hostile_values import DUNDER_HOSTILE
from securetrade import SecureTradeError
from securetrade.ratelimit import Draw, MemoryBackend
from test_public_api_methods import BASELINE, HOSTILE, _cases, _finish_sync, _public_methods

#: The walks' values, with the dunder-hostile ones (which HOSTILE may hold already).
EVERY_HOSTILE = [*HOSTILE, *(v for v in DUNDER_HOSTILE if not any(v is h for h in HOSTILE))]


def _shown(value: Any) -> str:
    try:
        return repr(value)[:40]
    except Exception:
        return f"<{type(value).__name__}>"


def _walk_all(obj: Any, cls: type, method: str, tmp: Path) -> list[str]:
    """As ``test_public_api_methods._walk``, with :data:`EVERY_HOSTILE`."""
    escapes = []
    for case in _cases(cls, method, tmp):
        if case.value is not HOSTILE[-1]:  # each case once, then the dunder ones
            continue
        for value in EVERY_HOSTILE:
            kwargs = dict(case.kwargs)
            args = case.args
            if args:
                args = (value,)
            else:
                kwargs[case.argument] = value
            try:
                _finish_sync(getattr(obj, method)(*args, **kwargs))
            except SecureTradeError:
                pass
            except Exception as exc:
                escapes.append(
                    f"{method}({case.argument}={_shown(value)}) raised "
                    f"{type(exc).__name__}: {str(exc)[:160]}"
                )
    return escapes


# --- MemoryBackend ---------------------------------------------------------------------------


def _draws() -> list[Draw]:
    return [Draw("walk:weight", 60.0, 1200, 1)]


@pytest.mark.parametrize("method", _public_methods(MemoryBackend))
def test_memory_backend_methods_refuse_hostile_arguments(
    method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exported, so a platform may drive one itself: a plan, admission, report, key or
    window that is not one was a TypeError or ValueError from inside (a NaN window length
    was kept, and counted nothing ever after)."""
    backend = MemoryBackend()
    plan = backend.compile("walk", _draws())
    arguments = {
        "pause_key": "walk",
        "draws": lambda tmp: _draws(),
        "plan": plan,
        "admission": lambda tmp: backend.admit(plan)[1],
        "reports": lambda tmp: [("walk:weight", 60.0, 3)],
        "buckets": lambda tmp: [("walk:weight", 60.0)],
        "key": "walk",
        "seconds": 1.0,
        "iterable": (),
    }
    for name, value in arguments.items():
        monkeypatch.setitem(BASELINE, name, value)
    escapes = _walk_all(backend, MemoryBackend, method, tmp_path)
    assert not escapes, "\n".join(escapes)


def test_memory_backend_refuses_a_plan_or_admission_it_did_not_make() -> None:
    """Another backend's plan would be taken under the wrong lock; a hand-made tuple of
    the right length was an AttributeError inside the lock."""
    backend, other = MemoryBackend(), MemoryBackend()
    foreign = other.compile("walk", _draws())
    for method in (backend.admit, backend.acquire, backend.acquire_at):
        with pytest.raises(SecureTradeError, match="compile"):
            method(foreign)
        with pytest.raises(SecureTradeError, match="compile"):
            method((None,) * 7)
    with pytest.raises(SecureTradeError, match="admit"):
        backend.land(((None, 1),))
    plan = backend.compile("walk", _draws())
    wait, admission = backend.admit(plan)
    assert wait == 0.0
    backend.land(admission, [("walk:weight", 60.0, 5)])
    assert backend.used([("walk:weight", 60.0)]) == [5]


@pytest.mark.parametrize(
    "draw",
    [
        Draw("walk", float("nan"), 10, 1),
        Draw("walk", 0.0, 10, 1),
        Draw("walk", 60.0, -1, 1),
        Draw("walk", 60.0, 10, True),
        Draw("", 60.0, 10, 1),
        Draw("walk", 60.0, 10.5, 1),  # type: ignore[arg-type]
    ],
)
def test_memory_backend_refuses_a_draw_with_a_wrong_field(draw: Draw) -> None:
    with pytest.raises(SecureTradeError, match="each draw"):
        MemoryBackend().compile("walk", [draw])


def test_memory_backend_pauses_for_as_long_as_a_venue_says() -> None:
    """The limiter passes a venue's Retry-After on as it is: a long one is kept, not
    refused (the check refuses only what is no duration)."""
    backend = MemoryBackend()
    backend.pause("walk", 1e12)
    assert backend.paused_for("walk") > 1e11
    with pytest.raises(SecureTradeError, match="pause"):
        backend.pause("walk", float("inf"))


# --- EventStream (over a real redis-server) --------------------------------------------------


def _event_stream_calls(engine: Any) -> dict[str, Any]:
    """One call per argument of EventStream's public methods; the value goes where ``v``
    is. ``work`` is given a set stop, so that a baseline call returns at once."""
    import asyncio

    def stopped() -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    return {
        "publish(event)": lambda s, v: s.publish(v),
        "work(engine)": lambda s, v: s.work(v, stop=stopped()),
        "work(stop)": lambda s, v: s.work(engine, stop=v, limit=0),
        "work(claim_idle_ms)": lambda s, v: s.work(engine, stop=stopped(), claim_idle_ms=v),
        "work(block_ms)": lambda s, v: s.work(engine, stop=stopped(), block_ms=v),
        "work(count)": lambda s, v: s.work(engine, stop=stopped(), count=v),
        "work(limit)": lambda s, v: s.work(engine, stop=stopped(), limit=v),
    }


def test_event_stream_refuses_hostile_arguments(redis_url: str) -> None:
    """The constructor and each method: a stream, group or consumer name, an engine, a
    stop event or a limit that is none is refused before Redis is asked anything."""
    import asyncio

    from securetrade.copy import CopyEngine, EventStream
    from test_public_api_methods import COPY_SECRET

    escapes: list[str] = []
    for argument in ("url", "client", "stream", "group", "consumer"):
        for value in EVERY_HOSTILE:
            parts: dict[str, Any] = {"url": redis_url, "stream": "walk:events"}
            parts[argument] = value
            try:
                built = EventStream(parts.pop("url"), **parts)
            except SecureTradeError:
                continue
            except Exception as exc:
                escapes.append(f"EventStream({argument}={_shown(value)}): {type(exc).__name__}")
                continue
            asyncio.run(built.close())

    async def walk() -> None:
        connect = {"binance": {"base_url": "https://127.0.0.1:9"}}  # never dialled
        async with CopyEngine(secret=COPY_SECRET, connect=connect, journal=":memory:") as engine:
            stream = EventStream(redis_url, stream="walk:events")
            try:
                for label, call in _event_stream_calls(engine).items():
                    for value in EVERY_HOSTILE:
                        try:
                            await asyncio.wait_for(call(stream, value), 10)
                        except SecureTradeError:
                            pass
                        except Exception as exc:
                            escapes.append(f"{label}={_shown(value)}: {type(exc).__name__}: {exc}")
                assert await stream.pending() == 0
            finally:
                await stream.close()

    asyncio.run(walk())
    assert not escapes, "\n".join(escapes)


def test_event_stream_work_refuses_what_is_no_engine_or_limit_before_reading(
    redis_url: str,
) -> None:
    """A stop set at once, or a limit of 0, returned before anything used the engine: a
    wrong engine or limit was accepted, and failed only on the first entry (an
    AttributeError inside the worker) or compared as a TypeError."""
    import asyncio

    from securetrade.copy import EventStream

    async def walk() -> None:
        stream = EventStream(redis_url, stream="walk:events:2")
        try:
            for value in EVERY_HOSTILE:
                with pytest.raises(SecureTradeError, match="engine"):
                    await stream.work(value, limit=0)
            for value in (-1, 1.5, "1", True, float("nan"), 10**100):
                with pytest.raises(SecureTradeError, match="limit"):
                    await stream.work(None, limit=value)  # type: ignore[arg-type]
        finally:
            await stream.close()

    asyncio.run(walk())


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, 5, b"5", "-3", " 7"])
def test_rate_limiter_observe_reads_only_plain_digits_from_a_usage_header(value: Any) -> None:
    """``str.isdigit`` takes a superscript two and int() then refused it; 5,000 digits
    passed too and int() raised on the length; an int value was an AttributeError. The
    header is the venue's: one that is no count is ignored, as a missing one is."""
    from securetrade import RateLimit, RateLimiter

    limiter = RateLimiter.in_memory([RateLimit("weight", 60.0, 1200, header="x-used")])
    limiter.observe(200, {"x-used": value})
    limiter.observe(200, {"x-used": "7"})
    assert limiter.backend.used([(b, 60.0) for b in limiter.backend._logs]) == [7]


@pytest.mark.parametrize("status", [None, "429", 429.0, DUNDER_HOSTILE[4]])
def test_rate_limiter_observe_refuses_a_status_that_is_no_int(status: Any) -> None:
    from securetrade import RateLimit, RateLimiter

    limiter = RateLimiter.in_memory([RateLimit("weight", 60.0, 1200)])
    with pytest.raises(SecureTradeError, match="status"):
        limiter.observe(status, {})


# --- Core: the order engine behind Client, driven by a client's own runner ------------------

#: Arguments of Core's methods the method walk's table has no working value for.
CORE_ARGUMENTS: dict[str, Any] = {
    "intent": None,  # walked with its hostile values only: abandoned() reads a journal row
    "error": "walk",
    "resource": "POLICY",  # replaced by the Resource in the walk
    "function": lambda tmp: _nothing,
    "then": lambda tmp: _no_flow,
    "depth": 5,
    "limit": 5,
    "since": None,
    "interval": "1m",
    "kind": "walk",
}


def _nothing(*_: Any) -> None:
    """A function ``perform`` may call."""


def _no_flow(order: Any) -> Any:
    """A ``then`` for ``with_native_order``: a flow that yields nothing."""
    return iter(())


@pytest.fixture(scope="module")
def core_client() -> Any:
    """One client over the simulator, with one order placed (for its id and row)."""
    from decimal import Decimal

    from securetrade import Client, Settings
    from securetrade.sim import Simulator
    from test_public_api_methods import _order

    with Simulator() as simulator:
        server = simulator.serve()
        key = simulator.create_key(balances={"USDT": Decimal("100000"), "BTC": Decimal("1")})
        options = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
        quick = Settings(resolve_timeout=0.2)  # a symbol the venue refuses: asked again till then
        with Client(key, journal=":memory:", settings=quick, **options) as client:
            placed = client.place_order(_order(), idempotency_key="core-walk-1")
            yield client, placed


def _core_methods() -> list[str]:
    from securetrade.core import Core

    return _public_methods(Core)


@pytest.mark.parametrize("method", _core_methods())
def test_core_methods_refuse_hostile_arguments(
    core_client: Any, method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Core is exported (securetrade.core): each public flow, driven as Client drives it,
    refuses a hostile argument with a typed error. A flag whose truth raised, a Resource,
    order, function or found order of the wrong type were a TypeError or AttributeError
    from inside the flow; an int whose str raised was written into a request."""
    import inspect

    from securetrade.core import Core, Resource

    client, placed = core_client
    for name, value in CORE_ARGUMENTS.items():
        monkeypatch.setitem(BASELINE, name, value)
    monkeypatch.setitem(BASELINE, "found", placed)
    monkeypatch.setitem(BASELINE, "cid", placed.client_order_id)
    monkeypatch.setitem(BASELINE, "order_json", placed.model_dump_json())
    monkeypatch.setitem(BASELINE, "other", client.core)
    monkeypatch.setitem(BASELINE, "key", "core-walk-1")
    monkeypatch.setitem(BASELINE, "resource", Resource.POLICY)
    escapes = []
    for case in _cases(Core, method, tmp_path):
        if case.value is not HOSTILE[-1] or case.args:  # *args: one more positional each
            continue
        for value in EVERY_HOSTILE:
            kwargs = {**case.kwargs, case.argument: value}
            try:
                result = getattr(client.core, method)(**kwargs)
                if inspect.isgenerator(result):
                    client._run(method, result)
            except SecureTradeError:
                pass
            except Exception as exc:  # a lost race too: IntentChanged, typed (session 13)
                escapes.append(
                    f"{method}({case.argument}={_shown(value)}) raised "
                    f"{type(exc).__name__}: {str(exc)[:160]}"
                )
    assert not escapes, "\n".join(escapes)


# --- the ccxt profiles besides the default one (ccxt:bybit is walked with the adapters) ------

CCXT_PROFILED = ["ccxt:binance", "ccxt:kraken"]


@pytest.mark.parametrize("name", CCXT_PROFILED)
def test_ccxt_profiled_venue_methods_refuse_hostile_arguments(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ccxt's Binance and Kraken carry profiles of their own (Kraken's deadline and
    nonce, its id marker, lookups in the order lists; Binance's paging): their methods are
    walked as the default profile's are, with the dunder-hostile values too."""
    import base64

    import test_public_api_methods_more as more
    from securetrade.keys import ApiKey
    from securetrade.venues import get_venue

    pytest.importorskip("ccxt")
    secret = base64.b64encode(b"walk" * 16).decode()
    monkeypatch.setitem(more.SYMBOLS, name, "BTC/USDT")
    monkeypatch.setattr(
        more,
        "_venue_key",
        lambda venue: ApiKey(venue, "walk-key-0001", secret, scopes=["read", "trade"]),
    )
    for argument, value in more._venue_arguments(name).items():
        monkeypatch.setitem(BASELINE, argument, value)
    venue = get_venue(name)
    cls = type(venue)
    escapes = [
        e for method in _public_methods(cls) for e in _walk_all(venue, cls, method, tmp_path)
    ]
    assert not escapes, "\n".join(escapes)


def test_ccxt_profile_helpers_refuse_hostile_arguments() -> None:
    """Profile.owns_hex_id and kraken_deadline, called by the adapter with what it
    built, refuse anything else with a typed error (a TypeError from the regex or the
    comparison before)."""
    pytest.importorskip("ccxt")
    from securetrade.venues.ccxt.profiles import PROFILES, kraken_deadline

    escapes = []
    for value in EVERY_HOSTILE:
        for label, call in (
            ("owns_hex_id", lambda v: PROFILES["kraken"].owns_hex_id(v)),
            ("kraken_deadline(timestamp_ms)", lambda v: kraken_deadline(v, 5000)),
            ("kraken_deadline(recv_window_ms)", lambda v: kraken_deadline(1_700_000_000_000, v)),
        ):
            try:
                call(value)
            except SecureTradeError:
                pass
            except Exception as exc:
                escapes.append(f"{label}={_shown(value)}: {type(exc).__name__}: {exc}")
    assert not escapes, "\n".join(escapes)


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000])
def test_cost_rule_and_history_cursors_read_only_numbers_int_takes(value: str) -> None:
    """``str.isdigit`` takes '²', which int() refuses, and 5,000 digits, which int()
    refuses by length: both were a ValueError from a rule's check or a cursor's read."""
    from securetrade.core.history import Window
    from securetrade.ratelimit import CostRule
    from securetrade.venues import Op, get_venue

    assert not CostRule("limit", {"weight": 5}, up_to=100).applies([("limit", value)])
    cursors = {
        "binance": [f"t:{value}", f"id:{value}", f"w:{value}:0"],
        "kraken": [f"o:{value}:0", f"o:0:{value}"],
        "ccxt:binance": [f"t:{value}"],
        "ccxt:kraken": [f"o:{value}:0"],
    }
    for name, given in cursors.items():
        venue = get_venue(name)
        symbol = "BTC/USDT" if name.startswith("ccxt") else "BTCUSDT"
        for op in (Op.TRADES, Op.ORDER_HISTORY, Op.WITHDRAWAL_HISTORY):
            made = Window(op, symbol, symbol, None, 1_700_000_000_000, 1_700_000_100_000)
            for cursor in given:
                with contextlib.suppress(SecureTradeError):  # refused, or read: no ValueError
                    venue.history_params(made, cursor)


@pytest.mark.parametrize("name", ["binance", "kraken", "alpaca", "ccxt:binance", "ccxt:kraken"])
def test_a_history_cursor_that_is_no_text_is_refused(name: str) -> None:
    """A number or an object as the cursor was an AttributeError (``.partition``)."""
    from securetrade.core.history import Window
    from securetrade.venues import Op, get_venue

    venue = get_venue(name)
    symbol = {"alpaca": "AAPL"}.get(name, "BTC/USDT" if name.startswith("ccxt") else "BTCUSDT")
    made = Window(Op.TRADES, symbol, symbol, None, 1_700_000_000_000, 1_700_000_100_000)
    for cursor in (0, -1, b"t:1", object(), 1.5, DUNDER_HOSTILE[0]):
        with pytest.raises(SecureTradeError):
            venue.history_params(made, cursor)


# --- the CLI: a bad argument ends with a message, never "internal error" ---------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "rotate", "walk", "--overlap", "nan"],
        ["keys", "rotate", "walk", "--overlap", "inf"],
        ["keys", "rotate", "walk", "--overlap", "99999999999999999999999"],
        ["pins", "--host", ""],
        ["pins", "--host", ".."],
        ["pins", "--host", "x" * 200],
        ["audit", "head", "."],
        ["audit", "export", "."],
    ],
)
def test_the_cli_refuses_a_bad_argument_with_a_message(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Each was exit 70, "internal error" (OverflowError, ValueError, TypeError,
    UnicodeError, sqlite3.OperationalError): now exit 1 or 2 with what to do."""
    from securetrade.cli import main
    from securetrade.cli._guard import EXIT_BUG

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SECURETRADE_DEBUG", raising=False)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code not in (0, EXIT_BUG)
    assert "internal error" not in capsys.readouterr().err


def test_an_audit_trail_name_with_a_query_is_not_read_as_the_uri_query(tmp_path: Path) -> None:
    """The read-only open built ``file:{path}?mode=ro``: a '?' or '#' in the file name
    became the URI's query or fragment, and the trail was not the file opened."""
    from securetrade import AuditKey, AuditTrail
    from securetrade.record.trail import read_sqlite

    path = tmp_path / "trail#1?x.sqlite3"
    trail = AuditTrail(path, AuditKey.generate())
    trail.append("walk", {"note": "walk"})
    trail.close()
    assert [r.kind for r in read_sqlite(path)] == ["walk"]
