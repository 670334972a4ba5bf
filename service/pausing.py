"""Pausing a job between epochs and resuming it, for the team (the API, the dashboard) and for
the carbon plan (the worker, when the plan says to wait for a cleaner hour).

A job waiting for a GPU (`queued`, `waiting_for_green`) is paused at once. A running job only
records the request: its worker finishes the current epoch, writes that epoch's checkpoint and
row, then asks `pause_requested` at the boundary and, if so, calls `pause_at_boundary`, which
makes the job `paused` and frees its lease and slot. Resuming re-queues the job; the next worker
resumes from the checkpoint as after a crash, so no epoch is trained or counted twice.

A team's pause wins over the carbon plan's: it is never resumed by the schedule, and a carbon
request does not replace it. `resume` ends either kind early; `resume_due` (every scheduler
pass) re-queues carbon pauses whose planned restart has come, or whose job's deadline has.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.errors import IllegalTransition
from service.job_events import append_event
from service.jobs import transition
from service.models import Job, utcnow
from service.pool import leases, slots
from service.states import TERMINAL, WAITING, JobStatus


class PauseReason(StrEnum):
    USER = "user"  # the team asked (API, dashboard); only the team resumes it
    CARBON = "carbon"  # the carbon plan waits for a cleaner hour; resumed at ``resume_at``


def _pause_data(job: Job) -> dict[str, Any]:
    return {"reason": job.pause_reason,
            "resume_at": job.resume_at.isoformat() if job.resume_at else None,
            "note": job.pause_note}


def _restart_words(job: Job) -> str:
    return f"; planned restart {job.resume_at.isoformat()}" if job.resume_at else ""


def request_pause(session: Session, job: Job, *, reason: PauseReason,
                  resume_at: datetime | None = None, note: str | None = None) -> Job:
    """Pause ``job`` now (waiting for a GPU) or at its next epoch boundary (running); returns it.

    Asking again changes nothing, except that a team's request replaces the carbon plan's.
    Raises `IllegalTransition` (409) for a job that cannot pause: finished, or still being
    validated."""
    status = JobStatus(job.status)
    if status in TERMINAL or status is JobStatus.VALIDATING:
        raise IllegalTransition(f"a {status.value} job cannot be paused; only a queued, waiting "
                                "or running job can", field="status")
    if job.pause_reason is not None and (job.pause_reason == PauseReason.USER.value or
                                         reason is PauseReason.CARBON):
        return job  # already asked for (a team's pause is not downgraded to the plan's)
    job.pause_reason, job.pause_requested_at = reason.value, utcnow()
    job.resume_at = resume_at if reason is PauseReason.CARBON else None
    job.pause_note = note
    if status is JobStatus.PAUSED:  # a carbon pause becomes the team's
        append_event(session, job.id, "paused", "paused by the team (was waiting for the "
                     "carbon plan)", data=_pause_data(job))
        return job
    if status in WAITING:
        job.planned_start_at = None  # re-planned when resumed
        transition(session, job, JobStatus.PAUSED, message=f"paused ({reason.value})")
        append_event(session, job.id, "paused", f"paused before it started ({reason.value})"
                     f"{_restart_words(job)}", data=_pause_data(job))
        return job
    append_event(session, job.id, "pause_requested", f"pause requested ({reason.value}): the "
                 "job pauses when its current epoch ends", data=_pause_data(job))
    return job


def pause_requested(session: Session, job_id: str) -> bool:
    """Whether the running job ``job_id`` was asked to pause (the worker's boundary check)."""
    return session.scalar(select(Job.pause_reason).where(Job.id == job_id)) is not None


def pause_at_boundary(session: Session, job: Job, *, after_epoch: int | None) -> None:
    """The worker's side, at an epoch boundary (``after_epoch`` finished and checkpointed, None
    before the first): running -> paused, lease cleared, slot freed. The caller holds the job's
    row lock and has checked that the lease is its own."""
    slots.release(session, job.id)
    leases.clear(job)
    where = f"after epoch {after_epoch}" if after_epoch is not None else "before its first epoch"
    transition(session, job, JobStatus.PAUSED, message=f"paused {where} ({job.pause_reason})")
    append_event(session, job.id, "paused", f"paused {where}, checkpoint kept and GPU slot "
                 f"freed ({job.pause_reason}){_restart_words(job)}",
                 data={**_pause_data(job), "epoch_index": after_epoch})


def _clear(job: Job) -> None:
    job.pause_reason = job.pause_requested_at = job.resume_at = job.pause_note = None


def resume(session: Session, job: Job, *, by: str = "the team") -> Job:
    """Re-queue a paused job (either reason), or withdraw the pause a running job has not reached
    yet; returns the job. Raises `IllegalTransition` (409) for a job that is neither."""
    status = JobStatus(job.status)
    if status is JobStatus.RUNNING and job.pause_reason is not None:
        _clear(job)
        append_event(session, job.id, "resumed", f"pause withdrawn by {by}; the job keeps "
                     "running", data={"by": by})
        return job
    if status is not JobStatus.PAUSED:
        raise IllegalTransition(f"a {status.value} job is not paused; only a paused job (or a "
                                "running one with a pause pending) can be resumed", field="status")
    reason = job.pause_reason
    _clear(job)
    if job.started_at is None:
        job.planned_start_at = None  # a deadline job plans its green window again
    transition(session, job, JobStatus.QUEUED, message=f"resumed by {by}; queued")
    append_event(session, job.id, "resumed", f"resumed by {by} (was paused: {reason}); waiting "
                 "for a GPU", data={"by": by, "reason": reason})
    return job


def resume_due(session: Session, now: datetime | None = None) -> list[str]:
    """Re-queue the carbon pauses whose planned restart (or whose job's deadline) has come;
    returns their ids. A team's pause waits for the team."""
    now = now or utcnow()
    due = list(session.scalars(
        select(Job).where(Job.status == JobStatus.PAUSED.value,
                          Job.pause_reason == PauseReason.CARBON.value,
                          or_(Job.resume_at.is_(None), Job.resume_at <= now,
                              Job.deadline <= now))
        .order_by(Job.id).with_for_update(skip_locked=True)))
    for job in due:
        late = job.deadline is not None and job.deadline <= now and \
            (job.resume_at is None or job.resume_at > now)
        resume(session, job, by="the deadline (it has passed)" if late else "the carbon plan")
    return [job.id for job in due]
