"""The record layer: what happened, with secrets redacted, in a chain that shows tampering."""

from typing import TYPE_CHECKING

from .events import AuditLog, Event

if TYPE_CHECKING:
    from .trail import AuditKey, AuditTrail, Problem, Record, VerifyReport, verify_path
else:  # loaded on first use (securetrade._lazy): the in-memory log needs no trail
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        dict.fromkeys(
            ("AuditKey", "AuditTrail", "Problem", "Record", "VerifyReport", "verify_path"),
            ".trail",
        ),
    )

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
