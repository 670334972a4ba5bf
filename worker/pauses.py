"""The worker's side of a pause (`service.pausing`): at each epoch boundary, after the finished
epoch's checkpoint and row are written, a job asked to pause (by its team, or by the carbon plan
through `ask_carbon_pause`) becomes `paused` and gives its lease and GPU slot back; the next
worker resumes it from that checkpoint."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.planner import Decision
from service.db import session_scope
from service.job_events import append_event
from service.models import Job
from service.pausing import PauseReason, pause_at_boundary, pause_requested, request_pause
from service.states import JobStatus


class JobPaused(Exception):
    """The job paused at an epoch boundary (checkpoint kept, slot freed): this run ends."""


def pause_if_asked(factory: sessionmaker[Session], job_id: str, owner: str,
                   after_epoch: int | None) -> bool:
    """Pause ``job_id`` here if a pause was asked for and the job is still ``owner``'s running
    job; returns whether it paused. ``after_epoch`` is the epoch just recorded (None before
    the first epoch this run trains)."""
    with session_scope(factory) as session:
        if not pause_requested(session, job_id):  # the common case: one indexed read
            return False
        job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is None or job.status != JobStatus.RUNNING.value or job.lease_owner != owner \
                or job.pause_reason is None:
            return False  # no longer ours (the lease keeper stops the run), or resumed since
        pause_at_boundary(session, job, after_epoch=after_epoch)
    return True


def ask_carbon_pause(factory: sessionmaker[Session], job_id: str, decision: Decision) -> None:
    """The carbon plan's wait (``decision`` says the next epoch should start later): a pause at
    this boundary with the planned restart, which `pause_if_asked` then takes."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        request_pause(session, job, reason=PauseReason.CARBON, resume_at=decision.start_at,
                      note=decision.reason)
        append_event(session, job_id, "carbon_wait", "the carbon plan waits for cleaner hours "
                     f"until {decision.start_at.isoformat()}: {decision.reason}",
                     data={"plan": decision.to_dict()})
