"""Reconciliation: the state each follower should be in, against the state it is in.

Copying events can miss (a breaker was open, an IOC open expired, the engine was down, a
close raced an open); reconciliation is the catch-up. From a :class:`LeaderSnapshot` (what
the leader holds now) and a :class:`FollowerView` (what one follower holds, what its copy
orders filled and what they still have open), :func:`reconcile_plan` decides, with no I/O,
what brings the follower back in line, as a :class:`Divergence`.

- The follower's *copied position* is what its copy orders filled (net of fees in the
  base asset) and it still holds: its other holdings are never touched.
- A follower holding less than its copies left it closed (part of) the position by hand:
  that is recorded as an override and the position is never reopened by reconciliation
  (until the leader itself is flat in that symbol).
- A missing open goes out as an IOC limit at the snapshot's price moved by the follower's
  slippage cap; an excess goes out as a market close (closes always go through).
- The idempotency key of a correction is the copy key of ``reconcile:<snapshot>:<symbol>``:
  the same snapshot reconciled twice, on one host or several, places one order at most,
  and a later snapshot finds the correction in the follower's copied position.

Long-only followers (``Follower.long_only``, the default: a spot account, or one the
platform does not let short) never get a correction that would take them below zero: a
leader that is short (a negative position, on a margin or futures venue) sizes their
target at zero, and a sell is cut to the base they have free (what their own open orders
lock stays locked). Each such cut is reported on the :class:`Divergence` (``clamped``,
reason ``long_only``). A follower with ``long_only=False`` mirrors the short: its target
is the leader's position scaled, negative included, and its position is what its copy
orders filled, net (a manual buy-back of a short is not detected: the base it holds
says nothing of what it owes).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from .._checks import instance, text, whole
from ..errors import InvalidRequest
from ..keys import Secret
from ..models import (
    Instrument,
    LimitOrder,
    MarketOrder,
    OrderRequest,
    Side,
    TimeInForce,
    to_decimal,
)
from .model import CopyIntent, Follower, SizingMode
from .plan import copy_key

__all__ = ["Divergence", "FollowerView", "LeaderSnapshot", "ReconcileReport", "reconcile_plan"]

_BPS = Decimal(10_000)
#: Sizing modes that size each copy on its own (one copy per leader open), not in
#: proportion to the leader's position.
_PER_EVENT = frozenset(
    {SizingMode.FIXED_QUANTITY, SizingMode.FIXED_NOTIONAL, SizingMode.RISK_PERCENT}
)


@dataclass(frozen=True, slots=True)
class LeaderSnapshot:
    """What the leader holds now, per symbol (0 for a symbol it copied and closed; less than
    0 for a short, on a margin or futures venue).

    ``id`` names the snapshot: reconciling the same snapshot again derives the same keys,
    so it places nothing new. ``prices`` are the leader's prices for the symbols it holds
    (the opens' reference); ``equity`` is needed by proportional sizing only.
    """

    id: str
    positions: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]
    at_ms: int
    equity: Decimal | None = None
    venue: str = "binance"

    def __post_init__(self) -> None:
        text("LeaderSnapshot.id", self.id)
        whole("LeaderSnapshot.at_ms", self.at_ms, 0)
        if not isinstance(self.positions, Mapping) or not isinstance(self.prices, Mapping):
            raise InvalidRequest("LeaderSnapshot.positions and .prices map symbols to amounts")
        positions = {}
        for symbol, amount in self.positions.items():
            value = to_decimal(amount, field=f"LeaderSnapshot.positions[{symbol!r}]")
            positions[text("LeaderSnapshot symbol", symbol)] = value
        prices = {}
        for symbol, amount in self.prices.items():
            value = to_decimal(amount, field=f"LeaderSnapshot.prices[{symbol!r}]")
            if value <= 0:
                raise InvalidRequest("LeaderSnapshot.prices must be greater than zero")
            prices[symbol] = value
        missing = [s for s, q in positions.items() if q != 0 and s not in prices]
        if missing:
            raise InvalidRequest(f"LeaderSnapshot needs a price for {', '.join(sorted(missing))}")
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "prices", prices)
        if self.equity is not None:
            object.__setattr__(
                self, "equity", to_decimal(self.equity, field="LeaderSnapshot.equity")
            )

    def event_id(self, symbol: str) -> str:
        """The pseudo-event a correction on ``symbol`` is recorded (and keyed) under (a
        symbol that is no text would name an event, "…:None", that no correction made)."""
        return f"reconcile:{self.id}:{text('symbol', symbol)}"


@dataclass(frozen=True, slots=True)
class FollowerView:
    """What reconciliation knows of one follower in one symbol (its venue's symbol).

    ``held``: the base asset the venue says it holds (free and locked); ``base_free``: the
    part of it not locked by open orders (None: unknown, ``held`` is used); ``copied``: the
    net base its copy orders filled; ``pending``: the signed quantity its copy orders
    still have open at the venue (a buy positive); ``overridden``: a manual close is on
    record.
    """

    instrument: Instrument | None
    held: Decimal
    copied: Decimal
    pending: Decimal = Decimal(0)
    equity: Decimal | None = None
    quote_free: Decimal | None = None
    overridden: bool = False
    base_free: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Divergence:
    """One follower in one symbol: where it should be, where it is, and what to do.

    ``action``: ``in_line`` (nothing to do), ``place`` (``intent`` brings it in line),
    ``override`` (a manual close, recorded now), ``skip`` (out of line, with ``reason``:
    ``manual_override``, ``balance``, ``risk_limit``, ``below_minimum``,
    ``unmapped_symbol``, ``unresolved``...). ``outcome`` is set when the correction was
    applied (``placed``, ``failed``...). ``clamped`` is how much base a long-only follower
    was not given, to stay at or above zero (its reason is then ``long_only`` unless
    another one applies).
    """

    follower_id: str
    symbol: str
    target: Decimal
    position: Decimal
    action: str
    reason: str = ""  # also ``equity_unknown``: proportional sizing without either equity
    intent: CopyIntent | None = None
    outcome: str | None = None
    clamped: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Every follower's divergences for one snapshot; ``applied`` says whether the
    corrections were placed or only proposed."""

    snapshot: LeaderSnapshot
    divergences: tuple[Divergence, ...]
    applied: bool
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """How many divergences call for each action (``in_line``, ``place``, ...)."""
        return dict(Counter(d.action for d in self.divergences))

    @property
    def clamped(self) -> list[Divergence]:
        """The divergences where a long-only follower was kept from going below zero."""
        return [d for d in self.divergences if d.clamped > 0]

    @property
    def proposals(self) -> list[CopyIntent]:
        """The orders that bring the followers in line: the ``intent`` of each divergence
        that has one."""
        return [d.intent for d in self.divergences if d.intent is not None]

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (d.follower_id, d.symbol, d.target, d.position, d.action, d.reason)
            )
            + "</tr>"
            for d in self.divergences[:200]
            if d.action != "in_line"
        )
        return (
            f"<p><b>reconcile {html.escape(self.snapshot.id)}</b> ({self.counts})</p><table>"
            "<tr><th>follower</th><th>symbol</th><th>target</th><th>position</th>"
            f"<th>action</th><th>reason</th></tr>{rows}</table>"
        )


