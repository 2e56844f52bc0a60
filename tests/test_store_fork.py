"""A child made by ``os.fork()`` owns nothing of its parent's (multiprocessing's fork start
method: a bot's worker per account).

The process token that says who owns an intent or the recovery lease was minted at import,
so a forked child carried its parent's: each process took the other's live intents for its
own (``abandoned`` then looked only at its own in-flight set, where they are not: taken
over at once, a PENDING one concluded NOT_PLACED under its live owner) and renewed the
other's recovery lease as its own (two reconcilers of one account). Each test forks for
real, and the child reports through a pipe.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import Client
from securetrade.core.recovery import IN_FLIGHT
from securetrade.core.store import process_token
from securetrade.sim import Simulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork only")


def _forked(work: Callable[[], Any], *, before: Callable[[], None] = lambda: None) -> Any:
    """Run ``work`` in a forked child once the parent has run ``before``; its answer
    (JSON), or the error it raised, as text."""
    go_read, go_write = os.pipe()
    out_read, out_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, and leave without running the parent's teardown
        code = 0
        try:
            os.close(go_write)
            os.close(out_read)
            os.read(go_read, 1)  # the parent has done its part
            answer = json.dumps({"answer": work()})
        except BaseException as exc:
            answer = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            code = 1
        with os.fdopen(out_write, "w") as out:
            out.write(answer)
        os._exit(code)
    os.close(go_read)
    os.close(out_write)
    try:
        before()
    finally:
        os.write(go_write, b"g")
        os.close(go_write)
        with os.fdopen(out_read) as out:
            answer = json.loads(out.read() or '{"error": "no answer"}')
        os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return answer["answer"]


def test_a_forked_child_has_a_token_of_its_own() -> None:
    """And none of its parent's flows in flight: only the forking thread goes on in it."""
    parent = process_token()
    IN_FLIGHT.add("st-fork-in-flight")
    try:
        child, flying = _forked(lambda: [process_token(), sorted(IN_FLIGHT)])
    finally:
        IN_FLIGHT.discard("st-fork-in-flight")
    assert flying == []
    assert child != parent
    assert process_token() == parent  # the parent's own is kept
    host, pid, _ = child.split(":")
    assert host == parent.split(":")[0]
    assert pid != str(os.getpid())


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


def test_a_forked_worker_leaves_its_parents_live_intent_alone(
    venue: dict[str, Any], tmp_path: Path
) -> None:
    """A worker forked at start-up; then the parent begins an order (PENDING, in flight in
    the parent). The worker, recovering the account from the same journal, asks whether
    that intent is abandoned: its owner (the parent) is alive and has just written it, so
    no. With the parent's token it was "ours" and not in the worker's in-flight set:
    abandoned, concluded NOT_PLACED under the parent about to send it."""
    path = tmp_path / "shared.sqlite3"
    options = {k: v for k, v in venue.items() if k != "key"}
    with Client(venue["key"], journal=path, **options) as parent:
        core = parent.core
        cid = core.venue.client_order_id(core.account, "fork-live-1")

        def begin() -> None:  # the parent, after the fork: its own order, in flight
            intent, created = core.journal.begin(
                "fork-live-1", cid, core.account, "BTCUSDT", "fingerprint"
            )
            assert created
            assert intent.owner == process_token()
            IN_FLIGHT.add(cid)

        def worker() -> bool:
            with Client(venue["key"], journal=path, **options) as child:
                intent = child.core.journal.get(cid)
                assert intent is not None
                return child.core.abandoned(intent)

        try:
            assert _forked(worker, before=begin) is False
            assert not parent.core.abandoned(core.journal.get(cid))  # ours, in flight
        finally:
            IN_FLIGHT.discard(cid)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_forked_child_does_not_take_its_parents_recovery_lease(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The parent holds the account's lease; a forked child's release leaves it alone and
    its request is refused while the parent lives (it deleted the parent's lease as its
    own, then took it: two reconcilers of one account)."""
    account = f"fork-{uuid.uuid4().hex[:8]}"
    if store == "sqlite":
        from securetrade import Journal

        path = tmp_path / "lease.sqlite3"

        def opened() -> Any:
            return Journal(path)

    else:
        from securetrade.core.redis_journal import RedisJournal

        url = request.getfixturevalue("redis_url")
        prefix = f"fork-{uuid.uuid4().hex[:8]}:"
        RedisJournal.create(url, prefix=prefix).close()

        def opened() -> Any:
            return RedisJournal(url, prefix=prefix)

    journal = opened()
    try:
        assert journal.lease(account, 30.0)

        def child() -> list[bool]:
            own = opened()  # the child's own connection, as a worker opens its journal
            try:
                own.release(account)  # not the child's to give back: a no-op
                return [own.lease(account, 30.0)]
            finally:
                own.close()

        assert _forked(child) == [False]
        assert _forked(child) == [False]  # the first child's release left it the parent's
        assert journal.lease(account, 30.0)  # renewed by its holder
    finally:
        journal.release(account)
        journal.close()
