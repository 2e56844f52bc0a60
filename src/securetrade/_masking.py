"""The text a secret, and every value the redaction policy hides, shows as.

It sits in a module that imports nothing, below both of its users: ``keys.secret`` (which
imports ``errors``) and ``transport.redaction`` (which ``errors`` imports to redact its
messages), so neither depends on the other and the three form no cycle.
"""

from __future__ import annotations

__all__ = ["MASK"]

MASK = "********"