def reconcile_plan(
    snapshot: LeaderSnapshot,
    follower: Follower,
    leader_symbol: str,
    symbol: str,
    view: FollowerView,
    *,
    secret: Secret,
) -> Divergence:
    """What brings ``follower`` in line with ``snapshot`` in ``leader_symbol`` (``symbol``
    on the follower's venue). Pure: the engine reads the view and applies the result."""
    instance("snapshot", snapshot, LeaderSnapshot, optional=False)
    instance("follower", follower, Follower, optional=False)
    text("leader_symbol", leader_symbol)
    text("symbol", symbol)
    instance("view", view, FollowerView, optional=False)
    rules = view.instrument
    position = max(Decimal(0), min(view.held, view.copied))
    if not follower.long_only and view.copied < 0:
        position = view.copied  # short: what its copies sold, net
    leader = snapshot.positions.get(leader_symbol, Decimal(0))
    clamped = Decimal(0)

    def result(action: str, reason: str = "", *, target: Decimal = Decimal(0)) -> Divergence:
        if clamped and not reason:
            reason = "long_only"
        return Divergence(follower.id, symbol, target, position, action, reason, clamped=clamped)

    if rules is None or not rules.trading:
        return result("skip", "unmapped_symbol")
    step = rules.step_size if rules.step_size > 0 else Decimal(0)
    target = _target(snapshot, follower, leader_symbol, leader, view, rules)
    if target is None:  # it cannot be sized: never read as "the follower should be flat"
        return result("skip", "equity_unknown")
    if follower.long_only and target < 0:  # the leader is short: a long-only one is flat
        target, clamped = Decimal(0), -target
    if view.overridden:
        if leader == 0:  # the leader is flat too: the override has served its purpose
            return result("in_line", "override_cleared", target=target)
        return result("skip", "manual_override", target=target)
    if view.copied > 0 and view.copied - view.held > step:
        # The follower holds less than its copies left it: it closed by hand.
        return result("override", f"holds {view.held} of {view.copied} copied", target=target)
    if follower.sizing.mode in _PER_EVENT and leader * (position + view.pending) > 0:
        # Sized per event, not by the leader's position: how many copies it should hold
        # cannot be told from the position, so one that holds some is left as it is.
        return result("in_line", "sized_per_event", target=position + view.pending)
    missing = target - position - view.pending
    if abs(missing) <= step or abs(missing) < rules.min_quantity:
        return result("in_line", target=target)
    key = copy_key(secret, snapshot.event_id(leader_symbol), follower.id, 0)
    order: OrderRequest
    if missing < 0:  # an excess: closes go through at market
        wanted = -missing
        if follower.long_only:  # never below zero, nor into what its own orders lock
            free = view.held if view.base_free is None else min(view.held, view.base_free)
            if wanted > free:
                clamped += wanted - max(free, Decimal(0))
                wanted = max(free, Decimal(0))
        quantity = _floor(wanted, step)
        if quantity <= 0 or quantity < rules.min_quantity:
            return result("skip", "below_minimum", target=target)
        order = MarketOrder(symbol=symbol, side=Side.SELL, quantity=quantity)
    else:
        price = snapshot.prices[leader_symbol]
        bound = _floor(price + price * follower.slippage_bps / _BPS, rules.tick_size)
        quantity = _floor(missing, step)
        notional = quantity * bound
        if (
            bound <= 0  # the leader's price is under one of this venue's ticks
            or quantity <= 0
            or quantity < rules.min_quantity
            or notional < rules.min_notional
        ):
            return result("skip", "below_minimum", target=target)
        if follower.max_notional is not None and notional > follower.max_notional:
            return result("skip", "risk_limit", target=target)
        if view.quote_free is not None and view.quote_free < notional:
            return result("skip", "balance", target=target)
        order = LimitOrder(
            symbol=symbol,
            side=Side.BUY,
            quantity=quantity,
            price=bound,
            time_in_force=TimeInForce.IOC,
        )
    intent = CopyIntent(follower.id, snapshot.event_id(leader_symbol), 0, order, key)
    reason = "long_only" if clamped else ""
    return Divergence(
        follower.id, symbol, target, position, "place", reason, intent, clamped=clamped
    )


