"""The I/O-free core: flows of effects, and the idempotency journal."""

from .flows import Core, Flow, RecoveryReport, Send, Settings, Wait
from .journal import (
    Intent,
    IntentState,
    Journal,
    JournalError,
    JournalStore,
    derive_client_order_id,
)
from .redis_journal import RedisJournal
from .retry import RetryPolicy

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
