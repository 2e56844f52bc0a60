"""The I/O-free core: the order state machine, the flows of effects, and the journal.

Modules, lowest first: :mod:`.states` (the order's life), :mod:`.journal` (on its layers
:mod:`.journal_file` and :mod:`.journal_durability`) and :mod:`.redis_journal` (stores that
enforce it), :mod:`.effects` (what flows ask drivers to do), :mod:`.settings`, then the
flows, each layer on the one before: :mod:`.pipeline` (one request), :mod:`.reads`,
:mod:`.resolution`, :mod:`.recovery`, :mod:`.orders` (``Core``).
"""

from typing import TYPE_CHECKING

from .effects import Call, Flow, Resource, Send, Wait
from .journal import (
    Journal,
    JournalError,
    JournalStore,
    derive_client_order_id,
)
from .orders import Core
from .recovery import RecoveryReport
from .retry import RetryPolicy
from .settings import Settings
from .states import Intent, IntentState, View

if TYPE_CHECKING:
    from .redis_journal import RedisJournal
else:  # loaded on first use (securetrade._lazy): only a Redis-shared journal needs it
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"RedisJournal": ".redis_journal"})

__all__ = [
    "Call",
    "Core",
    "Flow",
    "Intent",
    "IntentState",
    "Journal",
    "JournalError",
    "JournalStore",
    "RecoveryReport",
    "RedisJournal",
    "Resource",
    "RetryPolicy",
    "Send",
    "Settings",
    "View",
    "Wait",
    "derive_client_order_id",
]
