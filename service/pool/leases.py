"""Job leases: which worker may work on a running job, until when, and how many times a job
has been tried. The database is the source of truth; the broker only carries "look at job N"
(see shared reference celery-pitfalls: Redis redelivers a message only after its visibility
timeout, may run a task twice, and forgets everything on restart).

- The dispatcher makes a job `running` with no owner and a pickup deadline.
- A worker `claim`s it (compare-and-set: only an unowned or expired lease), which counts one
  attempt, and `renew`s the lease while it trains; a renewal that matches no row means the job
  was cancelled or given to someone else, and the worker stops.
- `requeue_or_fail` puts a job whose worker died (or hit a transient error) back in the queue,
  or fails it once it used `max_attempts` tries.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from service.errors import IllegalTransition
from service.jobs import transition
from service.models import Job, utcnow
from service.pool import slots
from service.states import JobStatus

TOO_MANY_ATTEMPTS = "too_many_attempts"


def claim(session: Session, job_id: str, owner: str, *, lease_seconds: float,
          now: datetime | None = None) -> bool:
    """Take the lease of a running job that nobody holds (or whose lease expired); counts an
    attempt. False when the job is not running or a live worker holds it."""
    now = now or utcnow()
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value,
               or_(Job.lease_owner.is_(None), Job.lease_expires_at < now,
                   Job.lease_owner == owner))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def renew(session: Session, job_id: str, owner: str, *, lease_seconds: float,
          now: datetime | None = None) -> bool:
    """Extend our lease; False when the job is no longer ours to run (cancelled, failed,
    re-queued after our lease expired)."""
    now = now or utcnow()
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False))
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def clear(job: Job) -> None:
    job.lease_owner = None
    job.lease_expires_at = None


def requeue_or_fail(session: Session, job: Job, reason: str, *, max_attempts: int,
                    give_up_code: str = TOO_MANY_ATTEMPTS) -> JobStatus:
    """Running job -> queued (lease cleared, slot freed), or -> failed with ``give_up_code``
    when it already used ``max_attempts`` tries (a caller that knows the cause, e.g.
    ``disk_full``, names it). Returns the new status. Raises `IllegalTransition` when the job
    changed concurrently (e.g. it was cancelled meanwhile)."""
    slots.release(session, job.id)
    clear(job)
    if job.attempts >= max_attempts:
        transition(session, job, JobStatus.FAILED, error_code=give_up_code,
                   error_message=f"gave up after {job.attempts} attempts; last: {reason}",
                   message=f"failed after {job.attempts} attempts: {reason}")
        return JobStatus.FAILED
    transition(session, job, JobStatus.QUEUED,
               message=f"re-queued (attempt {job.attempts} of {max_attempts}): {reason}")
    return JobStatus.QUEUED


def finish_quietly(session: Session, job: Job, target: JobStatus, **kwargs: object) -> bool:
    """`transition` that returns False instead of raising when the job moved meanwhile."""
    try:
        transition(session, job, target, **kwargs)  # type: ignore[arg-type]
    except IllegalTransition:
        return False
    return True
