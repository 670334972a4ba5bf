"""Taking a job and giving it back: the lease and the worker's slots (`service.pool.slots`).

A worker of several devices holds a job on all its slots (`slots.take` by worker process) and
gives all of them back when the job ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.job_events import append_event
from service.models import Job
from service.pool import leases, slots
from service.settings import PoolSettings
from service.states import TERMINAL, JobStatus
from worker.outcomes import DISK_FULL

log = logging.getLogger("worker.runner")


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    gpu_class: str
    gpu_ids: list[int] | None = None
    country_iso3: str = "GBR"

    @property
    def devices(self) -> int:
        """How many devices (slots) this worker trains a job on at most."""
        return max(len(self.gpu_ids or []), 1)

    def slot_names(self) -> list[str]:
        """Its slot rows: its own name for one device, else one per device."""
        if self.devices == 1 or self.gpu_ids is None:
            return [self.name]
        return [f"{self.name}#{gpu}" for gpu in self.gpu_ids]


def claim(factory: sessionmaker[Session], job_id: str, me: WorkerIdentity,
           pool: PoolSettings) -> str | None:
    """Take the job; returns why not (None = taken)."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        if job is None:
            return "missing"
        if JobStatus(job.status) in TERMINAL:
            return f"already {job.status}"
        if not leases.claim(session, job_id, me.name, lease_seconds=pool.lease_seconds):
            return f"{job.status}, not ours to run"
        session.refresh(job)
        slots.take(session, me.name, job_id)
        if job.attempts > pool.max_attempts:
            job.attempts -= 1  # this try is not made
            leases.requeue_or_fail(session, job, "the worker process kept dying",
                                   max_attempts=pool.max_attempts)
            return "too many attempts"
        append_event(session, job_id, "worker", f"worker {me.name} took the job "
                     f"(attempt {job.attempts} of {pool.max_attempts})",
                     data={"worker": me.name, "gpu_class": me.gpu_class,
                           "attempt": job.attempts})
    return None


def end(factory: sessionmaker[Session], job_id: str, me: WorkerIdentity, pool: PoolSettings,
         how: str, *, code: str, message: str) -> None:
    try:
        with session_scope(factory) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.RUNNING.value or job.lease_owner != me.name:
                slots.release(session, job_id, worker=me.name)
            elif how == "retry":
                leases.requeue_or_fail(session, job, f"{code}: {message}",
                                       max_attempts=pool.max_attempts, give_up_code=DISK_FULL
                                       if code == DISK_FULL else leases.TOO_MANY_ATTEMPTS)
            else:
                slots.release(session, job_id)
                leases.clear(job)
                leases.finish_quietly(session, job, JobStatus.FAILED, error_code=code,
                                      error_message=message, message=f"failed: {message}")
    except OperationalError:  # the job keeps our lease until it expires; the reconciler re-queues it
        log.warning("job %s: could not record its end (%s), database unreachable", job_id, code)
