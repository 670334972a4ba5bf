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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.forecaster import Forecaster
from greentrainer_carbon.history import slot_of
from greentrainer_carbon.planner import Decision, JobSpec, Planner
from service.db import session_scope
from service.job_events import NewEvent, insert_events
from service.jobs import transition_many
from service.models import Dataset, Job
from service.pool.intensity import estimated_full_epoch_s
from service.states import JobStatus

log = logging.getLogger("service.pool.green")

REPLAN_MIN_SHIFT = timedelta(minutes=30)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_COLUMNS = (Job.id, Job.status, Job.model, Job.gpu_class, Job.training_dataset_id, Job.region,
            Job.deadline, Job.planned_start_at, Job.rho_policy)
JobRow = Any  # a row of _COLUMNS and ``epochs``
PLAN_EVENT = "green_window"


class WindowPlanning(Protocol):
    """What the pass needs of the deployment's carbon side (`service.pool.carbon_plan.CarbonPlanning`)."""

    @property
    def energy(self) -> EnergyModel: ...

    def forecaster(self, region: str | None) -> Forecaster: ...

    def now(self) -> datetime: ...


class _Pass:
    """One pass's memo: a forecaster per region, an estimate per (model, class, data), a
    decision per distinct job shape."""

    def __init__(self, session: Session, planning: WindowPlanning, now: datetime,
                 default_epoch_seconds: float, jobs: list[JobRow]) -> None:
        self.session, self.planning, self.now = session, planning, now
        self.default_s = default_epoch_seconds
        self.forecasters: dict[str | None, Forecaster] = {}
        self.estimates: dict[tuple[str, str, int], float] = {}
        self.decisions: dict[tuple[object, ...], Decision] = {}
        self.reaches: dict[tuple[object, ...], datetime] = {}
        ids = {job.training_dataset_id for job in jobs}
        self.rows: dict[str, int] = {}
        if ids:
            for dataset_id, row_count in session.execute(
                    select(Dataset.id, Dataset.row_count).where(Dataset.id.in_(ids))):
                self.rows[dataset_id] = row_count

    def full_epoch_s(self, job: JobRow) -> float:
        key = (job.model, job.gpu_class, self.rows.get(job.training_dataset_id, 0))
        if key not in self.estimates:
            self.estimates[key] = estimated_full_epoch_s(self.session, job.gpu_class, job.model,
                                                         key[2], self.default_s)
        return self.estimates[key]

    def decide(self, job: JobRow) -> Decision:
        full_s = self.full_epoch_s(job)
        epochs = int(job.epochs if job.epochs is not None else 1)
        shape = (job.region, epochs, round(full_s, 3), json.dumps(
            {k: v for k, v in job.rho_policy.items() if k != "deadline"}, sort_keys=True))
        if shape not in self.reaches:  # how far this shape's placement window reaches
            spec = JobSpec(epochs, {**job.rho_policy, "deadline": None}, full_s,
                           self.planning.energy)
            self.reaches[shape] = Planner(spec, self._forecaster(job.region)).window_end(
                self.now, full_s, epochs, deadline=FAR_FUTURE) or FAR_FUTURE
        reach = self.reaches[shape]
        # Jobs alike but for a deadline beyond the placement window decide alike.
        key = (*shape, slot_of(min(job.deadline, reach)) if job.deadline else None)
        if key not in self.decisions:
            # The row's deadline is the one the API validated (and bounded): it wins.
            spec = JobSpec(epochs, {**job.rho_policy, "deadline": job.deadline}, full_s,
                           self.planning.energy)
            self.decisions[key] = Planner(spec, self._forecaster(job.region)).decide(self.now, [])
        return self.decisions[key]

    def _forecaster(self, region: str | None) -> Forecaster:
        if region not in self.forecasters:
            self.forecasters[region] = self.planning.forecaster(region)
        return self.forecasters[region]


