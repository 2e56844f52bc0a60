"""Client-side rate limiting: never send what the venue would count as over its limits."""

from .limiter import RateLimit, RateLimiter

__all__ = ["RateLimit", "RateLimiter"]
