"""The rho of each epoch of a job, asked from the scheduler at that epoch's start.

- ``{"type": "fixed", "rho"}`` and ``{"type": "schedule", "rhos"}`` are used as given;
- ``{"type": "carbon-aware", "rho_min", "rho_max", ...}`` asks `CarbonAwareRhoSchedule` with the
  live intensity from the configured provider chain.
With ``co2_budget_kg`` the first epoch runs carbon-aware and calibrates the energy of a
full-cost epoch on this GPU (kWh x full FLOPs / executed FLOPs); from then on
`BudgetRhoSchedule` chooses rho so the remaining epochs fit the remaining budget, and raises
`BudgetExhaustedError` when even rho_min no longer fits (the worker then stops the job early).
Every schedule also reports the live carbon reading (intensity, source) that the epoch's energy
is charged at, and the provider-fallback event when the chain had to skip a provider. A resumed
job restores the rho of its finished epochs first, so it keeps its decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from greentrainer_carbon.config import CarbonSettings, region_chain
from greentrainer_carbon.outlook import ChainOutlook
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.providers import ProviderChain
from greentrainer_carbon.readings import CarbonReading, FallbackEvent
from greentrainer_carbon.rho_policy import build_schedule
from greentrainer_carbon.schedule import (
    BudgetRhoSchedule,
    RhoSchedule,
)

log = logging.getLogger("greentrainer_carbon.job_policy")


@dataclass(frozen=True)
class EpochDecision:
    rho: float
    reading: CarbonReading | None
    fallback: FallbackEvent | None


class JobRho:
    """Callable ``epoch -> rho`` for the core's Trainer, remembering each epoch's decision."""

    def __init__(self, policy: Mapping[str, Any], n_epochs: int, epoch_hours: float = 1.0,
                 outlook: Any = None, carbon: CarbonSettings | None = None) -> None:
        """``outlook`` (what the schedules may know) defaults to the live provider chain of
        ``carbon`` (the deployment's carbon settings) pointed at the policy's region."""
        self._chain: ProviderChain | None = None
        if outlook is None:
            if carbon is None:
                raise ValueError("JobRho needs an outlook or the carbon settings to build one")
            self._chain = region_chain(carbon, policy.get("region"))
            outlook = ChainOutlook(self._chain)
        self.outlook = outlook
        self.schedule: RhoSchedule = build_schedule(policy, n_epochs, self.outlook, epoch_hours)
        self.decisions: dict[int, EpochDecision] = {}
        self.policy, self.n_epochs, self.epoch_hours = dict(policy), n_epochs, epoch_hours
        self.budget_kg: float | None = (float(policy["co2_budget_kg"])
                                        if policy.get("co2_budget_kg") else None)
        self.kg_by_epoch: dict[int, float] = {}

    def record_epoch(self, epoch: int, kg_co2: float | None,
                     energy_full_kwh_per_epoch: float | None) -> None:
        """After an epoch (or for each finished epoch of a resumed job): count its CO2 and, in
        budget mode, switch to the budget schedule once a full-cost epoch's energy is known."""
        if self.budget_kg is None or kg_co2 is None:
            return
        self.kg_by_epoch[epoch] = kg_co2
        if not isinstance(self.schedule, BudgetRhoSchedule) and energy_full_kwh_per_epoch:
            done = dict(self.schedule.decisions)  # type: ignore[attr-defined]
            bounds = RhoBounds(float(self.policy["rho_min"]), float(self.policy["rho_max"]))
            self.schedule = BudgetRhoSchedule(bounds, self.n_epochs, self.outlook,
                                              self.epoch_hours, energy_full_kwh_per_epoch,
                                              self.budget_kg)
            self.schedule.restore(done)
        if isinstance(self.schedule, BudgetRhoSchedule):
            for index, kg in self.kg_by_epoch.items():
                self.schedule.record_epoch(index, kg)

    def close(self) -> None:
        """Close the provider clients this schedule opened."""
        if self._chain is not None:
            self._chain.close()

    def restore(self, rho_by_epoch: Mapping[int, float]) -> None:
        if rho_by_epoch:
            self.schedule.restore(rho_by_epoch)  # type: ignore[attr-defined]

    def decide(self, epoch: int) -> EpochDecision:
        """The epoch's decision (asked once; later calls return the same one)."""
        if epoch not in self.decisions:
            rho, reading = self.schedule.rho_for_epoch(epoch, datetime.now(UTC))
            event = getattr(self.schedule, "last_event", None)
            self.decisions[epoch] = EpochDecision(float(rho), reading, event)
        return self.decisions[epoch]

    def __call__(self, epoch: int) -> float:
        return self.decide(epoch).rho
