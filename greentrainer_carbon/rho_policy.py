"""The rho policies a job may choose, and the schedule each one becomes: the one place their
names live (the API's validation, the dashboard's form, the worker and the simulator read them).

    fixed          {"type": "fixed", "rho": 0.6}                     one rho for every epoch
    schedule       {"type": "schedule", "rhos": [0.5, 0.7]}          one rho per epoch
    carbon-aware   {"type": "carbon-aware", "rho_min", "rho_max",    rho from the grid's intensity
                    "region", "deadline", "co2_budget_kg"}           (and a CO2 budget)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.schedule import (
    CarbonAwareRhoSchedule,
    ExplicitRhoSchedule,
    FixedRhoSchedule,
    Outlook,
    RhoSchedule,
)

#: The product's default rho (a fixed policy): docs/core-training.md says how it was chosen.
DEFAULT_RHO = 0.6


class RhoPolicyKind(StrEnum):
    FIXED = "fixed"
    SCHEDULE = "schedule"
    CARBON_AWARE = "carbon-aware"


def build_schedule(policy: Mapping[str, Any], n_epochs: int, outlook: Any,
                   epoch_hours: float) -> RhoSchedule:
    """The schedule of a job's rho policy (as the API validated and stored it). A CO2 budget
    starts carbon-aware; `greentrainer_carbon.job_policy.JobRho` switches it to the budget
    schedule once the energy of an epoch is measured. Raises SchedulerError for an unknown type."""
    kind = policy.get("type")
    if kind == RhoPolicyKind.FIXED:
        return FixedRhoSchedule(float(policy["rho"]), n_epochs, outlook, epoch_hours)
    if kind == RhoPolicyKind.SCHEDULE:
        return ExplicitRhoSchedule([float(r) for r in policy["rhos"]], outlook, epoch_hours)
    if kind == RhoPolicyKind.CARBON_AWARE:
        bounds = RhoBounds(float(policy["rho_min"]), float(policy["rho_max"]))
        return CarbonAwareRhoSchedule(bounds, n_epochs, outlook, epoch_hours, rho_target=None)
    raise SchedulerError(f"rho_policy.type {kind!r} is not one of "
                         f"{', '.join(k.value for k in RhoPolicyKind)}")


__all__ = ["DEFAULT_RHO", "Outlook", "RhoPolicyKind", "build_schedule"]
