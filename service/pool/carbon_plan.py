"""Production's side of the one carbon decision engine (`greentrainer_carbon.planner`): the
forecaster of a region (the deployment's provider chain pointed at it, and the database's
history), the energy model of the settings, a job's spec and its finished epochs from its rows.
The API (budget check at submission), the dispatcher (when a job starts) and the worker (at each
epoch boundary: run on, or pause for a cleaner hour) all build their planner here; the simulator
builds the same planner over a replayed trace."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.config import CarbonSettings, region_chain
from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.errors import BudgetInfeasibleError, SchedulerError
from greentrainer_carbon.forecaster import REFERENCE_SLOTS, ChainSource, Forecaster
from greentrainer_carbon.planner import EpochDone, JobSpec, Planner
from greentrainer_carbon.providers.chain import ProviderChain
from greentrainer_carbon.readings import FallbackEvent
from greentrainer_carbon.rho_policy import RhoPolicyKind
from service.errors import InvalidInput
from service.models import Dataset, JobEpoch
from service.pool.intensity import DbHistory, estimated_full_epoch_s, fitted_energy_model
from service.settings import Settings

PLAN_EVENT = "carbon_plan"


def energy_model(carbon: CarbonSettings) -> EnergyModel:
    return EnergyModel(host_w=carbon.energy_host_w, compute_w=carbon.energy_compute_w,
                       overhead_s=carbon.energy_overhead_s, resume_s=carbon.energy_resume_s)


def done_epochs(rows: Iterable[JobEpoch]) -> list[EpochDone]:
    """A job's recorded epochs as the planner reads them (in epoch order)."""
    return [EpochDone(row.epoch_index, row.rho, row.created_at - timedelta(seconds=row.wall_seconds),
                      row.wall_seconds, row.kg_co2)
            for row in sorted(rows, key=lambda r: r.epoch_index)]


class CarbonPlanning:
    """One process's planners: a provider chain per region, kept (their caches spare the
    providers), and the shared history in the database. Thread-safe."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        self.history = DbHistory(factory)
        self.clock = settings.carbon.now
        self._chains: dict[str, ProviderChain] = {}
        self._lock = threading.Lock()

    def region(self, region: str | None) -> str:
        return region or self.settings.carbon.pool_region

    def chain(self, region: str | None) -> ProviderChain:
        key = self.region(region)
        with self._lock:
            if key not in self._chains:
                self._chains[key] = region_chain(self.settings.carbon, region)
            return self._chains[key]

    @property
    def energy(self) -> EnergyModel:
        return energy_model(self.settings.carbon)

    def forecaster(self, region: str | None) -> Forecaster:
        return Forecaster(ChainSource(self.chain(region)), self.history, self.region(region),
                          min_horizon_slots=REFERENCE_SLOTS)

    def now(self) -> datetime:
        """The clock carbon decisions read (`GREENTRAINER_CARBON__CLOCK`, the real one unless a
        test accelerates it)."""
        return self.clock()

    def planner(self, n_epochs: int, policy: Mapping[str, Any], region: str | None,
                full_epoch_s: float, energy: EnergyModel | None = None) -> Planner:
        """A job's planner; ``energy``: the model fitted for its GPU class, else the assumed."""
        spec = JobSpec(n_epochs, policy, full_epoch_s, energy or self.energy)
        return Planner(spec, self.forecaster(region))

    def fallbacks(self, planner: Planner) -> list[FallbackEvent]:
        """The provider fallbacks the planner's last forecast met (a provider skipped)."""
        return planner.forecaster.last_events()

    def close(self) -> None:
        with self._lock:
            for chain in self._chains.values():
                chain.close()
            self._chains.clear()


class BudgetFeasibility:
    """The API's submission check of a CO2 budget (a `service.jobs.JobCheck`): refused with a
    422 naming the least CO2 the cheapest feasible schedule needs and its rho; a feasible budget
    returns the plan, recorded on the job as a ``carbon_plan`` event."""

    def __init__(self, planning: CarbonPlanning) -> None:
        self.planning = planning

    def __call__(self, session: Session, team_id: str, request: Any) -> dict[str, Any] | None:
        policy = request.rho_policy.model_dump(mode="json")
        if policy.get("type") != RhoPolicyKind.CARBON_AWARE or policy.get("co2_budget_kg") is None:
            return None
        examples = session.scalar(select(Dataset.row_count).where(
            Dataset.id == request.training_dataset)) or 0
        settings = self.planning.settings
        full_s = estimated_full_epoch_s(session, request.gpu_class, request.model, int(examples),
                                        settings.pool.default_epoch_seconds)
        # The energy model the worker will plan with: fitted from the class's measured epochs.
        energy = fitted_energy_model(session, request.gpu_class, self.planning.energy)
        planner = self.planning.planner(request.hyperparameters.epochs, policy,
                                        policy.get("region"), full_s, energy)
        try:
            check = planner.check_budget(self.planning.now())
        except BudgetInfeasibleError as exc:
            raise InvalidInput(f"rho_policy.co2_budget_kg: {exc}",
                               field="rho_policy.co2_budget_kg") from None
        except SchedulerError as exc:  # no intensity known at all: the budget cannot be checked
            raise InvalidInput(f"rho_policy.co2_budget_kg: cannot be checked now ({exc})",
                               field="rho_policy.co2_budget_kg") from None
        return {"minimum_kg_co2": check.minimum_kg_co2, "rho": check.rho,
                "co2_budget_kg": policy["co2_budget_kg"], "full_epoch_seconds": full_s,
                "planned_starts": [s.isoformat() for s in check.planned_starts],
                "energy_model": energy.to_dict(),
                "forecast_sources_hours": check.sources}
