"""Venue adapters. Each is a table-driven object fulfilling :class:`venues.base.Venue`."""

from __future__ import annotations

from ..errors import InvalidRequest
from .base import Endpoint, Op, Outcome, Venue, Verdict
from .binance import BINANCE

__all__ = ["Endpoint", "Op", "Outcome", "Venue", "Verdict", "get_venue"]

_VENUES: dict[str, Venue] = {BINANCE.name: BINANCE}


def get_venue(name: str) -> Venue:
    """The adapter registered under ``name``."""
    try:
        return _VENUES[name]
    except KeyError:
        known = ", ".join(sorted(_VENUES))
        raise InvalidRequest(f"unknown venue {name!r} (known: {known})") from None
