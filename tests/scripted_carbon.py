"""A scripted grid for the tests that drive the carbon planner through the pool: an intensity
source dirty for the first hours after it was made, clean after (slot by slot, as the
forecaster asks), and the `WindowPlanning` the scheduler pass reads (service/pool/green.py)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.forecaster import Forecaster, SourceAnswer
from greentrainer_carbon.history import MemoryHistory, slot_of, slot_start
from greentrainer_carbon.readings import CarbonReading
from service.models import utcnow


class DirtyThenClean:
    """``dirty`` g/kWh for ``dirty_hours`` from the slot it was made in, then ``clean``."""

    def __init__(self, dirty_hours: float, *, dirty: float = 400.0, clean: float = 40.0,
                 anchor: datetime | None = None) -> None:
        self.first = slot_of(anchor or utcnow())
        self.dirty_slots = int(dirty_hours * 2)
        self.dirty, self.clean = dirty, clean

    def value(self, slot: int) -> float:
        return self.dirty if slot - self.first < self.dirty_slots else self.clean

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        grid = np.asarray([self.value(first_slot + i) for i in range(n_slots)], dtype=float)
        live = CarbonReading(float(grid[0]), slot_start(first_slot), "scripted")
        return SourceAnswer(live, grid, 250.0)


class ScriptedPlanning:
    """A deployment's carbon side with a scripted grid in every region."""

    def __init__(self, source: DirtyThenClean, energy: EnergyModel | None = None) -> None:
        self.source = source
        self._energy = energy or EnergyModel(resume_s=0.0)

    @property
    def energy(self) -> EnergyModel:
        return self._energy

    def forecaster(self, region: str | None) -> Forecaster:
        return Forecaster(self.source, MemoryHistory(), region or "XX")

    def now(self) -> datetime:
        return utcnow()
