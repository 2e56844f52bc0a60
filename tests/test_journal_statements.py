"""The journal's per-order statements: no temporary b-tree in SQLite's plan, and the
evidence transitions still apply from exactly their source states."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetrade.core.journal import Journal
from securetrade.core.states import GUARDED, SOURCES, IntentState, View
from securetrade.models import Fill


def _begin(journal: Journal, cid: str, deadline: int | None = 10**13) -> None:
    _, created = journal.begin(
        f"key-{cid}", cid, "acct", "BTCUSDT", "BTCUSDT|BUY|LIMIT|1|1|GTC",
        sending_deadline_ms=deadline,
    )  # fmt: skip
    assert created


def test_the_order_paths_statements_build_no_temporary_btree(tmp_path: Path) -> None:
    """SQLite codes ``state IN (?, ?, ?)`` with a temporary b-tree of the values, built and
    dropped per statement: a settle paid for one on every order. So does the condition of
    a partial index written that way (evaluated on every write of a row), and an INSERT
    whose SELECT reads the table it writes (a fill checked against the fills)."""
    journal = Journal(tmp_path / "j.sqlite3")
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    try:
        _begin(journal, "st-1")
        assert journal.settle("st-1", IntentState.ACKED, order_json='{"x": 1}')
        fill = Fill(price="10", quantity="1", trade_id="t-1")
        assert journal.settle("st-1", IntentState.FILLED, order_json='{"x": 2}', fills=[fill])
    finally:
        journal._db.set_trace_callback(None)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 4  # the claim, two answers, the answer's fill
    for statement in writes:
        plan = journal._db.execute(f"EXPLAIN {statement}").fetchall()
        assert "OpenEphemeral" not in {row[1] for row in plan}, statement
    journal.close()


@pytest.mark.parametrize(
    "target", [t for t, sources in SOURCES.items() if t not in GUARDED and sources]
)
def test_an_evidence_transition_applies_from_its_sources_alone(
    tmp_path: Path, target: IntentState
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    for n, state in enumerate(IntentState):
        cid = f"st-{n}"
        _begin(journal, cid, deadline=None)  # PENDING
        if state is not IntentState.PENDING:
            journal._db.execute(
                "UPDATE intents SET state = ? WHERE client_order_id = ?", (state.value, cid)
            )
        applied = journal.settle(cid, target)
        assert applied is (state in SOURCES[target]), (state, target)
        row = journal.get(cid)
        assert row is not None
        assert row.state is (target if applied else state)
    journal.close()


def test_a_guarded_transition_still_needs_the_row_it_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    _begin(journal, "st-g")
    assert not journal.settle("st-g", IntentState.NOT_PLACED, expect=View(IntentState.SENDING, 2))
    assert journal.settle("st-g", IntentState.NOT_PLACED, expect=View(IntentState.SENDING, 1))
    journal.close()


def test_the_source_states_written_into_the_statements_are_plain_words() -> None:
    """The evidence transitions write their source states into the SQL as literals: each
    must be a plain word, nothing a quote could end."""
    assert all(s.value.isidentifier() and s.value.isupper() for s in IntentState)


def test_settle_records_the_error_or_none(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    _begin(journal, "st-e")
    sent = View(IntentState.SENDING, 1)
    assert journal.settle("st-e", IntentState.NOT_PLACED, expect=sent, error="it's 'q'; -- x")
    row = journal.get("st-e")
    assert row is not None
    assert row.error == "it's 'q'; -- x"
    assert journal.settle("st-e", IntentState.FILLED, order_json="{}")
    row = journal.get("st-e")
    assert row is not None
    assert (row.state, row.error, row.order_json) == (IntentState.FILLED, None, "{}")
    journal.close()
