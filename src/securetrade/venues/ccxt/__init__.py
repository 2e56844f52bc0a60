"""Any exchange ccxt supports, as ``venue="ccxt:<exchange id>"``, under every securetrade layer.

ccxt builds, signs and reads each request; the core decides whether, when and how it is
sent; the bytes go through ccxt's own HTTP stack on our pinned TLS. ccxt is imported only
when such a venue is asked for. See ``docs/ccxt.md`` for what holds on this path.
"""

from __future__ import annotations

from .venue import CcxtVenue

__all__ = ["CcxtVenue"]
