"""Personal data: tagged once, sealed in the audit trail, exported, erased by shredding keys.

See docs/privacy.md for the duties each part helps with (GDPR, CCPA/CPRA).
"""

from .retention import RetentionPolicy, parse_period
from .sealed import ERASED, OpenedRecord, PersonalData
from .service import Privacy
from .tags import (
    Category,
    Personal,
    PersonalDataPolicy,
    personal,
    personal_fields,
    pseudonym,
    truncate_ip,
)
from .vault import DataKey, DataKeys, PrivacyKeys

__all__ = [
    "ERASED",
    "Category",
    "DataKey",
    "DataKeys",
    "OpenedRecord",
    "Personal",
    "PersonalData",
    "PersonalDataPolicy",
    "Privacy",
    "PrivacyKeys",
    "RetentionPolicy",
    "parse_period",
    "personal",
    "personal_fields",
    "pseudonym",
    "truncate_ip",
]
