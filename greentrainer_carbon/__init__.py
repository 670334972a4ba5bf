"""The carbon package: grid carbon intensity -> per-epoch rho and green windows, and the simulator.

Pure: no database, no queue, no web framework; its only I/O is HTTP to the carbon-intensity
providers. The worker, the pool's scheduler loop and `greentrainer simulate` all use it:

    chain = build_chain(settings.carbon)                    # the service's carbon settings
    outlook = ChainOutlook(chain)
    schedule = CarbonAwareRhoSchedule(RhoBounds(0.4, 1.0), n_epochs, outlook, epoch_hours)
    rho, reading = schedule.rho_for_epoch(epoch_index, now)
    event = schedule.last_event                             # "provider X failed, used Y", or None
"""

from greentrainer_carbon.config import CarbonSettings, build_chain, region_chain
from greentrainer_carbon.errors import (
    AllProvidersFailed,
    BudgetExhaustedError,
    BudgetInfeasibleError,
    PolicyError,
    ProviderError,
    SchedulerError,
    TraceError,
    WindowError,
)
from greentrainer_carbon.outlook import ChainOutlook
from greentrainer_carbon.policy import RhoBounds, check_budget_feasible
from greentrainer_carbon.readings import CarbonReading, FallbackEvent
from greentrainer_carbon.schedule import (
    BudgetRhoSchedule,
    CarbonAwareRhoSchedule,
    ExplicitRhoSchedule,
    FixedRhoSchedule,
    RhoSchedule,
)
from greentrainer_carbon.windows import WindowChoice, choose_start, estimate_duration_s

__all__ = [
    "AllProvidersFailed",
    "BudgetExhaustedError",
    "BudgetInfeasibleError",
    "BudgetRhoSchedule",
    "CarbonAwareRhoSchedule",
    "CarbonReading",
    "CarbonSettings",
    "ChainOutlook",
    "ExplicitRhoSchedule",
    "FallbackEvent",
    "FixedRhoSchedule",
    "PolicyError",
    "ProviderError",
    "RhoBounds",
    "RhoSchedule",
    "SchedulerError",
    "TraceError",
    "WindowChoice",
    "WindowError",
    "build_chain",
    "check_budget_feasible",
    "choose_start",
    "estimate_duration_s",
    "region_chain",
]
