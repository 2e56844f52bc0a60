"""The idempotency oracle (research note, section 5.2), asserted after every fault scenario.

It reads the venue's ground truth (the simulator's own order book) and the journal file,
never the client's opinion of either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from securetrade.core import IntentState, JournalStore, derive_client_order_id
from securetrade.core.journal import is_ours
from securetrade.models import Fill
from securetrade.sim import Simulator
from securetrade.sim.engine import SimOrder

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
    fills: list[str] = field(default_factory=list)  # keys whose recorded fills are wrong
    orders: int = 0  # orders at the venue for these keys

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.untracked or self.unknown or self.fills)


def judge(
    sim: Simulator,
    journal: JournalStore,
    account: str,
    keys: Iterable[str],
    *,
    venue: str = "binance",
    may_be_missing: Iterable[str] = (),
    fills_complete: Iterable[str] = (),
) -> Verdict:
    """Count what the oracle forbids. ``may_be_missing``: keys whose process died before
    their claim commit (then the venue must hold nothing for them either).
    ``fills_complete``: keys whose fills were all read from the venue, so the recorded
    fills must add up to the venue's executed quantity (item 5); for the other keys they
    must add up to no more than it."""
    verdict = Verdict()
    missing_ok = set(may_be_missing)
    complete = set(fills_complete)
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
        if not _fills_agree(journal.fills(cid), held, complete=key in complete):
            verdict.fills.append(key)
    sim_account = sim.account_of(account)  # the SDK's account is the key id
    with sim.market.lock:
        ours = [
            o
            for o in sim.market.orders.values()
            if o.account == sim_account and is_ours(o.client_order_id)
        ]
    verdict.untracked = [  # a purged intent's successor is its tombstone
        o.client_order_id
        for o in ours
        if journal.get(o.client_order_id) is None and journal.tombstone(o.client_order_id) is None
    ]
    return verdict


def _fills_agree(recorded: list[Fill], held: list[SimOrder], *, complete: bool) -> bool:
    """Item 5: each recorded fill is a venue trade of this order with its quantity, no
    trade id twice, and the sum is the venue's executed quantity (at most, if partial)."""
    venue = {str(trade_id): qty for order in held for _, qty, trade_id in order.fills}
    ids = [f.trade_id for f in recorded]
    if len(ids) != len(set(ids)):
        return False
    if any(f.trade_id not in venue or venue[f.trade_id] != f.quantity for f in recorded):
        return False
    total = sum((f.quantity for f in recorded), Decimal(0))
    executed = sum((o.filled for o in held), Decimal(0))
    return total == executed if complete else total <= executed


def assert_oracle(
    sim: Simulator,
    journal: JournalStore,
    account: str,
    keys: Iterable[str],
    *,
    may_be_missing: Iterable[str] = (),
    fills_complete: Iterable[str] = (),
) -> Verdict:
    """``judge``, then fail with the figures unless everything holds."""
    verdict = judge(
        sim, journal, account, keys, may_be_missing=may_be_missing, fills_complete=fills_complete
    )
    assert verdict.ok, verdict
    return verdict


def busiest(events: Sequence[tuple[float, int]], seconds: float) -> int:
    """The most units any window (t - seconds, t] of ``events`` holds: what the venue's
    rate limit judges, read from its own arrival log."""
    ordered = sorted(events)
    best = total = first = 0
    for stamp, units in ordered:
        total += units
        while ordered[first][0] <= stamp - seconds:
            total -= ordered[first][1]
            first += 1
        best = max(best, total)
    return best
