"""The record layer: what happened, with secrets redacted."""

from .events import AuditLog, Event

__all__ = ["AuditLog", "Event"]