def plan_windows(factory: sessionmaker[Session], planning: WindowPlanning, *,
                 default_epoch_seconds: float, now: datetime | None = None) -> int:
    """Plan, re-plan and release deadline jobs; returns how many jobs changed status."""
    now = now or planning.now()
    with session_scope(factory) as session:
        jobs = list(session.execute(  # rows, not ORM objects: a pass may read 10,000
            select(*_COLUMNS, Job.hyperparameters["epochs"].as_string().label("epochs"))
            .where(Job.deadline.is_not(None), or_(
                Job.status == JobStatus.WAITING_FOR_GREEN.value,
                (Job.status == JobStatus.QUEUED.value) & Job.planned_start_at.is_(None)))
            .order_by(Job.created_at).with_for_update(skip_locked=True)))
        memo = _Pass(session, planning, now, default_epoch_seconds, jobs)
        outcomes: list[tuple[JobRow, Decision | Exception]] = []
        for job in jobs:
            try:
                outcomes.append((job, memo.decide(job)))
            except Exception as exc:  # noqa: BLE001 - one job's planning must not stop the pass
                log.warning("job %s: carbon planning failed; it starts when a slot is free",
                            job.id, exc_info=True)
                outcomes.append((job, exc))
        return _apply(session, outcomes, now)


def _apply(session: Session, outcomes: list[tuple[JobRow, Decision | Exception]],
           now: datetime) -> int:
    """Write a pass's decisions in bulk: planned starts, status changes and their events."""
    planned: dict[str, datetime] = {}
    wait: list[tuple[JobRow, Decision]] = []
    release: list[JobRow] = []
    events: list[NewEvent] = []
    for job, outcome in outcomes:
        queued = job.status == JobStatus.QUEUED.value
        if isinstance(outcome, Exception):  # it starts when a GPU is free, and says why
            events.append(NewEvent(job.id, PLAN_EVENT, "carbon planning failed, the job starts "
                                   f"when a GPU is free: {type(outcome).__name__}: "
                                   f"{str(outcome)[:300]}", "warning"))
            planned[job.id] = now
            if not queued:
                release.append(job)
            continue
        if queued:
            planned[job.id] = now if outcome.run_now else outcome.start_at
            if outcome.run_now:
                events.append(NewEvent(job.id, PLAN_EVENT, f"starts now: {outcome.reason}",
                                       "info", outcome.to_dict()))
            else:
                wait.append((job, outcome))
        elif outcome.run_now:
            planned[job.id] = now
            release.append(job)
        elif (job.planned_start_at or now) <= now:  # the window moved on: follow it, quietly
            planned[job.id] = outcome.start_at
        elif abs(outcome.start_at - (job.planned_start_at or now)) >= REPLAN_MIN_SHIFT:
            planned[job.id] = outcome.start_at
            events.append(NewEvent(job.id, PLAN_EVENT, "forecast changed: re-planned to "
                                   f"{outcome.start_at.isoformat()}", "info", outcome.to_dict()))
    if planned:
        session.execute(update(Job), [{"id": job_id, "planned_start_at": at}
                                      for job_id, at in planned.items()])
    changed = transition_many(
        session, [job for job, _ in wait], JobStatus.WAITING_FOR_GREEN,
        messages=[f"waiting for a greener window starting {d.start_at.isoformat()}"
                  for _, d in wait], skip_changed=True) if wait else []
    waiting = set(changed)
    events += [NewEvent(job.id, PLAN_EVENT, f"planned start {d.start_at.isoformat()} (expected "
                        f"{d.expected_g_per_kwh:.0f} g/kWh): {d.reason}", "info", d.to_dict())
               for job, d in wait if job.id in waiting]
    if release:
        changed += transition_many(session, release, JobStatus.QUEUED,
                                   messages=["green window reached; queued"] * len(release),
                                   skip_changed=True)
    insert_events(session, events)
    return len(changed)
