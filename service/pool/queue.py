"""The Celery application and its settings (docs/worker.md says why each one is set).

Production: Redis (`GREENTRAINER_BROKER_URL=redis://...`). Embedded mode (no broker URL): kombu's
SQLAlchemy transport on a SQLite file next to the embedded database, so no server is needed.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from service.settings import PoolSettings, Settings

RUN_JOB_TASK = "greentrainer.run_job"
QUEUE_PREFIX = "gpu."


def queue_name(route: str) -> str:
    """The queue a job is sent to: one per GPU class (``route`` is the class), consumed by the
    workers of one device of that class, and one per worker of several devices (``route`` is
    `worker_route`), consumed by that worker alone."""
    return QUEUE_PREFIX + route


def worker_route(gpu_class: str, worker: str) -> str:
    """The route of worker process ``worker``'s own queue: the dispatcher reserves every slot of
    such a worker for one job, so that job's message must reach that worker and no other."""
    # NB: `celery worker --queues` splits on commas, and a worker's name lists its devices.
    return f"{gpu_class}@{worker.replace(',', '+')}"


def broker_url(settings: Settings) -> str:
    if settings.broker_url:
        return settings.broker_url
    return f"sqla+sqlite:///{(Path(settings.data_dir) / 'broker.sqlite').resolve()}"


def make_celery(settings: Settings, pool: PoolSettings | None = None) -> Celery:
    pool = pool or settings.pool
    app = Celery("greentrainer", broker=broker_url(settings), include=["worker.tasks"])
    app.conf.update(
        # The DB is the source of truth; the broker only carries job ids. No results stored.
        task_ignore_result=True,
        # Ack after the task: a worker that dies mid-job leaves the message to be redelivered.
        task_acks_late=True,
        # ... also when only the pool child dies (OOM killer), which Celery would ack otherwise.
        task_reject_on_worker_lost=True,
        # One job at a time per GPU, and no second job reserved while one trains.
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        # A lost broker connection must not abort hours of training; the DB lease protects.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        task_default_queue=queue_name("any"),
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    if settings.broker_url:
        # Above the longest job, so Redis never hands a running job to a second worker; a killed
        # worker's job is re-queued by the reconciler from its expired DB lease long before.
        app.conf.broker_transport_options = {
            "visibility_timeout": pool.visibility_timeout_seconds}
    return app
