"""RFC 3339 times as the brokers write them (Alpaca, OANDA): nanoseconds, ``Z`` or an
offset. Python's ``fromisoformat`` reads at most microseconds (and, before 3.11, only
some layouts), so the fraction is cut to six digits first."""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["parse_time"]

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(text: str) -> datetime:
    """An aware datetime; ValueError for a time without its offset or not a time (the
    parsers that call it turn that into an AmbiguousOutcome)."""
    text = str(text).replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time without its offset")
    return moment
