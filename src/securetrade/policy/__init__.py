"""Pre-trade policy: hard limits and a kill switch, checked before any I/O."""

from .rules import KillSwitch, Policy

__all__ = ["KillSwitch", "Policy"]