def _target(
    snapshot: LeaderSnapshot,
    follower: Follower,
    leader_symbol: str,
    leader: Decimal,
    view: FollowerView,
    rules: Instrument,
) -> Decimal | None:
    """The follower's position for the leader's, by its sizing (None: the equity it
    needs is unknown): negative for a short leader. The modes sized per event give one
    copy's worth while the leader holds (used only when the follower holds none), none
    when it is flat."""
    if leader == 0:
        return Decimal(0)
    sign = 1 if leader > 0 else -1
    leader = abs(leader)
    mode, value = follower.sizing.mode, follower.sizing.value
    price = snapshot.prices[leader_symbol]
    needs_equity = mode in (SizingMode.PROPORTIONAL, SizingMode.RISK_PERCENT)
    if needs_equity and view.equity is None:
        return None
    equity = view.equity or Decimal(0)
    if mode is SizingMode.MULTIPLIER:
        raw = leader * value
    elif mode is SizingMode.PROPORTIONAL:
        if not snapshot.equity:
            return None
        raw = leader * equity / snapshot.equity * value
    elif mode is SizingMode.FIXED_QUANTITY:
        raw = value
    elif mode is SizingMode.FIXED_NOTIONAL:
        raw = value / price
    else:  # RISK_PERCENT of the follower's equity
        raw = equity * value / 100 / price
    target = _floor(raw, rules.step_size)
    if follower.max_position is not None:
        target = min(target, _floor(follower.max_position, rules.step_size))
    return sign * target


def _floor(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step
