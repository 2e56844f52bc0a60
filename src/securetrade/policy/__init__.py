"""Pre-trade policy, anomaly detection and the kill switch: should this be done at all?

Rules are checked before any byte is sent (:mod:`.rules`); the client's own activity is
watched for signs of a runaway bot or a stolen key (:mod:`.anomaly`); one shared switch
stops every order everywhere it reaches (:mod:`.killswitch`).
"""

from .anomaly import (
    Activity,
    Alert,
    AnomalyMonitor,
    CancelReplaceLoop,
    NewSymbol,
    OrderRateSpike,
    RejectionBurst,
    Severity,
    SizeOutlier,
    WithdrawalAttempt,
    default_detectors,
)
from .killswitch import (
    KillState,
    KillSwitch,
    MemorySwitchStore,
    RedisSwitchStore,
    SqliteSwitchStore,
)
from .rules import Admission, Decision, Policy, ReferencePrice

__all__ = [
    "Activity",
    "Admission",
    "Alert",
    "AnomalyMonitor",
    "CancelReplaceLoop",
    "Decision",
    "KillState",
    "KillSwitch",
    "MemorySwitchStore",
    "NewSymbol",
    "OrderRateSpike",
    "Policy",
    "RedisSwitchStore",
    "ReferencePrice",
    "RejectionBurst",
    "Severity",
    "SizeOutlier",
    "SqliteSwitchStore",
    "WithdrawalAttempt",
    "default_detectors",
]
