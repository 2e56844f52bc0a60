"""The journal's schema version 4: fills keyed for locality, the state index narrowed to
the intents in flight, and a version 3 file upgraded in place with its fills kept."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from securetrade.core.journal import Journal
from securetrade.core.states import IntentState
from securetrade.models import Fill

# The version 3 schema as securetrade wrote it (intents, leases, fills keyed by client
# order id, tombstones), with the trigger an early version 3 file still carries.
_V3 = """
CREATE TABLE intents (
    client_order_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deadline_ms INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    order_json TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX intents_state ON intents(account, state);
CREATE TABLE leases (account TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE fills (
    client_order_id TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    commission TEXT NOT NULL,
    commission_asset TEXT,
    PRIMARY KEY (client_order_id, trade_id)
);
CREATE TRIGGER fills_of_answer AFTER UPDATE OF order_json ON intents BEGIN
    INSERT OR IGNORE INTO fills VALUES (NEW.client_order_id, 'x', '0', '0', '0', NULL);
END;
CREATE TABLE tombstones (
    client_order_id TEXT PRIMARY KEY,
    purged_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
PRAGMA user_version=3;
"""

A, B, ORPHAN = "st" + "a" * 30, "st" + "b" * 30, "st" + "c" * 30


def _intent(cid: str, state: str, created: float) -> tuple[object, ...]:
    return (cid, "key-" + cid, "acct", "BTCUSDT", "fp", state, 1, 0, "", "{}", None,
            created, created)  # fmt: skip


def _v3_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(_V3)
    db.executemany(
        "INSERT INTO intents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_intent(A, "FILLED", 1000.0), _intent(B, "SENDING", 2000.0)],
    )
    db.executemany(  # recorded in this order: B's, A's, one of an order with no intent, B's
        "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?)",
        [
            (B, "b2", "20", "1", "0", None),
            (A, "a1", "10", "2", "0.1", "BNB"),
            (ORPHAN, "c1", "30", "3", "0", None),
            (B, "b1", "21", "1", "0", None),
        ],
    )
    db.commit()
    db.close()


def _trades(journal: Journal, cid: str) -> list[tuple[str | None, Decimal]]:
    return [(f.trade_id, f.price) for f in journal.fills(cid)]


def test_a_version_3_file_is_upgraded_in_place_and_keeps_its_fills(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    _v3_file(path)
    journal = Journal(path)
    try:
        db = journal._db
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "intents_unfinished" in names
        assert not names & {"intents_state", "fills_of_answer", "fills_v3"}
        # every fill kept, in the order it was recorded, the orphan's too
        assert _trades(journal, B) == [("b2", Decimal("20")), ("b1", Decimal("21"))]
        assert _trades(journal, A) == [("a1", Decimal("10"))]
        assert journal.fills(A)[0].commission_asset == "BNB"
        assert _trades(journal, ORPHAN) == [("c1", Decimal("30"))]
        # still one fill per trade id, and new ones after the old
        again = Fill(price="20", quantity="1", trade_id="b2")
        assert journal.record_fills(B, [again]) == 0
        assert journal.record_fills(B, [Fill(price="22", quantity="1", trade_id="b3")]) == 1
        assert [t for t, _ in _trades(journal, B)] == ["b2", "b1", "b3"]
        assert journal.record_fills(ORPHAN, [Fill(price="30", quantity="3", trade_id="c1")]) == 0
        # the unfinished intent is found through the new index
        assert [i.client_order_id for i in journal.unfinished("acct")] == [B]
        assert [i.client_order_id for i in journal.unresolved()] == [B]
        # retention deletes a purged intent's fills with it
        journal.retention = 0.0
        assert journal.purge() == 1
        assert journal.fills(A) == []
        assert _trades(journal, B) != []
    finally:
        journal.close()
    Journal(path).close()  # a version 4 file opens as it is


def test_fills_recorded_before_their_intent_stay_one_per_trade(tmp_path: Path) -> None:
    """A trade query about an order this journal has no intent of records its fills under
    no intent; once an intent of that id exists, the same trades are still not recorded
    twice, and all of them are the order's fills, oldest first."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        first = Fill(price="1", quantity="1", trade_id="t1")
        second = Fill(price="2", quantity="1", trade_id="t2")
        assert journal.record_fills(A, [first]) == 1
        journal.begin("key-a", A, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        assert journal.record_fills(A, [first]) == 0
        assert journal.settle(A, IntentState.FILLED, order_json="{}", fills=[first, second])
        assert [f.trade_id for f in journal.fills(A)] == ["t1", "t2"]
        journal.retention = 0.0
        assert journal.purge() == 1
        assert journal.fills(A) == []
    finally:
        journal.close()


def test_the_fills_key_starts_with_the_intents_creation_time(tmp_path: Path) -> None:
    """The fills of the orders a commit settles land at the right-hand end of the fills
    index (their intents are recent), not one page per order as a key led by the client
    order id (a hash) put them."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        db = journal._db
        (index,) = [
            row[1]
            for row in db.execute("PRAGMA index_list(fills)")
            if row[2]  # unique
        ]
        columns = [row[2] for row in db.execute(f"PRAGMA index_info({index})")]
        assert columns == ["intent_at", "client_order_id", "trade_id"]
        journal.begin("key-b", B, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        journal.settle(B, IntentState.FILLED, fills=[Fill(price="1", quantity="1", trade_id="x")])
        created = db.execute("SELECT created_at FROM intents").fetchone()[0]
        assert db.execute("SELECT intent_at FROM fills").fetchone()[0] == created
    finally:
        journal.close()


def test_the_state_index_holds_the_intents_in_flight_only(tmp_path: Path) -> None:
    """A settled intent leaves the index (one page less per commit than moving within it),
    and the reconciler's queries still find the unfinished through it."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        db = journal._db
        for n, cid in enumerate((A, B)):
            journal.begin(f"key-{n}", cid, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        journal.settle(A, IntentState.FILLED, order_json="{}")
        indexed = db.execute(
            "SELECT count(*) FROM intents INDEXED BY intents_unfinished "
            "WHERE account = 'acct' AND (state = 'PENDING' OR state = 'SENDING' "
            "OR state = 'UNKNOWN')"
        ).fetchone()[0]
        assert indexed == 1
        statements: list[str] = []
        db.set_trace_callback(statements.append)
        try:
            assert [i.client_order_id for i in journal.unfinished("acct")] == [B]
            assert [i.client_order_id for i in journal.unresolved("acct")] == [B]
            assert [i.client_order_id for i in journal.unresolved()] == [B]
        finally:
            db.set_trace_callback(None)
        for statement in statements:
            plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "intents_unfinished" in plan, (statement, plan)
    finally:
        journal.close()


def test_a_fill_written_by_version_3_code_on_an_upgraded_file_is_found(tmp_path: Path) -> None:
    """A process started before the upgrade keeps its own statements: its fill insert
    names no intent_at. It lands under 0, is the order's fill, and is not recorded twice."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        journal.begin("key-a", A, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        journal._db.execute(  # version 3's statement, as that process sends it
            "INSERT OR IGNORE INTO fills (client_order_id, trade_id, price, quantity, "
            "commission, commission_asset) VALUES (?, ?, ?, ?, ?, ?)",
            (A, "t1", "1", "1", "0", None),
        )
        assert [f.trade_id for f in journal.fills(A)] == ["t1"]
        assert journal.record_fills(A, [Fill(price="1", quantity="1", trade_id="t1")]) == 0
        assert journal.settle(
            A, IntentState.FILLED, fills=[Fill(price="2", quantity="1", trade_id="t2")]
        )
        assert [f.trade_id for f in journal.fills(A)] == ["t1", "t2"]
    finally:
        journal.close()


_V3_INSERT_FILL = (  # version 3's statement, as a process started before the upgrade sends it
    "INSERT OR IGNORE INTO fills (client_order_id, trade_id, price, quantity, "
    "commission, commission_asset) VALUES (?, ?, ?, ?, ?, ?)"
)


def test_a_trade_recorded_by_both_versions_is_one_fill_either_way(tmp_path: Path) -> None:
    """Two processes on one upgraded file during a rolling upgrade, one still on version 3
    code: a trade recorded by each (the order answer here, a trades query there) is one
    fill, whichever recorded it first; the order's filled quantity is not counted twice."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        db = journal._db
        journal.begin("key-a", A, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        t1 = Fill(price="1", quantity="1", trade_id="t1")
        assert journal.settle(A, IntentState.FILLED, fills=[t1])  # under the intent
        db.execute(_V3_INSERT_FILL, (A, "t1", "1", "1", "0", None))  # the same trade, by v3
        db.execute(_V3_INSERT_FILL, (A, "t2", "2", "1", "0", None))  # a new one, by v3
        # version 4 code sees both trades again (an overlapping trades query)
        assert journal.record_fills(A, [t1, Fill(price="2", quantity="1", trade_id="t2")]) == 0
        assert [f.trade_id for f in journal.fills(A)] == ["t1", "t2"]
        assert sum(f.quantity for f in journal.fills(A)) == Decimal("2")
        journal.retention = 0.0
        assert journal.purge() == 1
        assert db.execute("SELECT count(*) FROM fills").fetchone()[0] == 0
        # version 3 code records only a new trade: a trade recorded before under the
        # intent, reported again to version 4 code, is still not new
        journal.begin("key-b", B, "acct", "BTCUSDT", "fp", sending_deadline_ms=10**13)
        assert journal.settle(B, IntentState.FILLED, fills=[t1])
        db.execute(_V3_INSERT_FILL, (B, "t2", "2", "1", "0", None))
        assert journal.record_fills(B, [t1]) == 0
        assert [f.trade_id for f in journal.fills(B)] == ["t1", "t2"]
    finally:
        journal.close()
