"""The reconciler: repairs what crashes and a forgetful broker leave behind (run periodically,
next to the dispatcher).

- A running job whose lease expired (its worker was killed, or the broker lost the message
  before any worker took it) goes back to `queued`, or to `failed` after `max_attempts`.
- A slot that holds a job that is no longer running (cancelled while reserved, finished by a
  worker that died before freeing it) is freed.
- Slots of workers silent for a long time are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.errors import IllegalTransition
from service.models import Job, WorkerSlot, utcnow
from service.pool import leases, slots
from service.states import JobStatus

log = logging.getLogger("service.pool.reconciler")

DEAD_SLOT_FACTOR = 30  # a slot silent for 30 heartbeats' staleness is forgotten


@dataclass
class Reconciled:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    freed_slots: int = 0
    forgotten_slots: int = 0


def reconcile(factory: sessionmaker[Session], *, max_attempts: int, stale_after_s: float,
              now: datetime | None = None) -> Reconciled:
    """One pass; each expired job is handled in its own transaction, under a row lock
    (``SKIP LOCKED`` on Postgres, so two reconcilers never handle the same job)."""
    now = now or utcnow()
    outcome = Reconciled()
    with session_scope(factory) as session:
        expired = list(session.scalars(
            select(Job.id).where(Job.status == JobStatus.RUNNING.value,
                                 Job.lease_expires_at < now)))
    for job_id in expired:
        with session_scope(factory) as session:
            job = session.scalar(select(Job).where(Job.id == job_id)
                                 .with_for_update(skip_locked=True))
            if job is None or job.status != JobStatus.RUNNING.value or \
                    job.lease_expires_at is None or job.lease_expires_at >= now:
                continue
            reason = (f"lease expired: worker {job.lease_owner} stopped renewing it"
                      if job.lease_owner else "no worker took the dispatched job in time")
            try:
                status = leases.requeue_or_fail(session, job, reason, max_attempts=max_attempts)
            except IllegalTransition:
                continue
            (outcome.failed if status is JobStatus.FAILED else outcome.requeued).append(job_id)
            log.warning("job %s %s: %s", job_id, status.value, reason)
    with session_scope(factory) as session:
        held = session.execute(
            select(WorkerSlot.name, WorkerSlot.job_id, Job.status)
            .join(Job, Job.id == WorkerSlot.job_id)).all()
        for _name, held_job, held_status in held:
            if held_job is not None and held_status != JobStatus.RUNNING.value:
                slots.release(session, held_job)
                outcome.freed_slots += 1
        outcome.forgotten_slots = slots.forget_dead(
            session, now=now, dead_after_s=stale_after_s * DEAD_SLOT_FACTOR)
    return outcome
