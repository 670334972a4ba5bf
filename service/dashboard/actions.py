"""The job page's buttons, each the same domain call as its API route: cancel
(`service.jobs.cancel_job`), pause and resume (`service.pausing`). Each returns what to tell the
dispatcher once the change is committed (None: nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy.orm import Session

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
