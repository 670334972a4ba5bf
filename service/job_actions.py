"""What a team does to a job, as the native API, /v1 and the dashboard's buttons all do it: cancel
(`service.jobs.cancel_job`), pause and resume (`service.pausing`), committed, and then the
dispatcher told (a cancelled job's worker stops, a resumed job is queued)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy.orm import Session

from service.dispatch import JobDispatcher, notify
from service.jobs import cancel_job
from service.models import Job
from service.pausing import PauseReason, request_pause, resume
from service.states import JobStatus

Tell = Literal["queued", "cancelled"] | None


def _cancel(session: Session, job: Job) -> Tell:
    return "cancelled" if cancel_job(session, job)[1] else None


def _pause(session: Session, job: Job) -> Tell:
    request_pause(session, job, reason=PauseReason.USER)
    return None


def _resume(session: Session, job: Job) -> Tell:
    return "queued" if resume(session, job).status == JobStatus.QUEUED.value else None


ACTIONS: dict[str, Callable[[Session, Job], Tell]] = {
    "cancel": _cancel, "pause": _pause, "resume": _resume}
Action = Literal["cancel", "pause", "resume"]


def act(session: Session, dispatcher: JobDispatcher, job: Job, action: Action) -> Job:
    """Do ``action`` to ``job``, commit, then tell the dispatcher; returns the job as stored.
    Raises `IllegalTransition` (409) when the job's status forbids it."""
    tell = ACTIONS[action](session, job)
    session.commit()
    if tell is not None:
        notify(dispatcher, tell, job.id)
    return job
