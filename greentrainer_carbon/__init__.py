"""The carbon package: grid carbon intensity -> when each epoch of a job runs and at which rho,
and the simulator that replays a trace through that same decision engine.

Pure: no database, queue or web framework; its only I/O is HTTP to the carbon-intensity
providers. The worker, the pool's dispatcher, the API's budget check and `greentrainer simulate`
all decide through one `Planner`:

    forecaster = Forecaster(ChainSource(build_chain(settings.carbon)), history, region)
    planner = Planner(JobSpec(n_epochs, rho_policy, full_epoch_s, energy_model), forecaster)
    decision = planner.decide(now, epochs_done)   # run now at decision.rho, or wait until
                                                  # decision.start_at; decision.reason, .sources
"""

from greentrainer_carbon.config import CarbonSettings, build_chain, region_chain
from greentrainer_carbon.energy import EnergyModel
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
from greentrainer_carbon.forecaster import ChainSource, Forecaster, SourcedForecast
from greentrainer_carbon.planner import Decision, EpochDone, JobSpec, Planner
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.readings import CarbonReading, FallbackEvent
from greentrainer_carbon.windows import WindowChoice, choose_start, estimate_duration_s

__all__ = [
    "AllProvidersFailed",
    "BudgetExhaustedError",
    "BudgetInfeasibleError",
    "CarbonReading",
    "CarbonSettings",
    "ChainSource",
    "Decision",
    "EnergyModel",
    "EpochDone",
    "FallbackEvent",
    "Forecaster",
    "JobSpec",
    "Planner",
    "PolicyError",
    "ProviderError",
    "RhoBounds",
    "SchedulerError",
    "SourcedForecast",
    "TraceError",
    "WindowChoice",
    "WindowError",
    "build_chain",
    "choose_start",
    "estimate_duration_s",
    "region_chain",
]
