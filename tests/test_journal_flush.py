"""The journal's one wait for the disk: the attempt is committed, then the WAL is flushed.

These tests watch the flush itself (which descriptor, how often, and what happens when it
fails), since a test cannot cut the power: they prove the attempt is on disk before the
call returns as far as the operating system promises it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from securetrade.core import View
from securetrade.core.journal import IntentState, Journal, JournalError

FRESH = View(IntentState.PENDING, 0)  # a row as claimed: no attempt yet


def _begin(journal: Journal, n: int) -> str:
    cid = f"st{n:030d}"
    journal.begin(f"key-{n}", cid, "acct", "BTCUSDT", "fp")
    return cid


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Inodes passed to fdatasync/fsync, in order."""
    seen: list[int] = []
    real_datasync, real_fsync = os.fdatasync, os.fsync

    def datasync(fd: int) -> None:
        seen.append(os.fstat(fd).st_ino)
        real_datasync(fd)

    def fsync(fd: int) -> None:
        seen.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", datasync)
    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_an_attempt_flushes_the_write_ahead_log_once(tmp_path: Path, synced: list[int]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    cids = [_begin(journal, n) for n in range(3)]
    synced.clear()
    assert journal.sending_many([(cid, FRESH, 1) for cid in cids]) == [True, True, True]
    wal = os.stat(tmp_path / "j.sqlite3-wal").st_ino
    assert synced == [wal]  # one flush for the three, and of the log
    assert all(journal.get(cid).state is IntentState.SENDING for cid in cids)  # type: ignore[union-attr]
    journal.close()


def test_nothing_claimed_means_nothing_flushed(tmp_path: Path, synced: list[int]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    cid = _begin(journal, 1)
    assert journal.sending(cid, FRESH, 1)
    synced.clear()
    assert journal.sending(cid, FRESH, 1) is False  # someone else's attempt: not ours to send
    assert synced == []
    journal.close()


def test_the_attempt_is_in_the_file_for_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    cid = _begin(journal, 1)
    journal.sending(cid, FRESH, 123)
    other = Journal(path)  # another connection, as a restarted process would open
    intent = other.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts, intent.deadline_ms) == (IntentState.SENDING, 1, 123)
    other.close()
    journal.close()


def test_a_log_replaced_behind_our_back_is_reopened(tmp_path: Path, synced: list[int]) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    cid = _begin(journal, 1)
    old = journal._wal_fd
    assert old is not None
    os.close(old)  # as if the descriptor now pointed elsewhere: reopen by name
    journal._wal_fd = os.open(os.devnull, os.O_RDONLY)
    assert journal.sending(cid, FRESH, 1)
    assert synced[-1] == os.stat(str(path) + "-wal").st_ino
    journal.close()


def test_a_failed_flush_is_an_error_not_a_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    cid = _begin(journal, 1)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(JournalError, match="could not flush"):
        journal.sending(cid, FRESH, 1)
    journal.close()


def test_without_a_log_descriptor_sqlite_flushes_itself(tmp_path: Path, synced: list[int]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    cid = _begin(journal, 1)
    assert journal._wal_fd is not None
    os.close(journal._wal_fd)
    journal._wal_fd = None  # a platform where the log cannot be opened
    synced.clear()
    assert journal.sending(cid, FRESH, 1)
    # SQLite's own FULL commit flushes through its own descriptor, not through os.*
    assert synced == []
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL
    journal.close()


def test_an_answer_records_its_fills_with_it_and_only_for_a_kept_intent(tmp_path: Path) -> None:
    """settle() writes the answer's fills in the same transaction, once per trade id; an
    answer about an intent the journal does not hold leaves no fills behind."""
    from decimal import Decimal

    from securetrade.models import Fill

    journal = Journal(tmp_path / "j.sqlite3")
    cid = _begin(journal, 7)
    fills = (
        Fill(price="10.5", quantity="1", commission_asset="BNB", trade_id="41"),
        Fill(price="10.6", quantity="2", commission="0.1", trade_id="42"),
        Fill(price="10.7", quantity="3"),  # no trade id: cannot be told apart, not kept
    )
    journal.settle(cid, IntentState.FILLED, order_json="{}", fills=fills)
    journal.settle(cid, IntentState.FILLED, order_json="{}", fills=fills)  # told twice: once
    assert [(f.trade_id, f.price, f.commission) for f in journal.fills(cid)] == [
        ("41", Decimal("10.5"), Decimal("0")),
        ("42", Decimal("10.6"), Decimal("0.1")),
    ]
    journal.settle("st" + "9" * 30, IntentState.FILLED, fills=fills)
    assert journal.fills("st" + "9" * 30) == []
    journal.close()


def test_the_log_starts_over_after_a_checkpoint_that_commits_raced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The async client commits on its event loop while its worker thread checkpoints:
    a commit lands during the copy. A checkpoint that only copied what it found (PASSIVE)
    left the log not wholly copied, so the next commit appended to it instead of starting
    it over, and under a steady flow of orders it grew for as long as the flow lasted."""
    import sqlite3
    import struct

    from securetrade.core import journal_durability

    monkeypatch.setattr(journal_durability, "_CHECKPOINT_EVERY", 1)
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    numbers = iter(range(1000, 2000))
    connect = sqlite3.connect

    class Racing:
        """The checkpointer's connection; the loop commits while its PASSIVE copies."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.db = connect(*args, **kwargs)  # type: ignore[arg-type]

        def execute(self, statement: str) -> sqlite3.Cursor:
            cursor = self.db.execute(statement)
            if "PASSIVE" in statement:
                _begin(journal, next(numbers))
            return cursor

        def close(self) -> None:
            self.db.close()

    monkeypatch.setattr(journal_durability.sqlite3, "connect", Racing)

    def restarts() -> int:  # the log header's checkpoint sequence: +1 per start-over
        with open(f"{path}-wal", "rb") as wal:
            return int(struct.unpack(">I", wal.read(16)[12:16])[0])

    for n in range(3):
        _begin(journal, n)
        journal.flush()  # flush, checkpoint (the race), then ...
        before = restarts()
        _begin(journal, 100 + n)  # ... the next commit starts the log over
        assert restarts() == before + 1
    journal.close()


def test_a_flush_that_close_overtakes_is_an_error_not_a_success(tmp_path: Path) -> None:
    """The group commit's flusher thread checks that the journal is open, then waits for
    the log's lock while another thread closes the journal (the log's descriptor closed
    with it). Its flush must fail, not return as if the commits were on disk: the orders
    waiting on it would be sent."""
    import threading

    journal = Journal(tmp_path / "j.sqlite3")
    cid = _begin(journal, 1)
    assert journal.sending_many([(cid, FRESH, 10**13)], flush=False) == [True]
    real = journal._wal_lock
    at_lock, closed = threading.Event(), threading.Event()

    class _HeldForTheFlusher:  # the flusher reaches the lock, close() goes first
        def __enter__(self) -> None:
            if threading.current_thread() is flusher:
                at_lock.set()
                assert closed.wait(10)
            real.acquire()

        def __exit__(self, *exc: object) -> None:
            real.release()

    journal._wal_lock = _HeldForTheFlusher()  # type: ignore[assignment]
    outcome: list[BaseException | None] = []

    def flush() -> None:
        try:
            journal.flush()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    flusher = threading.Thread(target=flush)
    flusher.start()
    assert at_lock.wait(10)
    journal.close()
    closed.set()
    flusher.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], JournalError), outcome
    assert "closed" in str(outcome[0])
