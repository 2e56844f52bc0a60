"""Processes opening one new SQLite file at the same moment all open it.

Switching a new file to WAL needs an exclusive lock, and SQLite's deadlock guard answers
"database is locked" at once (without waiting for the busy timeout) to some of the
processes that race for it. Every store here rides that out (securetrade._sqlite); this
failed in the chaos soak's cold-start burst, where bots start together on one limiter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

OPENERS = {
    "limiter": "from securetrade.ratelimit import RateLimiter; RateLimiter.sqlite(path).close()",
    "journal": "from securetrade.core import Journal; Journal(path).close()",
    "kill switch": (
        "from securetrade.policy import KillSwitch; KillSwitch.from_url('sqlite:///' + path)"
    ),
    "replay store": (
        "from securetrade.verify.replay import SqliteReplayStore; SqliteReplayStore(path)"
    ),
}


@pytest.mark.parametrize("store", sorted(OPENERS))
def test_processes_opening_one_new_file_at_once_all_open_it(store: str, tmp_path: Path) -> None:
    code = "import sys; path = sys.argv[1]; " + OPENERS[store]
    for trial in range(4):
        path = str(tmp_path / f"{trial}.sqlite3")
        children = [
            subprocess.Popen([sys.executable, "-c", code, path], stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        for child in children:
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err[-2000:]
