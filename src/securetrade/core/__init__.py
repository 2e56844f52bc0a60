"""The I/O-free core: flows of effects, and the idempotency journal."""

from .flows import Core, Flow, Send, Settings, Wait
from .journal import Intent, IntentState, Journal, derive_client_order_id

__all__ = [
    "Core",
    "Flow",
    "Intent",
    "IntentState",
    "Journal",
    "Send",
    "Settings",
    "Wait",
    "derive_client_order_id",
]
