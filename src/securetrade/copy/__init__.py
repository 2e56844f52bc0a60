"""Copy trading for platforms: one leader event, many followers, each order at most once.

- :mod:`.model`: :class:`LeaderEvent`, :class:`Follower`, :class:`Sizing`, and what a plan
  decides (:class:`CopyIntent`, :class:`Skip` with a :class:`SkipReason`).
- :mod:`.plan`: :func:`plan`, the pure decision for one follower (no I/O), and
  :func:`copy_key`, the follower's idempotency key (a keyed hash of event, follower, leg;
  :class:`CopyKeys` keys it once for a fan-out).
- :mod:`.engine`: :class:`CopyEngine`, the embedded fan-out over ``AsyncClient``, with a
  circuit breaker per follower (:mod:`.breaker`) and concurrency bounds per venue
  account and per egress IP.
- :mod:`.reconcile`: :func:`reconcile_plan`, the pure catch-up of one follower against a
  :class:`LeaderSnapshot` (``CopyEngine.reconcile`` reads and applies it).
- :mod:`.outbox` and :mod:`.report`: the durable record of events and outcomes.
- :mod:`.streams`: :class:`EventStream`, leader events on a Redis Stream for workers on
  several hosts (a consumer group; loaded on first use, it needs the ``redis`` extra).

See docs/copy-trading.md.
"""

from typing import TYPE_CHECKING

from .breaker import BreakerSettings
from .engine import CopyEngine
from .model import CopyIntent, Follower, LeaderEvent, Movement, Sizing, SizingMode, Skip, SkipReason
from .outbox import Outbox, Outcome
from .plan import CopyKeys, EventKeys, FollowerState, copy_key, follower_symbol, plan
from .reconcile import Divergence, FollowerView, LeaderSnapshot, ReconcileReport, reconcile_plan
from .report import EventReport

if TYPE_CHECKING:
    from .streams import EventStream, takeover_bound
else:  # loaded on first use: only several hosts need Redis
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__, {"EventStream": ".streams", "takeover_bound": ".streams"}
    )

__all__ = [
    "BreakerSettings",
    "CopyEngine",
    "CopyKeys",
    "CopyIntent",
    "Divergence",
    "EventKeys",
    "EventReport",
    "EventStream",
    "Follower",
    "FollowerState",
    "FollowerView",
    "LeaderEvent",
    "LeaderSnapshot",
    "Movement",
    "Outbox",
    "Outcome",
    "ReconcileReport",
    "Sizing",
    "SizingMode",
    "Skip",
    "SkipReason",
    "copy_key",
    "follower_symbol",
    "plan",
    "reconcile_plan",
    "takeover_bound",
]
