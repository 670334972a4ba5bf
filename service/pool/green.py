"""Green windows for jobs with a deadline: park them in `waiting_for_green` until the start
that `choose_start` finds cleanest over the job's whole duration, re-planning every pass (the
forecast changes), and put them back in the queue when their window opens.

A job's duration is its epochs x the mean measured epoch time of its model on this pool (from
`job_epochs`), or ``default_epoch_seconds`` before any was measured.

One pass plans thousands of jobs on one forecast (`WindowPlanner`: the grid and the window
scores once, then a look-up per job), and writes the outcome in bulk. Each job's planning is
isolated: an error (even a MemoryError) or a plan slower than `JOB_PLAN_TIMEOUT_S` is recorded
on that job as a ``green_window`` warning and the job starts when a slot is free, once, rather
than being planned again every pass; the other jobs are planned as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.errors import SchedulerError, WindowError
from greentrainer_carbon.readings import CarbonReading, capped_hours
from greentrainer_carbon.windows import WindowPlanner
from service.db import session_scope
from service.job_events import NewEvent, insert_events
from service.jobs import transition_many
from service.models import Job, JobEpoch, utcnow
from service.states import JobStatus

log = logging.getLogger("service.pool.green")

Forecast = Callable[[float], list[CarbonReading]]  # hours ahead -> readings (capped)
REPLAN_MIN_SHIFT = timedelta(minutes=30)
JOB_PLAN_TIMEOUT_S = 2.0  # one job's plan taking longer is dropped: the job starts when it can


def _epoch_seconds_by_model(session: Session, models: set[str]) -> dict[str, float]:
    """Mean measured epoch time of each of ``models`` that has any (one query per pass)."""
    rows = session.execute(select(Job.model, func.avg(JobEpoch.wall_seconds))
                           .join(Job, Job.id == JobEpoch.job_id)
                           .where(Job.model.in_(sorted(models))).group_by(Job.model))
    return {model: float(seconds) for model, seconds in rows if seconds is not None}


@dataclass(frozen=True)
class _Outcome:
    """What one job's plan decided: its start, whether now, and an event to record (or None)."""

    start: datetime
    start_now: bool
    mean: float
    duration: timedelta
    warning: str | None = None


def _plan_one(windows: WindowPlanner, row: Row[Any], now: datetime,
              epoch_s: float) -> _Outcome:
    """The window of one job; never raises (an error becomes a warning: start when free)."""
    began = time.monotonic()
    try:
        duration = timedelta(seconds=int(row.epochs if row.epochs is not None else 1) * epoch_s)
        try:
            choice = windows.choose(duration, row.deadline)
        except WindowError as exc:  # too close to the deadline to wait: start as soon as possible
            return _Outcome(now, True, float("nan"), duration, f"no time to wait: {exc}")
    except Exception as exc:  # noqa: BLE001 - MemoryError too: one job must not stop the others
        log.warning("planning job %s failed", row.id, exc_info=True)
        return _Outcome(now, True, float("nan"), timedelta(0),
                        f"planning failed ({type(exc).__name__}: {exc}); the job starts when a "
                        "slot is free")
    took = time.monotonic() - began
    if took > JOB_PLAN_TIMEOUT_S:
        return _Outcome(now, True, float("nan"), duration,
                        f"planning took {took:.1f} s (limit {JOB_PLAN_TIMEOUT_S:g} s); the job "
                        "starts when a slot is free")
    return _Outcome(choice.start, choice.start_now, choice.expected_mean_g_per_kwh, duration)


def plan_windows(factory: sessionmaker[Session], forecast: Forecast, *,
                 default_epoch_seconds: float, now: datetime | None = None) -> int:
    """Plan, re-plan and release deadline jobs; returns how many jobs changed status."""
    now = now or utcnow()
    with session_scope(factory) as session:
        rows = list(session.execute(
            select(Job.id, Job.status, Job.model, Job.deadline, Job.planned_start_at,
                   # the one field needed, not every job's JSON decoded (a third of a pass)
                   Job.hyperparameters["epochs"].as_string().label("epochs"))
            .where(Job.deadline.is_not(None), or_(
                Job.status == JobStatus.WAITING_FOR_GREEN.value,
                (Job.status == JobStatus.QUEUED.value) & Job.planned_start_at.is_(None)))
            .order_by(Job.created_at).with_for_update(skip_locked=True)))
        if not rows:
            return 0
        # NB: the furthest deadline sets the horizon, capped: a deadline in year 9999 must not
        # make the pass build a forecast to it (it once stalled the loop for every team).
        horizon_h = capped_hours(max((r.deadline - now).total_seconds() for r in rows) / 3600 + 1)
        try:
            readings = forecast(max(horizon_h, 1.0))
        except SchedulerError:
            log.warning("no forecast; deadline jobs start when a slot is free", exc_info=True)
            readings = []
        windows = WindowPlanner(readings, now)
        measured = _epoch_seconds_by_model(session, {r.model for r in rows})
        outcomes = [_plan_one(windows, r, now, measured.get(r.model, default_epoch_seconds))
                    for r in rows]
        return _apply(session, rows, outcomes, now)


def _apply(session: Session, rows: Sequence[Row[Any]], outcomes: Sequence[_Outcome],
           now: datetime) -> int:
    """Write a pass's plans in bulk: planned starts, status changes and their events."""
    planned: dict[str, datetime] = {}
    wait: list[tuple[Row[Any], _Outcome]] = []
    release: list[Row[Any]] = []
    events: list[NewEvent] = []
    for row, outcome in zip(rows, outcomes):
        if outcome.warning:
            events.append(NewEvent(row.id, "green_window", outcome.warning, "warning"))
        if row.status == JobStatus.QUEUED.value:
            planned[row.id] = now if outcome.start_now else outcome.start
            if not outcome.start_now:
                wait.append((row, outcome))
            continue
        if outcome.start_now or (row.planned_start_at or now) <= now:
            planned[row.id] = now
            release.append(row)
        elif abs(outcome.start - row.planned_start_at) >= REPLAN_MIN_SHIFT:
            planned[row.id] = outcome.start
            start = outcome.start.isoformat()
            events.append(NewEvent(row.id, "green_window", f"forecast changed: re-planned to "
                                   f"{start}", data={"planned_start_at": start}))
    if planned:
        session.execute(update(Job), [{"id": job_id, "planned_start_at": at}
                                      for job_id, at in planned.items()])
    changed = transition_many(
        session, [row for row, _ in wait], JobStatus.WAITING_FOR_GREEN,
        messages=[f"waiting for a greener window starting {o.start.isoformat()}"
                  for _, o in wait], skip_changed=True) if wait else []
    waiting = set(changed)
    for row, outcome in wait:
        if row.id in waiting:
            start = outcome.start.isoformat()
            events.append(NewEvent(
                row.id, "green_window", f"planned start {start} (expected "
                f"{outcome.mean:.0f} g/kWh over {outcome.duration})",
                data={"planned_start_at": start, "expected_g_per_kwh": outcome.mean}))
    if release:
        changed += transition_many(session, release, JobStatus.QUEUED,
                                   messages=["green window reached; queued"] * len(release),
                                   skip_changed=True)
    insert_events(session, events)
    return len(changed)
