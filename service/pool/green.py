"""Green windows for jobs with a deadline: park them in `waiting_for_green` until the start
that `choose_start` finds cleanest over the job's whole duration, re-planning every pass (the
forecast changes), and put them back in the queue when their window opens.

A job's duration is its epochs x the mean measured epoch time of its model on this pool (from
`job_epochs`), or ``default_epoch_seconds`` before any was measured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.errors import SchedulerError, WindowError
from greentrainer_carbon.readings import CarbonReading
from greentrainer_carbon.windows import choose_start
from service.db import session_scope
from service.job_events import append_event
from service.jobs import transition
from service.models import Job, JobEpoch, utcnow
from service.states import JobStatus

log = logging.getLogger("service.pool.green")

Forecast = Callable[[float], list[CarbonReading]]  # hours ahead -> readings
REPLAN_MIN_SHIFT = timedelta(minutes=30)


def job_duration(session: Session, job: Job, default_epoch_seconds: float) -> timedelta:
    measured = session.scalar(select(func.avg(JobEpoch.wall_seconds))
                              .join(Job, Job.id == JobEpoch.job_id).where(Job.model == job.model))
    epochs = int(job.hyperparameters.get("epochs", 1))
    return timedelta(seconds=epochs * float(measured or default_epoch_seconds))


def plan_windows(factory: sessionmaker[Session], forecast: Forecast, *,
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
        if not jobs:
            return 0
        horizon_h = max((j.deadline - now).total_seconds() for j in jobs
                        if j.deadline is not None) / 3600 + 1
        try:
            readings = forecast(max(horizon_h, 1.0))
        except SchedulerError:
            log.warning("no forecast; deadline jobs start when a slot is free", exc_info=True)
            readings = []
        for job in jobs:
            changed += _plan(session, job, readings, now, default_epoch_seconds)
    return changed


def _plan(session: Session, job: Job, readings: list[CarbonReading], now: datetime,
          default_epoch_seconds: float) -> int:
    assert job.deadline is not None
    duration = job_duration(session, job, default_epoch_seconds)
    try:
        choice = choose_start(readings, now, duration, job.deadline)
        start, start_now, mean = choice.start, choice.start_now, choice.expected_mean_g_per_kwh
    except WindowError as exc:  # too close to the deadline to wait: start as soon as possible
        start, start_now, mean = now, True, float("nan")
        append_event(session, job.id, "green_window", f"no time to wait: {exc}", level="warning")
    if job.status == JobStatus.QUEUED.value:
        job.planned_start_at = now if start_now else start
        if start_now:
            return 0
        transition(session, job, JobStatus.WAITING_FOR_GREEN,
                   message=f"waiting for a greener window starting {start.isoformat()}")
        append_event(session, job.id, "green_window", "planned start "
                     f"{start.isoformat()} (expected {mean:.0f} g/kWh over {duration})",
                     data={"planned_start_at": start.isoformat(), "expected_g_per_kwh": mean})
        return 1
    planned = job.planned_start_at or now
    if start_now or planned <= now:
        job.planned_start_at = now
        transition(session, job, JobStatus.QUEUED, message="green window reached; queued")
        return 1
    if abs(start - planned) >= REPLAN_MIN_SHIFT:
        job.planned_start_at = start
        append_event(session, job.id, "green_window", f"forecast changed: re-planned to "
                     f"{start.isoformat()}", data={"planned_start_at": start.isoformat()})
    return 0
