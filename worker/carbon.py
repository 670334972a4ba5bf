"""A running job's carbon decisions: the planner asked at each epoch boundary, as the dispatcher
asked it before the job started (`service.pool.carbon_plan`, `greentrainer_carbon.planner`).

`JobCarbon.decide(epoch)` is asked once per epoch (a later ask returns the same decision): run
it now at the decision's rho (the Trainer's rho callback reads it), or wait until
``decision.start_at``: the runner then pauses the job for the carbon scheduler (checkpoint
kept, slot freed) and the scheduler loop resumes it then, on any worker. The job's finished
epochs come from its rows, so a resumed job's mean rho and CO2 budget carry on. It plans with
the energy model fitted from its GPU class's measured epochs once enough are recorded
(`service.pool.intensity.fitted_energy_model`), and reads the deployment's carbon clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from greentrainer_carbon.planner import Decision, EpochDone, Planner
from service.models import Job, JobEpoch
from service.pool.carbon_plan import CarbonPlanning, done_epochs
from service.pool.intensity import estimated_full_epoch_s, fitted_energy_model


class JobCarbon:
    """Callable ``epoch -> rho`` for the core's Trainer, backed by the planner's decisions."""

    def __init__(self, planning: CarbonPlanning, session: Session, job: Job, n_epochs: int,
                 examples: int, gpu_class: str, rows: Sequence[JobEpoch]) -> None:
        settings = planning.settings
        full_s = estimated_full_epoch_s(session, gpu_class, job.model, examples,
                                        settings.pool.default_epoch_seconds)
        energy = fitted_energy_model(session, gpu_class, planning.energy)
        self.planner: Planner = planning.planner(n_epochs, dict(job.rho_policy), job.region,
                                                 full_s, energy)
        self.now = planning.now
        self.done: list[EpochDone] = done_epochs(rows)
        self.decisions: dict[int, Decision] = {}

    def decide(self, epoch: int, *, may_wait: bool = False) -> Decision:
        """The decision for ``epoch`` (asked once; later calls return the same one). Unless
        ``may_wait``, the epoch runs now whatever the plan (the job was started: only its rho is
        decided). Raises BudgetExhaustedError when the CO2 budget cannot pay for the remaining
        epochs."""
        if epoch not in self.decisions:
            self.decisions[epoch] = self.planner.decide(self.now(), self.done[:epoch],
                                                        must_run=not may_wait)
        return self.decisions[epoch]

    def forget(self, epoch: int) -> None:
        """Drop the decision of an epoch that will not run now (the job pauses)."""
        self.decisions.pop(epoch, None)

    def finished(self, epoch: int, seconds: float, kg_co2: float | None) -> None:
        """Count a finished epoch (what the next decisions read)."""
        decision = self.decide(epoch)
        rho = decision.rho if decision.rho is not None else 1.0
        self.done = [d for d in self.done if d.index != epoch]
        self.done.append(EpochDone(epoch, rho, decision.start_at, seconds, kg_co2))
        self.done.sort(key=lambda d: d.index)

    def __call__(self, epoch: int) -> float:
        rho = self.decide(epoch).rho
        return 1.0 if rho is None else rho

    def event_data(self, epoch: int) -> dict[str, Any]:
        """What an epoch's start event records of its decision."""
        return self.decide(epoch).to_dict()
