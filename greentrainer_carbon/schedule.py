"""Per-epoch rho schedules: what the worker calls at each epoch boundary.

    schedule.rho_for_epoch(epoch_index, now) -> (rho, reading)

`reading` is the live CarbonReading the decision used (None only for a schedule built without
an outlook); `schedule.last_event` holds the provider-fallback event of that call, if any.
Budget schedules also need `record_epoch(epoch_index, kg_co2)` after each epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from greentrainer_carbon.errors import PolicyError
from greentrainer_carbon.policy import (
    DEFAULT_GAIN,
    RhoBounds,
    budget_rho,
    check_budget_feasible,
    mean_preserving_rho,
    quantile_rank,
    quantile_rho,
    remaining_mean_rho,
)
from greentrainer_carbon.readings import CarbonReading, FallbackEvent


@dataclass(frozen=True)
class Outlook:
    """What is known at a decision time: the live reading, the region's reference distribution
    (recent past + forecast) and the expected mean intensity of each later epoch of the job."""

    live: CarbonReading
    reference_g_per_kwh: np.ndarray
    upcoming_epochs_g_per_kwh: np.ndarray
    pessimistic_g_per_kwh: float
    event: FallbackEvent | None = None


class IntensityOutlook(Protocol):
    def observe(self, now: datetime, epochs_after_this: int, epoch_hours: float) -> Outlook: ...


class RhoSchedule(Protocol):
    def rho_for_epoch(
        self, epoch_index: int, now: datetime
    ) -> tuple[float, CarbonReading | None]: ...


def _check_index(epoch_index: int, n_epochs: int) -> None:
    if not 0 <= epoch_index < n_epochs:
        raise PolicyError(f"epoch_index must be in [0, {n_epochs}), got {epoch_index}")


class _Base:
    def __init__(self, n_epochs: int, outlook: IntensityOutlook | None, epoch_hours: float) -> None:
        if n_epochs <= 0:
            raise PolicyError(f"n_epochs must be > 0, got {n_epochs}")
        if epoch_hours <= 0:
            raise PolicyError(f"epoch_hours must be > 0, got {epoch_hours}")
        self.n_epochs = n_epochs
        self.outlook = outlook
        self.epoch_hours = epoch_hours
        self.last_event: FallbackEvent | None = None
        self.decisions: dict[int, float] = {}

    def _observe(self, epoch_index: int, now: datetime) -> Outlook:
        if self.outlook is None:
            raise PolicyError("a carbon-aware schedule needs an intensity outlook")
        outlook = self.outlook.observe(now, self.n_epochs - epoch_index - 1, self.epoch_hours)
        self.last_event = outlook.event
        return outlook

    def _reading(self, epoch_index: int, now: datetime) -> CarbonReading | None:
        return None if self.outlook is None else self._observe(epoch_index, now).live

    def _decide(self, epoch_index: int, rho: float) -> float:
        # A re-asked epoch (a worker resuming after a crash) gets its first answer again.
        return self.decisions.setdefault(epoch_index, rho)

    def restore(self, rho_by_epoch: Mapping[int, float]) -> None:
        """Reload the rho of finished epochs (from the job's epoch rows) in a new process, so a
        resumed job keeps its mean rho / budget accounting. Raises PolicyError on bad input."""
        for epoch_index, rho in rho_by_epoch.items():
            _check_index(epoch_index, self.n_epochs)
            if not 0 < rho <= 1:
                raise PolicyError(
                    f"restored rho for epoch {epoch_index} must be in (0, 1], got {rho}"
                )
            self.decisions[epoch_index] = float(rho)


class FixedRhoSchedule(_Base):
    """The same rho every epoch (bypasses the policy); still reports the live reading."""

    def __init__(
        self,
        rho: float,
        n_epochs: int,
        outlook: IntensityOutlook | None = None,
        epoch_hours: float = 1.0,
    ):
        super().__init__(n_epochs, outlook, epoch_hours)
        RhoBounds(rho, rho)
        self.rho = rho

    def rho_for_epoch(self, epoch_index: int, now: datetime) -> tuple[float, CarbonReading | None]:
        _check_index(epoch_index, self.n_epochs)
        return self._decide(epoch_index, self.rho), self._reading(epoch_index, now)


class ExplicitRhoSchedule(_Base):
    """A user-given rho per epoch (bypasses the policy)."""

    def __init__(
        self,
        rhos: Sequence[float],
        outlook: IntensityOutlook | None = None,
        epoch_hours: float = 1.0,
    ):
        super().__init__(len(rhos), outlook, epoch_hours)
        for i, rho in enumerate(rhos):
            if not 0 < rho <= 1:
                raise PolicyError(f"rho_schedule[{i}] must be in (0, 1], got {rho}")
        self.rhos = list(rhos)

    def rho_for_epoch(self, epoch_index: int, now: datetime) -> tuple[float, CarbonReading | None]:
        _check_index(epoch_index, self.n_epochs)
        return self._decide(epoch_index, self.rhos[epoch_index]), self._reading(epoch_index, now)


class CarbonAwareRhoSchedule(_Base):
    """Quantile policy; with `rho_target` set, the mean-preserving variant (same mean rho)."""

    def __init__(
        self,
        bounds: RhoBounds,
        n_epochs: int,
        outlook: IntensityOutlook,
        epoch_hours: float,
        rho_target: float | None = None,
        gain: float = DEFAULT_GAIN,
    ) -> None:
        super().__init__(n_epochs, outlook, epoch_hours)
        if rho_target is not None and not bounds.rho_min <= rho_target <= bounds.rho_max:
            raise PolicyError(
                f"rho_target must lie in [rho_min, rho_max] = "
                f"[{bounds.rho_min}, {bounds.rho_max}], got {rho_target}"
            )
        self.bounds = bounds
        self.rho_target = rho_target
        self.gain = gain

    def rho_for_epoch(self, epoch_index: int, now: datetime) -> tuple[float, CarbonReading | None]:
        _check_index(epoch_index, self.n_epochs)
        if epoch_index in self.decisions:
            return self.decisions[epoch_index], self._reading(epoch_index, now)
        outlook = self._observe(epoch_index, now)
        q_now = float(
            quantile_rank(outlook.reference_g_per_kwh, outlook.live.carbon_intensity_g_per_kwh)
        )
        if self.rho_target is None:
            rho = float(quantile_rho(q_now, self.bounds))
        else:
            used = sum(self.decisions[i] for i in range(epoch_index) if i in self.decisions)
            used += self.rho_target * sum(1 for i in range(epoch_index) if i not in self.decisions)
            target = remaining_mean_rho(self.n_epochs, epoch_index, self.rho_target, used)
            q_next = np.atleast_1d(
                quantile_rank(outlook.reference_g_per_kwh, outlook.upcoming_epochs_g_per_kwh)
            )
            rho = mean_preserving_rho(
                q_now,
                q_next if outlook.upcoming_epochs_g_per_kwh.size else np.empty(0),
                target,
                self.bounds,
                self.gain,
            )
        return self._decide(epoch_index, rho), outlook.live


class BudgetRhoSchedule(_Base):
    """CO2-budget mode. Call `check_feasible(now)` at submission; `record_epoch` after each epoch.

    The pessimistic intensity (reference max x safety factor, which covers the live value) is
    set at submission and only ever raised, at each epoch boundary, when the outlook turns
    dirtier. rho_for_epoch raises BudgetExhaustedError when the remaining epochs no longer fit
    at rho_min: the worker stops the job there instead of exceeding the budget.
    """

    def __init__(
        self,
        bounds: RhoBounds,
        n_epochs: int,
        outlook: IntensityOutlook,
        epoch_hours: float,
        energy_full_kwh_per_epoch: float,
        budget_kg_co2: float,
    ) -> None:
        super().__init__(n_epochs, outlook, epoch_hours)
        if energy_full_kwh_per_epoch <= 0:
            raise PolicyError(
                f"energy_full_kwh_per_epoch must be > 0, got {energy_full_kwh_per_epoch}"
            )
        if budget_kg_co2 <= 0:
            raise PolicyError(f"co2_budget_kg must be > 0, got {budget_kg_co2}")
        self.bounds = bounds
        self.energy_full_kwh_per_epoch = energy_full_kwh_per_epoch
        self.budget_kg_co2 = budget_kg_co2
        self.spent_kg: dict[int, float] = {}
        self.pessimistic_g_per_kwh: float | None = (
            None  # frozen at submission (see policy.budget_rho)
        )

    @property
    def remaining_kg(self) -> float:
        return self.budget_kg_co2 - sum(self.spent_kg.values())

    def check_feasible(self, now: datetime) -> None:
        """Raises BudgetInfeasibleError if rho_min at the pessimistic intensity exceeds it."""

        outlook = self._observe(0, now)
        self.pessimistic_g_per_kwh = outlook.pessimistic_g_per_kwh
        check_budget_feasible(
            self.budget_kg_co2,
            self.n_epochs,
            self.energy_full_kwh_per_epoch,
            outlook.pessimistic_g_per_kwh,
            self.bounds,
        )

    def record_epoch(self, epoch_index: int, kg_co2: float) -> None:
        _check_index(epoch_index, self.n_epochs)
        if kg_co2 < 0:
            raise PolicyError(f"kg_co2 must be >= 0, got {kg_co2}")
        self.spent_kg[epoch_index] = kg_co2  # idempotent: a re-recorded epoch is not counted twice

    def rho_for_epoch(self, epoch_index: int, now: datetime) -> tuple[float, CarbonReading | None]:
        _check_index(epoch_index, self.n_epochs)
        if epoch_index in self.decisions:
            return self.decisions[epoch_index], self._reading(epoch_index, now)
        outlook = self._observe(epoch_index, now)
        intensities = np.concatenate(
            ([outlook.live.carbon_intensity_g_per_kwh], outlook.upcoming_epochs_g_per_kwh)
        )
        q = np.atleast_1d(quantile_rank(outlook.reference_g_per_kwh, intensities))
        # Never lowered; raised when the grid (live value, new forecast) turns dirtier than planned.
        self.pessimistic_g_per_kwh = max(
            self.pessimistic_g_per_kwh or 0.0, outlook.pessimistic_g_per_kwh
        )
        rho = budget_rho(
            intensities,
            q,
            self.energy_full_kwh_per_epoch,
            self.remaining_kg,
            self.pessimistic_g_per_kwh,
            self.bounds,
        )
        return self._decide(epoch_index, rho), outlook.live
