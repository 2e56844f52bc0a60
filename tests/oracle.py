"""The idempotency oracle (research note, section 5.2), asserted after every fault scenario.

It reads the venue's ground truth (the simulator's own order book) and the journal file,
never the client's opinion of either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from securetrade.core import IntentState, JournalStore, derive_client_order_id
from securetrade.core.journal import is_ours
from securetrade.sim import Simulator

TERMINAL = frozenset(
    {
        IntentState.ACKED,
        IntentState.FILLED,
        IntentState.CANCELED,
        IntentState.EXPIRED,
        IntentState.REJECTED,
        IntentState.NOT_PLACED,
    }
)


@dataclass
class Verdict:
    """The oracle's figures for one run."""

    intents: int = 0
    duplicates: list[str] = field(default_factory=list)  # keys with more than one order
    lost: list[str] = field(default_factory=list)  # keys with no journal row
    untracked: list[str] = field(default_factory=list)  # our venue orders with no row
    unknown: list[str] = field(default_factory=list)  # rows not in a terminal state
    orders: int = 0  # orders at the venue for these keys

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.untracked or self.unknown)


def judge(
    sim: Simulator,
    journal: JournalStore,
    account: str,
    keys: Iterable[str],
    *,
    venue: str = "binance",
    may_be_missing: Iterable[str] = (),
) -> Verdict:
    """Count what the oracle forbids. ``may_be_missing``: keys whose process died before
    their claim commit (then the venue must hold nothing for them either)."""
    verdict = Verdict()
    missing_ok = set(may_be_missing)
    cids: dict[str, str] = {}
    for key in keys:
        verdict.intents += 1
        cid = derive_client_order_id(venue, account, key)
        cids[cid] = key
        held = sim.market.orders_with_client_id(cid)
        verdict.orders += len(held)
        if len(held) > 1:
            verdict.duplicates.append(key)
        intent = journal.get(cid)
        if intent is None:
            if key not in missing_ok or held:
                verdict.lost.append(key)
            continue
        if intent.state not in TERMINAL:
            verdict.unknown.append(key)
    sim_account = sim.account_of(account)  # the SDK's account is the key id
    with sim.market.lock:
        ours = [
            o
            for o in sim.market.orders.values()
            if o.account == sim_account and is_ours(o.client_order_id)
        ]
    verdict.untracked = [o.client_order_id for o in ours if journal.get(o.client_order_id) is None]
    return verdict


def assert_oracle(
    sim: Simulator,
    journal: JournalStore,
    account: str,
    keys: Iterable[str],
    *,
    may_be_missing: Iterable[str] = (),
) -> Verdict:
    """``judge``, then fail with the figures unless everything holds."""
    verdict = judge(sim, journal, account, keys, may_be_missing=may_be_missing)
    assert verdict.ok, verdict
    return verdict
