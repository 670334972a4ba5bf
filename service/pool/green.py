"""Deadline jobs before their start: every scheduler pass asks the carbon planner
(`greentrainer_carbon.planner`, the engine the worker and the simulator run) whether each one
starts now or waits for cleaner hours. A waiting job is parked in `waiting_for_green` with its
planned start, re-planned every pass (the forecast changes) and put back in the queue when the
planner says "now" (at the latest when the remaining epochs at rho_max just fit the deadline).

A job's first full-cost epoch time is the workers' measured throughput for its model times its
data size (`service.pool.intensity.estimated_full_epoch_s`), else ``default_epoch_seconds``; its
energy model is the one fitted from its GPU class's measured epochs
(`service.pool.intensity.fitted_energy_model`, the model the worker plans with), else the assumed.

Each job's planning is isolated: jobs with the same region, policy, epochs and estimate share
one decision, and a job whose planning fails (no intensity known, a bad policy, anything) gets
an event saying so and is queued to start when a slot is free; the pass goes on with the rest.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, String, Text, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.forecaster import Forecaster
from greentrainer_carbon.history import FloatArray, IntensityHistory, slot_of
from greentrainer_carbon.planner import Decision, JobSpec, Planner
from service.db import one_of, session_scope
from service.job_events import NewEvent, insert_events
from service.jobs import transition_many
from service.models import Dataset, Job
from service.pool.intensity import estimated_full_epoch_s, fitted_energy_model
from service.states import JobStatus

log = logging.getLogger("service.pool.green")

REPLAN_MIN_SHIFT = timedelta(minutes=30)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
JobRow = Any  # a row of `_waiting_jobs`: the job's columns, ``epochs`` and ``policy``
PLAN_EVENT = "green_window"


class WindowPlanning(Protocol):
    """What the pass needs of the deployment's carbon side (`service.pool.carbon_plan.CarbonPlanning`)."""

    @property
    def energy(self) -> EnergyModel: ...

    def forecaster(self, region: str | None) -> Forecaster:
        """A new forecaster of the region, the pass's own (it wraps its history)."""
        ...

    def now(self) -> datetime:
        """The carbon clock (`greentrainer_carbon.clock`): accelerated in the equality test."""
        ...


def _policy_but_deadline(session: Session) -> ColumnElement[str]:
    """The job's rho policy without its deadline, as JSON text: the same text for jobs alike but
    for their deadline, so that the pass decodes and compares each distinct policy once, not
    10,000 times (decoding every job's JSON was a third of a re-planning pass)."""
    if session.get_bind().dialect.name == "postgresql":
        policy = cast(Job.rho_policy, JSONB)
        return cast(case((func.jsonb_typeof(policy) == "object",  # `-` fails on a scalar
                          policy.op("-")(literal("deadline", Text))), else_=policy), Text)
    return func.json_remove(Job.rho_policy, "$.deadline", type_=String)


def _waiting_jobs(session: Session) -> list[JobRow]:
    """The deadline jobs the pass plans, oldest first, locked (``SKIP LOCKED``: two scheduler
    passes never plan the same job; SQLite takes no row locks). Rows, not ORM objects: a pass
    may read 10,000."""
    return list(session.execute(
        select(Job.id, Job.status, Job.model, Job.gpu_class, Job.training_dataset_id, Job.region,
               Job.deadline, Job.planned_start_at,
               Job.hyperparameters["epochs"].as_string().label("epochs"),
               _policy_but_deadline(session).label("policy"))
        .where(Job.deadline.is_not(None), or_(
            Job.status == JobStatus.WAITING_FOR_GREEN.value,
            (Job.status == JobStatus.QUEUED.value) & Job.planned_start_at.is_(None)))
        .order_by(Job.created_at).with_for_update(skip_locked=True)))


