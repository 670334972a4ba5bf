"""What a worker process holds for its tasks: settings, database sessions, blob store, identity.
`worker_main` builds it once; tasks read it with `current()` (built from the environment when a
process runs tasks without the CLI, e.g. `celery -A worker.tasks worker`)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory
from service.settings import PoolSettings, Settings, get_settings
from service.storage import BlobStore, make_store
from worker.claims import WorkerIdentity


@dataclass
class WorkerContext:
    settings: Settings
    pool: PoolSettings
    factory: sessionmaker[Session]
    store: BlobStore
    identity: WorkerIdentity


_current: WorkerContext | None = None


def worker_name(gpu_class: str, gpu_ids: list[int] | None) -> str:
    gpus = ",".join(map(str, gpu_ids)) if gpu_ids else "cpu"
    return f"{socket.gethostname()}:{os.getpid()}:{gpu_class}:{gpus}"


def build(settings: Settings, gpu_class: str, gpu_ids: list[int] | None,
          country_iso3: str = "GBR") -> WorkerContext:
    global _current
    engine = make_engine(settings.database_url, pool_size=4)  # the task, its lease heartbeat, the slot heartbeat
    _current = WorkerContext(
        settings=settings, pool=settings.pool, factory=make_session_factory(engine),
        store=make_store(settings),
        identity=WorkerIdentity(worker_name(gpu_class, gpu_ids), gpu_class, gpu_ids,
                                country_iso3))
    return _current


def current() -> WorkerContext:
    return _current if _current is not None else build(get_settings(), "cpu", None)
