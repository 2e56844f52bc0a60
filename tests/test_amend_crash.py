"""amend is a journaled cancel-then-place: killed (SIGKILL) anywhere in it, then run
again on the same journal, it leaves exactly one live order for the intent, and never
two at any moment the venue could see. The bot is a child process (tests/amend_child.py)
against the simulator over TLS; what is live is read from the simulator's engine."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator

CHILD = Path(__file__).with_name("amend_child.py")
RESTING = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": "60000"}


def _run(server: HttpsServer, key: ApiKey, journal: Path, **extra: Any) -> tuple[int, str]:
    job = {
        "base_url": server.base_url,
        "pins": server.pins,
        "ca": server.ca_pem,
        "key_id": key.key_id,
        "secret": key.secret.expose().decode(),
        "journal": str(journal),
        "order": RESTING,
        "new_price": "59000",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, str(CHILD)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout


def _live(sim: Simulator, key: ApiKey) -> list[Any]:
    account = sim.account_of(key.key_id)
    return [o for o in sim.market.orders.values() if o.account == account and o.is_open]


@pytest.mark.parametrize(
    ("atomic", "crash_at"),
    [
        (False, "amend_after_cancel"),  # cancelled, the replacement not yet claimed
        (False, "after_claim_commit"),  # the replacement journaled, not sent
        (False, "after_response"),  # the replacement placed, its answer never recorded
        (True, "after_claim_commit"),  # order/cancelReplace journaled, not sent
        (True, "after_response"),  # both done at the venue, the answer never recorded
    ],
)
def test_killed_amend_run_again_leaves_one_live_order(
    sim: Simulator, server: HttpsServer, tmp_path: Path, atomic: bool, crash_at: str
) -> None:
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    code, _ = _run(server, key, journal, crash_at=crash_at, atomic=atomic)
    assert code == -9  # killed at the point, nothing after it ran
    assert len(_live(sim, key)) <= 1  # never two
    code, out = _run(server, key, journal, atomic=atomic)
    assert code == 0
    replacement = json.loads(out)
    live = _live(sim, key)
    assert [(o.client_order_id, o.price) for o in live] == [
        (replacement["client_order_id"], Decimal("59000"))
    ]
    code, out = _run(server, key, journal, atomic=atomic)  # once more: nothing new
    assert code == 0
    assert json.loads(out)["order_id"] == replacement["order_id"]
    assert len(sim.market.orders) == 2  # the resting order and its one replacement
    placed = sim.dialect.stats.by_path
    if atomic:  # the resting order, then one cancel-and-place, no lone cancel
        assert placed["POST /api/v3/order"] == placed["POST /api/v3/order/cancelReplace"] == 1
        assert "DELETE /api/v3/order" not in placed
    else:
        assert placed["POST /api/v3/order"] == 2  # each sent once
    assert len(_live(sim, key)) == 1