class _PassHistory:
    """A region's recorded history as the pass first read it. The forecaster makes its forecast
    again for every longer horizon a job asks for (one per deadline slot, about 190 a pass), each
    time reading the same past: from the database, 190 queries and 0.15 s of a pass."""

    #: Slots read on a miss at least: a longer horizon reads further back (the profile's days
    #: before each target day), so the first read goes back far enough for any of them and
    #: later ones are slices of it (history past the retention simply comes back empty).
    READ_SLOTS = 120 * 48

    def __init__(self, history: IntensityHistory) -> None:
        self.history = history
        self.grids: dict[tuple[str, int], tuple[int, FloatArray]] = {}  # (region, end) -> read

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        end = first_slot + n_slots
        start, grid = self.grids.get((region, end), (end, None))
        if grid is None or first_slot < start:
            n_read = max(n_slots, self.READ_SLOTS)
            start, grid = end - n_read, self.history.grid(region, end - n_read, n_read)
            self.grids[(region, end)] = (start, grid)
        return grid[first_slot - start:].copy()


@dataclass(frozen=True)
class _Shape:
    """What jobs alike but for their deadline share: the spec (its policy without a deadline),
    the region's forecaster, the decision key and how far the placement window reaches."""

    spec: JobSpec
    forecaster: Forecaster
    key: tuple[object, ...]
    reach: datetime


class _Pass:
    """One pass's memo: a forecaster per region, an estimate per (model, class, data), a shape
    per distinct row (but for the deadline), a decision per shape and deadline slot."""

    def __init__(self, session: Session, planning: WindowPlanning, now: datetime,
                 default_epoch_seconds: float, jobs: list[JobRow]) -> None:
        self.session, self.planning, self.now = session, planning, now
        self.default_s = default_epoch_seconds
        self.forecasters: dict[str | None, Forecaster] = {}
        self.estimates: dict[tuple[str, str, int], float] = {}
        self.energies: dict[str, EnergyModel] = {}  # per GPU class
        self.shapes: dict[tuple[object, ...], _Shape] = {}
        self.decisions: dict[tuple[object, ...], Decision] = {}
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

    def energy(self, gpu_class: str) -> EnergyModel:
        if gpu_class not in self.energies:
            self.energies[gpu_class] = fitted_energy_model(self.session, gpu_class,
                                                           self.planning.energy)
        return self.energies[gpu_class]

    def decide(self, job: JobRow) -> Decision:
        raw = (job.region, job.epochs, job.model, job.gpu_class, job.training_dataset_id,
               job.policy)
        shape = self.shapes.get(raw)
        if shape is None:  # a failure is not kept: each job of the shape meets it and says so
            shape = self.shapes[raw] = self._shape(job)
        # Jobs alike but for a deadline beyond the placement window decide alike.
        key = (*shape.key, slot_of(min(job.deadline, shape.reach)) if job.deadline else None)
        decision = self.decisions.get(key)
        if decision is None:
            # The row's deadline is the one the API validated (and bounded): it wins.
            spec = replace(shape.spec, policy={**shape.spec.policy, "deadline": job.deadline})
            decision = self.decisions[key] = Planner(spec, shape.forecaster).decide(self.now, [])
        return decision

    def _shape(self, job: JobRow) -> _Shape:
        full_s = self.full_epoch_s(job)
        epochs = int(job.epochs if job.epochs is not None else 1)
        policy = json.loads(job.policy)
        energy = self.energy(job.gpu_class)
        spec = JobSpec(epochs, {**policy, "deadline": None}, full_s, energy)
        forecaster = self._forecaster(job.region)
        # How far this shape's placement window reaches (the planner's rule for a far deadline).
        reach = Planner(spec, forecaster).window_end(self.now, full_s, epochs,
                                                     deadline=FAR_FUTURE) or FAR_FUTURE
        key = (job.region, epochs, round(full_s, 3), json.dumps(policy, sort_keys=True), energy)
        return _Shape(spec, forecaster, key, reach)

    def _forecaster(self, region: str | None) -> Forecaster:
        if region not in self.forecasters:
            forecaster = self.planning.forecaster(region)
            forecaster.history = _PassHistory(forecaster.history)
            self.forecasters[region] = forecaster
        return self.forecasters[region]


