"""Carbon scheduler: grid carbon intensity -> per-epoch rho, green windows, fair dispatch.

A pure core (policy, windows, forecast, fairness, simulator) with thin I/O around it (providers).
The worker asks a `RhoSchedule` for rho at each epoch boundary:

    chain = build_chain()                                   # GREENTRAINER_* settings
    outlook = ChainOutlook(chain)
    schedule = CarbonAwareRhoSchedule(RhoBounds(0.4, 1.0), n_epochs, outlook, epoch_hours)
    rho, reading = schedule.rho_for_epoch(epoch_index, now)
    event = schedule.last_event                             # "provider X failed, used Y", or None
"""

from .errors import (
    AllProvidersFailed,
    BudgetExhaustedError,
    BudgetInfeasibleError,
    DispatchError,
    PolicyError,
    ProviderError,
    SchedulerError,
    TraceError,
    WindowError,
)
from .fairness import Dispatch, QueuedJob, TeamUsage, order_dispatch
from .outlook import ChainOutlook, TraceOutlook
from .policy import RhoBounds, check_budget_feasible
from .readings import CarbonReading, FallbackEvent
from .schedule import (
    BudgetRhoSchedule,
    CarbonAwareRhoSchedule,
    ExplicitRhoSchedule,
    FixedRhoSchedule,
    RhoSchedule,
)
from .settings import SchedulerSettings, build_chain
from .windows import WindowChoice, choose_start, estimate_duration_s

__all__ = [
    "AllProvidersFailed",
    "BudgetExhaustedError",
    "BudgetInfeasibleError",
    "BudgetRhoSchedule",
    "CarbonAwareRhoSchedule",
    "CarbonReading",
    "ChainOutlook",
    "Dispatch",
    "DispatchError",
    "ExplicitRhoSchedule",
    "FallbackEvent",
    "FixedRhoSchedule",
    "PolicyError",
    "ProviderError",
    "QueuedJob",
    "RhoBounds",
    "RhoSchedule",
    "SchedulerError",
    "SchedulerSettings",
    "TeamUsage",
    "TraceError",
    "TraceOutlook",
    "WindowChoice",
    "WindowError",
    "build_chain",
    "check_budget_feasible",
    "choose_start",
    "estimate_duration_s",
    "order_dispatch",
]
