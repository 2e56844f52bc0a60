"""Two writers on one journal: the one that lost the race gets a typed error (issue 16).

``Core.resolve`` and ``Core.conclude`` are public (``securetrade.core``). Each writes a
guarded transition from the row its caller read; when another writer (thread, process,
host) moved the row on meanwhile, the core's order and recovery flows catch the signal
(``StaleView``) and re-read the row. A caller driving the two itself got that signal as a
bare ``Exception`` subclass, outside the public hierarchy: it is now
:class:`~securetrade.IntentChanged`, a :class:`~securetrade.SecureTradeError` saying to read
the intent again, and the other writer's transition is left as it wrote it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import Client, IntentChanged, SecureTradeError, Settings
from securetrade.core import IntentState
from securetrade.sim import Simulator

STORES = ["sqlite", "redis"]


@pytest.fixture(scope="module")
def venue() -> Iterator[dict[str, Any]]:
    with Simulator() as simulator:
        server = simulator.serve()
        key = simulator.create_key(balances={"USDT": Decimal("100000"), "BTC": Decimal("1")})
        yield {
            "key": key,
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
        }


def _journals(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[Any]:
    """One journal for two writers, each opening it itself: a SQLite file, or a prefix
    of a real redis-server (created by the first)."""
    if store == "sqlite":
        return [tmp_path / "shared.sqlite3"] * 2
    from securetrade.core.redis_journal import RedisJournal

    url = request.getfixturevalue("redis_url")
    prefix = f"stale-{uuid.uuid4().hex[:8]}:"
    first = RedisJournal.create(url, prefix=prefix)
    request.addfinalizer(first.close)
    second = RedisJournal(url, prefix=prefix)
    request.addfinalizer(second.close)
    return [first, second]


def _pair(venue: dict[str, Any], journals: list[Any], settings: Settings) -> tuple[Client, Client]:
    """Two clients (the two writers) over one journal, as two bots or hosts would be."""
    options = {k: v for k, v in venue.items() if k != "key"}
    first, second = (
        Client(venue["key"], journal=journal, settings=settings, **options) for journal in journals
    )
    return first, second


def _claimed(client: Client, name: str, *, sending: bool) -> tuple[str, Any]:
    """An intent of the account's, PENDING (or attempt 1 SENDING, its deadline far off, so
    that the venue's "not found" can prove nothing): its client order id and view."""
    core = client.core
    cid = core.venue.client_order_id(core.account, name)
    deadline = core.clock.now_ms() + 3_600_000 if sending else None
    intent, created = core.journal.begin(
        name, cid, core.account, "BTCUSDT", "fingerprint", sending_deadline_ms=deadline
    )
    assert created
    return cid, intent.view


@pytest.mark.parametrize("store", STORES)
def test_conclude_from_a_row_another_writer_moved_is_a_typed_error(
    store: str, venue: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Both read the PENDING row; the second concludes it NOT_PLACED, then the first's
    UNKNOWN from the same view is refused with IntentChanged, and NOT_PLACED stays."""
    first, second = _pair(venue, _journals(store, tmp_path, request), Settings())
    with first, second:
        cid, seen = _claimed(first, f"stale-conclude-{store}", sending=False)
        assert second.core.journal.get(cid).view == seen  # both writers read the same row
        second._run("conclude", second.core.conclude(cid, IntentState.NOT_PLACED, seen, "b"))
        with pytest.raises(IntentChanged, match="read it again") as raised:
            first._run("conclude", first.core.conclude(cid, IntentState.UNKNOWN, seen, "a"))
        assert isinstance(raised.value, SecureTradeError)
        assert raised.value.client_order_id == cid
        kept = first.core.journal.get(cid)
        assert (kept.state, kept.error) == (IntentState.NOT_PLACED, "b")


@pytest.mark.parametrize("store", STORES)
def test_resolve_giving_up_after_another_writer_settled_is_a_typed_error(
    store: str, venue: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The first writer asks the venue about a SENDING attempt it cannot find (its deadline
    far off: "not yet" proves nothing) in a thread, until its resolve timeout; meanwhile
    the second writer settles the row. The first's give-up (UNKNOWN, from the row it read)
    loses the race: IntentChanged, never UnresolvedOrder (nothing was recorded as
    unresolved) nor the bare internal signal; the second's transition stays."""
    settings = Settings(resolve_timeout=1.5)
    first, second = _pair(venue, _journals(store, tmp_path, request), settings)
    with first, second:
        cid, seen = _claimed(first, f"stale-resolve-{store}", sending=True)
        deadline = first.core.journal.get(cid).deadline_ms
        outcome: list[BaseException | None] = []
        asking = threading.Event()
        original = first.core.note

        def note(kind: str, **fields: Any) -> Any:
            if kind == "order.resolving":
                asking.set()
            return original(kind, **fields)

        first.core.note = note  # type: ignore[method-assign]

        def resolve() -> None:
            try:
                first._run("resolve", first.core.resolve("BTCUSDT", cid, deadline, seen))
                outcome.append(None)
            except BaseException as exc:  # reported below, whatever it is
                outcome.append(exc)

        thread = threading.Thread(target=resolve)
        thread.start()
        assert asking.wait(10)  # the first writer is asking the venue now
        assert second.core.journal.settle(cid, IntentState.NOT_PLACED, expect=seen, error="b")
        thread.join(30)
        assert not thread.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], IntentChanged), outcome
        kept = second.core.journal.get(cid)
        assert (kept.state, kept.error) == (IntentState.NOT_PLACED, "b")