def plan_windows(factory: sessionmaker[Session], planning: WindowPlanning, *,
                 default_epoch_seconds: float, now: datetime | None = None) -> int:
    """Plan, re-plan and release deadline jobs; returns how many jobs changed status."""
    now = now or planning.now()
    with session_scope(factory) as session:
        jobs = _waiting_jobs(session)
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
    """Write what a pass's decisions change, and nothing else: a job still waiting for the
    same window (within `REPLAN_MIN_SHIFT`) is not written. Each write is set-based, per
    distinct planned start (jobs alike share a decision, so there are few): one UPDATE of the
    planned starts, or for the jobs that begin to wait their status and planned start in one
    UPDATE and its events in one INSERT (`transition_many`); the planner's events in one INSERT."""
    planned: dict[str, datetime] = {}  # planned starts of jobs whose status stays
    wait: dict[datetime, list[tuple[JobRow, Decision]]] = defaultdict(list)  # by planned start
    release: list[JobRow] = []
    events: list[NewEvent] = []
    for job, outcome in outcomes:
        queued = job.status == JobStatus.QUEUED.value
        if isinstance(outcome, Exception):  # it starts when a GPU is free, and says why
            events.append(NewEvent(job.id, PLAN_EVENT, "carbon planning failed, the job starts "
                                   f"when a GPU is free: {type(outcome).__name__}: "
                                   f"{str(outcome)[:300]}", "warning"))
            if queued:
                planned[job.id] = now
            else:
                release.append(job)
            continue
        if queued:
            if outcome.run_now:
                planned[job.id] = now
                events.append(NewEvent(job.id, PLAN_EVENT, f"starts now: {outcome.reason}",
                                       "info", outcome.to_dict()))
            else:
                wait[outcome.start_at].append((job, outcome))
        elif outcome.run_now:
            release.append(job)
        elif (job.planned_start_at or now) <= now:  # the window moved on: follow it, quietly
            planned[job.id] = outcome.start_at
        elif abs(outcome.start_at - (job.planned_start_at or now)) >= REPLAN_MIN_SHIFT:
            planned[job.id] = outcome.start_at
            events.append(NewEvent(job.id, PLAN_EVENT, "forecast changed: re-planned to "
                                   f"{outcome.start_at.isoformat()}", "info", outcome.to_dict()))
    _write_planned_starts(session, planned)
    # On Postgres the pass holds these rows (FOR UPDATE): none can change before its UPDATE, so
    # no second lock is taken. SQLite takes no row locks: a job changed meanwhile is skipped.
    skip_changed = session.get_bind().dialect.name != "postgresql"
    changed: list[str] = []
    for start_at, group in wait.items():
        message = f"waiting for a greener window starting {start_at.isoformat()}"
        waiting = set(transition_many(
            session, [job for job, _ in group], JobStatus.WAITING_FOR_GREEN,
            messages=[message] * len(group), values={"planned_start_at": start_at},
            skip_changed=skip_changed))
        changed += waiting
        events += _planned_events((d, job.id) for job, d in group if job.id in waiting)
    if release:
        changed += transition_many(session, release, JobStatus.QUEUED,
                                   messages=["green window reached; queued"] * len(release),
                                   values={"planned_start_at": now}, skip_changed=skip_changed)
    insert_events(session, events)
    return len(changed)


def _planned_events(waits: Iterable[tuple[Decision, str]]) -> list[NewEvent]:
    """The ``planned start`` event of each job that began to wait (a decision's text and data
    are made once, however many jobs share it)."""
    made: dict[int, tuple[str, dict[str, Any]]] = {}
    events = []
    for decision, job_id in waits:
        if id(decision) not in made:
            made[id(decision)] = (
                f"planned start {decision.start_at.isoformat()} (expected "
                f"{decision.expected_g_per_kwh:.0f} g/kWh): {decision.reason}", decision.to_dict())
        message, data = made[id(decision)]
        events.append(NewEvent(job_id, PLAN_EVENT, message, "info", data))
    return events


def _write_planned_starts(session: Session, planned: dict[str, datetime]) -> None:
    """One UPDATE per distinct planned start (not one per job: 10,000 UPDATEs took 0.6 s)."""
    by_start: dict[datetime, list[str]] = defaultdict(list)
    for job_id, start_at in planned.items():
        by_start[start_at].append(job_id)
    for start_at, ids in by_start.items():
        session.execute(update(Job).where(one_of(session, Job.id, ids))
                        .values(planned_start_at=start_at)
                        .execution_options(synchronize_session=False))
