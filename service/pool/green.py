"""Deadline jobs before their start: every scheduler pass asks the carbon planner
(`greentrainer_carbon.planner`, the engine the worker and the simulator run) whether each one
starts now or waits for cleaner hours. A waiting job is parked in `waiting_for_green` with its
planned start, re-planned every pass (the forecast changes) and put back in the queue when the
planner says "now" (at the latest when the remaining epochs at rho_max just fit the deadline).

A job's first full-cost epoch time is the workers' measured throughput for its model times its
data size (`service.pool.intensity.estimated_full_epoch_s`), else ``default_epoch_seconds``.

Each job's planning is isolated: jobs with the same region, policy, epochs and estimate share
one decision, and a job whose planning fails (no intensity known, a bad policy, anything) gets
an event saying so and is queued to start when a slot is free; the pass goes on with the rest.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.forecaster import Forecaster
from greentrainer_carbon.history import slot_of
from greentrainer_carbon.planner import Decision, JobSpec, Planner
from service.db import session_scope
from service.job_events import append_event
from service.jobs import transition
from service.models import Dataset, Job, utcnow
from service.pool.intensity import estimated_full_epoch_s
from service.states import JobStatus

log = logging.getLogger("service.pool.green")

REPLAN_MIN_SHIFT = timedelta(minutes=30)
PLAN_EVENT = "green_window"


class WindowPlanning(Protocol):
    """What the pass needs of the deployment's carbon side (`service.pool.carbon_plan.CarbonPlanning`)."""

    @property
    def energy(self) -> EnergyModel: ...

    def forecaster(self, region: str | None) -> Forecaster: ...


class _Pass:
    """One pass's memo: a forecaster per region, an estimate per (model, class, data), a
    decision per distinct job shape."""

    def __init__(self, session: Session, planning: WindowPlanning, now: datetime,
                 default_epoch_seconds: float, jobs: list[Job]) -> None:
        self.session, self.planning, self.now = session, planning, now
        self.default_s = default_epoch_seconds
        self.forecasters: dict[str | None, Forecaster] = {}
        self.estimates: dict[tuple[str, str, int], float] = {}
        self.decisions: dict[tuple[object, ...], Decision] = {}
        ids = {job.training_dataset_id for job in jobs}
        self.rows: dict[str, int] = {}
        if ids:
            for dataset_id, row_count in session.execute(
                    select(Dataset.id, Dataset.row_count).where(Dataset.id.in_(ids))):
                self.rows[dataset_id] = row_count

    def full_epoch_s(self, job: Job) -> float:
        key = (job.model, job.gpu_class, self.rows.get(job.training_dataset_id, 0))
        if key not in self.estimates:
            self.estimates[key] = estimated_full_epoch_s(self.session, job.gpu_class, job.model,
                                                         key[2], self.default_s)
        return self.estimates[key]

    def decide(self, job: Job) -> Decision:
        full_s = self.full_epoch_s(job)
        epochs = int(job.hyperparameters.get("epochs", 1))
        # The row's deadline is the one the API validated (and bounded): it wins.
        policy = {**job.rho_policy, "deadline": job.deadline}
        if job.region not in self.forecasters:
            self.forecasters[job.region] = self.planning.forecaster(job.region)
        planner = Planner(JobSpec(epochs, policy, full_s, self.planning.energy),
                          self.forecasters[job.region])
        # Jobs alike but for a deadline beyond the planner's placement window decide alike.
        end = planner.window_end(self.now, full_s, epochs)
        key = (job.region, epochs, round(full_s, 3), None if end is None else slot_of(end),
               json.dumps({k: v for k, v in job.rho_policy.items() if k != "deadline"},
                          sort_keys=True))
        if key not in self.decisions:
            self.decisions[key] = planner.decide(self.now, [])
        return self.decisions[key]


def plan_windows(factory: sessionmaker[Session], planning: WindowPlanning, *,
                 default_epoch_seconds: float, now: datetime | None = None) -> int:
    """Plan, re-plan and release deadline jobs; returns how many jobs changed status."""
    now = now or utcnow()
    changed = 0
    with session_scope(factory) as session:
        jobs = list(session.scalars(
            select(Job).where(Job.deadline.is_not(None), or_(
                Job.status == JobStatus.WAITING_FOR_GREEN.value,
                (Job.status == JobStatus.QUEUED.value) & Job.planned_start_at.is_(None)))
            .order_by(Job.created_at).with_for_update(skip_locked=True)))
        memo = _Pass(session, planning, now, default_epoch_seconds, jobs)
        for job in jobs:
            try:
                decision = memo.decide(job)
            except Exception as exc:  # noqa: BLE001 - one job's planning must not stop the pass
                changed += _unplannable(session, job, now, exc)
                continue
            changed += _apply(session, job, decision, now)
    return changed


def _unplannable(session: Session, job: Job, now: datetime, exc: Exception) -> int:
    """The job starts when a slot is free, and says why it did not wait."""
    log.warning("job %s: carbon planning failed; it starts when a slot is free", job.id,
                exc_info=True)
    append_event(session, job.id, PLAN_EVENT, "carbon planning failed, the job starts when a "
                 f"GPU is free: {type(exc).__name__}: {str(exc)[:300]}", level="warning")
    job.planned_start_at = now
    if job.status == JobStatus.WAITING_FOR_GREEN.value:
        transition(session, job, JobStatus.QUEUED, message="queued without a carbon plan")
        return 1
    return 0


def _apply(session: Session, job: Job, decision: Decision, now: datetime) -> int:
    data = decision.to_dict()
    if job.status == JobStatus.QUEUED.value:
        job.planned_start_at = now if decision.run_now else decision.start_at
        if decision.run_now:
            append_event(session, job.id, PLAN_EVENT, f"starts now: {decision.reason}", data=data)
            return 0
        transition(session, job, JobStatus.WAITING_FOR_GREEN,
                   message=f"waiting for a greener window starting {decision.start_at.isoformat()}")
        append_event(session, job.id, PLAN_EVENT, f"planned start {decision.start_at.isoformat()}"
                     f" (expected {decision.expected_g_per_kwh:.0f} g/kWh): {decision.reason}",
                     data=data)
        return 1
    if decision.run_now:
        job.planned_start_at = now
        transition(session, job, JobStatus.QUEUED, message="green window reached; queued")
        return 1
    planned = job.planned_start_at or now
    if planned <= now:  # the forecast moved the window on: follow it, quietly
        job.planned_start_at = decision.start_at
    elif abs(decision.start_at - planned) >= REPLAN_MIN_SHIFT:
        job.planned_start_at = decision.start_at
        append_event(session, job.id, PLAN_EVENT, "forecast changed: re-planned to "
                     f"{decision.start_at.isoformat()}", data=data)
    return 0

