"""Reconciling the journal with the venue: what did the last run (or a dead process) leave?

Recovery reads a snapshot of the unfinished intents and asks the venue about each one
nobody is working on. Its conclusions are ordinary transitions of :mod:`.states`, written
only if the row is still what the snapshot said: a live process that took an intent over
meanwhile (and perhaps sent a newer attempt) is never overwritten by a stale conclusion.
"""

from __future__ import annotations

import html
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._checks import flag, instance
from ..errors import UnresolvedOrder
from ..models import Order
from ..progress import progress
from ..ratelimit import Priority
from ..tables import Results
from ..venues.base import Op
from .effects import Flow, Resource, Wait
from .resolution import Resolution, StaleView
from .states import Intent, IntentState
from .store import owner_is_gone, process_token

__all__ = ["IN_FLIGHT", "RecoveryReport", "Recovery"]

log = logging.getLogger("securetrade")

#: Client order ids some client of this process is sending right now: not abandoned.
IN_FLIGHT: set[str] = set()
if hasattr(os, "register_at_fork"):
    # A forked child runs none of its parent's flows (only the forking thread goes on, with
    # a token of its own: see process_token): what they held in flight is not the child's.
    os.register_at_fork(after_in_child=IN_FLIGHT.clear)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What reconciling the journal with the venue found.

    ``resolved``: unfinished intents the venue knows, now recorded. ``not_placed``: client
    order ids proven never to have executed (the same idempotency key sends them again).
    ``unresolved``: ids the venue could not answer for; they need another look or a person.
    ``orphans``: open orders at the venue with this SDK's id prefix and no journal entry
    (another journal, or a lost one); reported, never adopted silently.
    """

    resolved: tuple[Order, ...] = ()
    not_placed: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    orphans: tuple[Order, ...] = ()

    def __repr__(self) -> str:
        return (
            f"RecoveryReport(resolved={len(self.resolved)}, not_placed={len(self.not_placed)}, "
            f"unresolved={len(self.unresolved)}, orphans={len(self.orphans)})"
        )

    def _repr_html_(self) -> str:
        """Each non-empty part as a table (Jupyter)."""
        parts = [f"<p><strong>{html.escape(repr(self))}</strong></p>"]
        for name in ("resolved", "orphans"):
            orders: tuple[Order, ...] = getattr(self, name)
            if orders:
                parts.append(f"<p>{name}</p>" + Results(orders)._repr_html_())
        for name in ("not_placed", "unresolved"):
            ids: tuple[str, ...] = getattr(self, name)
            if ids:
                rows = Results({"client_order_id": cid} for cid in ids)
                parts.append(f"<p>{name}</p>" + rows._repr_html_())
        return "".join(parts)


class Recovery(Resolution):
    """The submit gate and the reconciliation behind it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recovered = False
        self._recovering = False  # a thread or task of this client is reconciling now
        self._gate = threading.Lock()  # guards the two flags above across threads
        self._orphans: dict[str, Order] = {}  # venue orders recovery could not match
        self._lease_renewed: float | None = (
            None  # monotonic time of the last renewal; None: not held
        )

    def ready(self) -> Flow[None]:
        """The submit gate: no new order goes out before the journal is reconciled."""
        if self._recovered or not self.settings.recover_on_start:
            return
        yield from self.recover(once=True)

    def recover(self, *, once: bool = False) -> Flow[RecoveryReport]:
        """Match every unfinished intent of this account against the venue.

        Runs before this client's first order (unless ``Settings.recover_on_start`` is off)
        and may be called at any time. Intents a live owner is still working on are left to
        it. Reads made here are part of placing orders, so a trade-only key may make them.
        One reconciler per client at a time (threads and tasks wait for it), and one per
        account across processes (a lease in the journal). ``once``: only if no
        reconciliation of this client has finished yet (the submit gate).
        """
        flag("once", once)
        while True:
            with self._gate:
                if once and self._recovered:
                    return RecoveryReport()
                if not self._recovering:
                    self._recovering = True
                    break
            yield Wait(0.01)  # another thread or task of this client is reconciling
        try:
            report = yield from self._leased()
        except BaseException:
            with self._gate:
                self._recovering = False
            raise
        with self._gate:
            self._recovered, self._recovering = True, False
        yield from self.note(
            "journal.recovered",
            resolved=len(report.resolved),
            not_placed=len(report.not_placed),
            unresolved=len(report.unresolved),
            orphans=len(report.orphans),
        )
        return report

    def _leased(self) -> Flow[RecoveryReport]:
        """Reconcile under the account's lease. The lease is short
        (``Settings.recovery_lease``) and renewed at every step (:meth:`renew_lease`): a
        process that dies holding it frees the account within that time, while a live one,
        however slow, keeps it."""
        journal, account = self.journal, self.account
        lease = self.settings.recovery_lease
        while not (yield from self.perform(Resource.JOURNAL, journal.lease, account, lease)):
            yield Wait(0.05)
        self._lease_renewed = time.monotonic()
        try:
            report = yield from self._reconcile()
        except BaseException:
            self._lease_renewed = None
            journal.release(account)  # the flow may be closing: no effect can be yielded
            raise
        self._lease_renewed = None
        yield from self.perform(Resource.JOURNAL, journal.release, account)
        return report

    def renew_lease(self) -> Flow[None]:
        """Extend the reconciliation lease while this client holds it (a step of recovery,
        or of a resolution it waits for). Renewed after a quarter of its length at most,
        so a step never finds it expired unless that one step outlasted three quarters."""
        renewed = self._lease_renewed
        lease = self.settings.recovery_lease
        if renewed is None or time.monotonic() - renewed < lease / 4:
            return
        self._lease_renewed = time.monotonic()
        held = yield from self.perform(Resource.JOURNAL, self.journal.lease, self.account, lease)
        if not held:
            # This process was stopped past the lease and another took it. Its conclusions
            # are compare-and-set transitions (see .states): going on cannot undo the other's.
            log.warning("recovery of %s: lease lost to another process", self.account)

    def _reconcile(self) -> Flow[RecoveryReport]:
        journal = self.journal
        # The retention policy (old finished intents become tombstones), then what is open.
        yield from self.perform(Resource.JOURNAL, journal.purge)
        intents: list[Intent] = yield from self.perform(
            Resource.JOURNAL, journal.unfinished, self.account
        )
        yield from self.renew_lease()
        payload = yield from self._retrying(
            self.venue.endpoints[Op.OPEN_ORDERS], [], priority=Priority.ORDER
        )
        open_orders = self.venue.parse_orders(payload)
        held = {o.client_order_id: o for o in open_orders if o.client_order_id}
        self.checkpoint("recovery_snapshot")  # what follows may be stale: see .states
        resolved: list[Order] = []
        not_placed: list[str] = []
        unresolved: list[str] = []
        for intent in progress(intents, total=len(intents), desc="recovery", unit="intent"):
            cid = intent.client_order_id
            yield from self.renew_lease()
            if not self.abandoned(intent):
                continue  # its owner, alive, will settle it
            try:
                if intent.state is IntentState.PENDING and cid not in held:
                    # Recorded, never sent: the attempt commit precedes every send.
                    yield from self.conclude(
                        cid, IntentState.NOT_PLACED, intent.view, "stopped before sending"
                    )
                    not_placed.append(cid)
                    continue
                found = held.get(cid)
                if found is None:
                    try:
                        found = yield from self.resolve(
                            intent.symbol, cid, intent.deadline_ms, intent.view
                        )
                    except UnresolvedOrder:
                        unresolved.append(cid)
                        continue
                if found is None:
                    yield from self.conclude(
                        cid, IntentState.NOT_PLACED, intent.view, "absent after deadline"
                    )
                    not_placed.append(cid)
                else:
                    resolved.append((yield from self.settled(found, intent.idempotency_key)))
            except StaleView:
                continue  # taken over since the snapshot: its new owner settles it
        yield from self.renew_lease()
        ours = [cid for cid in held if self.venue.owns_client_order_id(cid)]
        known: set[str] = yield from self.perform(Resource.JOURNAL, journal.known, ours)
        orphans = tuple(held[cid] for cid in ours if cid not in known)
        self._orphans.update((o.client_order_id or "", o) for o in orphans)
        for orphan in orphans:
            log.warning(
                "orphan order %s on %s: it has this SDK's id prefix but no journal entry",
                orphan.client_order_id,
                orphan.symbol,
            )
            yield from self.note("order.orphan", client_order_id=orphan.client_order_id)
        return RecoveryReport(tuple(resolved), tuple(not_placed), tuple(unresolved), orphans)

    def abandoned(self, intent: Intent) -> bool:
        """True when no live owner is working on ``intent`` any more."""
        instance("intent", intent, Intent, optional=False)
        if intent.owner == process_token():
            return intent.client_order_id not in IN_FLIGHT
        if owner_is_gone(intent.owner):
            return True
        if intent.state is IntentState.PENDING:
            return time.time() - intent.updated_at > self.settings.owner_patience
        return intent.state is IntentState.UNKNOWN or self.clock.now_ms() > intent.deadline_ms
