"""The grid's intensity when a job was submitted (c_ref of `service.savings`): the scheduler loop
notes it once per job, on the first pass that sees the job, before it plans or dispatches it.

A job the API's fast path already dispatched is still noted while it has no finished epoch (the
next pass is at most one dispatch interval later). The reading comes from the provider chain,
which ends at the offline static average, so a job always gets a value; a chain that fails
anyway only delays the note to the next pass and never touches the job itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.readings import CarbonReading
from service.db import session_scope
from service.models import Job, JobEvent
from service.savings import SUBMISSION_EVENT, record_submission_intensity
from service.states import JobStatus

log = logging.getLogger("service.pool.submission")

Current = Callable[[str | None], CarbonReading]  # a job's region (or None) -> the reading now
MAX_JOBS_PER_PASS = 200
_NOT_STARTED = (JobStatus.QUEUED.value, JobStatus.WAITING_FOR_GREEN.value,
                JobStatus.RUNNING.value)


def unnoted_jobs(session: Session, limit: int = MAX_JOBS_PER_PASS) -> list[tuple[str, str | None]]:
    """(job id, region) of live jobs with no finished epoch and no submission intensity yet."""
    noted = exists().where(JobEvent.job_id == Job.id, JobEvent.type == SUBMISSION_EVENT)
    rows = session.execute(
        select(Job.id, Job.region)
        .where(Job.status.in_(_NOT_STARTED), Job.last_finished_epoch.is_(None), ~noted)
        .order_by(Job.created_at, Job.id).limit(limit))
    return [(job_id, region) for job_id, region in rows]


def note_submission_intensities(factory: sessionmaker[Session], current: Current) -> int:
    """Record the current intensity for every job not yet noted; returns how many were noted.
    The readings are taken outside any transaction (a provider may be slow)."""
    with session_scope(factory) as session:
        jobs = unnoted_jobs(session)
    if not jobs:
        return 0
    readings: dict[str | None, CarbonReading] = {}
    for region in {region for _, region in jobs}:
        try:
            readings[region] = current(region)
        except SchedulerError:
            log.warning("no carbon reading for region %s; submission intensity noted later",
                        region, exc_info=True)
    noted = 0
    with session_scope(factory) as session:
        for job_id, region in jobs:
            reading = readings.get(region)
            if reading is not None:
                record_submission_intensity(session, job_id, reading.carbon_intensity_g_per_kwh,
                                            reading.source)
                noted += 1
    return noted
