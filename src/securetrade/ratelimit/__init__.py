"""Client-side rate limiting: never send what the venue would count as over its limits.

Limits per scope (IP, account, API key, instrument, pair) over exact sliding windows,
priorities with reserved headroom, the venue's own feedback (usage headers, 429, 418), and
one setting for where the windows live: :meth:`RateLimiter.in_memory`,
:meth:`RateLimiter.sqlite` or :meth:`RateLimiter.redis`. See docs/ratelimit.md.
"""

from .backend import Backend, Draw
from .chart import Limits
from .history import Series
from .limiter import RateLimiter
from .memory import MemoryBackend
from .model import (
    DEFAULT_SHARES,
    Caller,
    CostRule,
    LimitScope,
    Priority,
    RateLimit,
    Usage,
    cost_of,
    key_label,
)

__all__ = [
    "DEFAULT_SHARES",
    "Backend",
    "Caller",
    "CostRule",
    "Draw",
    "LimitScope",
    "Limits",
    "MemoryBackend",
    "Priority",
    "RateLimit",
    "RateLimiter",
    "Series",
    "Usage",
    "cost_of",
    "key_label",
]
