"""The I/O-free core: flows of effects, and the idempotency journal."""

from typing import TYPE_CHECKING

from .flows import Core, Flow, RecoveryReport, Send, Settings, Wait
from .journal import (
    Intent,
    IntentState,
    Journal,
    JournalError,
    JournalStore,
    derive_client_order_id,
)
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .redis_journal import RedisJournal
else:  # loaded on first use (securetrade._lazy): only a Redis-shared journal needs it
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"RedisJournal": ".redis_journal"})

__all__ = [
    "Core",
    "Flow",
    "Intent",
    "IntentState",
    "Journal",
    "JournalError",
    "JournalStore",
    "RecoveryReport",
    "RedisJournal",
    "RetryPolicy",
    "Send",
    "Settings",
    "Wait",
    "derive_client_order_id",
]
