"""The record layer: what happened, with secrets redacted, in a chain that shows tampering."""

from .events import AuditLog, Event
from .trail import AuditKey, AuditTrail, Problem, Record, VerifyReport, verify_path

__all__ = [
    "AuditKey",
    "AuditLog",
    "AuditTrail",
    "Event",
    "Problem",
    "Record",
    "VerifyReport",
    "verify_path",
]
