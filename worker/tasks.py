"""Celery tasks: thin adapters that take a job id and let the runner re-read the row."""

from __future__ import annotations

from service.pool.queue import RUN_JOB_TASK, make_celery
from service.settings import get_settings
from worker import context
from worker.runner import run_job

app = make_celery(get_settings())


@app.task(name=RUN_JOB_TASK)
def run_job_task(job_id: str) -> str:
    """Run or resume ``job_id`` if it is dispatched and nobody live holds it; idempotent."""
    ctx = context.current()
    return run_job(job_id, factory=ctx.factory, settings=ctx.settings, pool=ctx.pool, store=ctx.store,
                   me=ctx.identity)
