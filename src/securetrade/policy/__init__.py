"""Pre-trade policy, anomaly detection and the kill switch: should this be done at all?

Rules are checked before any byte is sent (:mod:`.rules`); the client's own activity is
watched for signs of a runaway bot or a stolen key (:mod:`.anomaly`); one shared switch
stops every order everywhere it reaches (:mod:`.killswitch`).
"""

from typing import TYPE_CHECKING

from .killswitch import (
    KillState,
    KillSwitch,
    MemorySwitchStore,
    RedisSwitchStore,
    SqliteSwitchStore,
)
from .rules import Admission, Decision, Policy, ReferencePrice

if TYPE_CHECKING:
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
else:  # loaded on first use (securetrade._lazy): a client watches activity only when asked
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        dict.fromkeys(
            (
                "Activity",
                "Alert",
                "AnomalyMonitor",
                "CancelReplaceLoop",
                "NewSymbol",
                "OrderRateSpike",
                "RejectionBurst",
                "Severity",
                "SizeOutlier",
                "WithdrawalAttempt",
                "default_detectors",
            ),
            ".anomaly",
        ),
    )

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
