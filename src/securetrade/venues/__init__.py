"""Venue adapters. Each is a table-driven object fulfilling :class:`venues.base.Venue`.

Adapters are found by name, and loaded only when first asked for, so a bot pays for the
venues it uses and nothing else:

* the built-in ones (``binance``, ``kraken``, and the brokers ``alpaca``, ``oanda``);
* families named ``prefix:rest`` (``ccxt:bybit``), whose factory gets ``rest``;
* third-party adapters, registered under the entry point group ``securetrade.venues``.
  The entry point names the venue and points at an adapter object, or at a callable
  that returns one (a class or a factory)::

      [project.entry-points."securetrade.venues"]
      acme = "acme_securetrade:ACME"
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .._checks import shown, text
from ..errors import InvalidRequest
from .base import Endpoint, ErrorRule, Freshness, Op, Outcome, Venue, Verdict

__all__ = [
    "ENTRY_POINT_GROUP",
    "Endpoint",
    "ErrorRule",
    "Freshness",
    "Op",
    "Outcome",
    "Venue",
    "Verdict",
    "available_venues",
    "get_venue",
]

ENTRY_POINT_GROUP = "securetrade.venues"

# name -> "module:attribute", imported on first use.
_BUILTIN = {
    "binance": "securetrade.venues.binance:BINANCE",
    "kraken": "securetrade.venues.kraken:KRAKEN",
    "alpaca": "securetrade.venues.alpaca:ALPACA",
    "oanda": "securetrade.venues.oanda:OANDA",
}
# "prefix:rest" names -> a factory called with ``rest``. The ccxt transport adds itself here.
_FAMILIES: dict[str, str] = {"ccxt": "securetrade.venues.ccxt:CcxtVenue"}

_loaded: dict[str, Venue] = {}
_lock = threading.Lock()


def get_venue(name: str) -> Venue:
    """The adapter registered under ``name`` (built in, a family, or an entry point)."""
    venue = _loaded.get(text("venue name (such as 'binance')", name))
    if venue is not None:
        return venue
    with _lock:
        venue = _loaded.get(name)
        if venue is None:
            venue = _load(name)
            if venue.name != name:
                raise InvalidRequest(
                    f"the adapter registered as {shown(name)} calls itself {venue.name!r}"
                )
            _loaded[name] = venue
    return venue


def available_venues() -> list[str]:
    """Names ``get_venue`` can load now (families list their prefix, e.g. ``ccxt:*``)."""
    names = set(_BUILTIN) | {f"{prefix}:*" for prefix in _FAMILIES}
    names.update(ep.name for ep in _entry_points())
    return sorted(names)


def _load(name: str) -> Venue:
    if name in _BUILTIN:
        return _resolve(_import(_BUILTIN[name]), None)
    prefix, colon, rest = name.partition(":")
    if colon and prefix in _FAMILIES:
        return _resolve(_import(_FAMILIES[prefix]), rest)
    for entry in _entry_points():
        if entry.name == name:
            return _resolve(entry.load(), None)
    known = ", ".join(available_venues())
    raise InvalidRequest(f"unknown venue {shown(name)} (known: {known})")


def _import(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _resolve(obj: Any, rest: str | None) -> Venue:
    """An adapter object as is; a class or factory is called (with ``rest`` for a family)."""
    if rest is not None:
        obj = obj(rest)
    elif isinstance(obj, type) or (callable(obj) and not hasattr(obj, "endpoints")):
        obj = obj()
    for required in ("name", "endpoints", "prepare", "interpret"):
        if not hasattr(obj, required):
            raise InvalidRequest(
                f"{shown(obj)} is not a venue adapter: it has no {shown(required)}"
            )
    venue: Venue = obj
    return venue


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))
