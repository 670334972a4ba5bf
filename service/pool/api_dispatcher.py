"""The API's `JobDispatcher` when a broker is configured: right after a job is committed it
runs one dispatch pass, so a job starts at once when a slot is free instead of at the next
scheduler tick. The scheduler loop stays the authority (reconcile, green windows, retries);
this is only a fast path, safe next to it (the dispatcher's row locks)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from service.pool.dispatcher import dispatch_once
from service.pool.loop import stale_after_s
from service.pool.queue import RUN_JOB_TASK, make_celery, queue_name
from service.settings import PoolSettings, Settings

log = logging.getLogger("service.pool.api_dispatcher")


class CeleryJobDispatcher:
    def __init__(self, settings: Settings, factory: sessionmaker[Session],
                 pool: PoolSettings | None = None) -> None:
        self.pool = pool or settings.pool
        self.factory = factory
        self.celery = make_celery(settings, self.pool)

    def send(self, job_id: str, gpu_class: str) -> None:
        self.celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_name(gpu_class))

    def job_queued(self, job_id: str) -> None:
        started = dispatch_once(self.factory, self.send, stale_after_s=stale_after_s(self.pool),
                                pickup_seconds=self.pool.pickup_seconds, planned_only=True)
        log.info("job queued; %d job(s) started", len(started), extra={"job_id": job_id})

    def job_cancelled(self, job_id: str) -> None:
        # Cancel is cooperative: the worker sees the status at its next heartbeat and stops.
        log.info("job cancelled", extra={"job_id": job_id})
